"""What the layer-by-layer encoder reports and keeps: a layer's report, one trial of a layer,
a stage the pipeline can back off to, and the encoded model (:mod:`weightless.pipeline.encode`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .contract import Decision

__all__ = ["LayerReport", "Trial", "Stage", "CompressResult", "Layers"]

Layers = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (indices, codebook)


@dataclass
class LayerReport:
    """What happened to one encoded layer (errors in % on the decision data)."""

    name: str
    paper_name: str
    shape: tuple[int, ...]
    nonzero: int
    k: int
    t: int
    auto_t: bool
    t_within_tolerance: bool
    construction: str
    seed: int
    m: int
    false_positives: int
    filter_bytes: int
    build_seconds: float
    val_error_encoded: float | None  # None: no decision of its own (stored losslessly at the end)
    val_error_retrained: float | None
    decision: dict[str, Any] = field(default_factory=dict)
    monotone: bool = True
    trials: list[dict[str, Any]] = field(default_factory=list)
    lossless_bytes: int = 0  # the lossless record of the same layer: the alternative the filter had to beat
    backed_off: bool = False  # stored lossless because the final check undid its filter

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["shape"] = list(self.shape)
        return d


@dataclass
class Trial:
    """One candidate encoding of a layer: ``t`` (0: the lossless record), the decision on it,
    its decision-data error before retraining, whether it was retrained, the filter (None for
    t = 0), the candidate model and its encoded / pending layers after the trial."""

    t: int
    decision: Decision
    error_before: float
    retrained: bool
    filter: Any
    model: Any
    build_seconds: float
    encoded: Layers
    pending: Layers

    def row(self) -> dict[str, Any]:
        """The trial's line in the layer report."""
        return {"t": self.t, "val_error_encoded": round(self.error_before, 4), "retrained": self.retrained,
                **self.decision.as_dict()}


@dataclass
class Stage:
    """A point the pipeline can back off to: the model after some steps, its encoded layers,
    the layers still pending (stored losslessly if the pipeline stops here), the tail's
    tensors, the filters, the reports so far; ``fresh``: pending layers hold their original
    clustering (nothing retrained yet)."""

    label: str
    model: Any
    encoded: Layers
    pending: Layers
    rest: Layers
    filters: dict[str, Any]
    reports: list[LayerReport]
    fresh: bool
    tail: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompressResult:
    """The encoded model: ``model`` holds exactly the weights the file will decode to;
    ``tensors`` is what :func:`weightless.save` takes. Errors are in % of the task's metric
    (validation = decision data); test errors are None without a test split. ``confirmation``:
    the final model vs the reference on data no decision used (None: no such data);
    ``backed_off``: the steps the final check undid; ``within_budget``: False only when no
    model fits (returned because the caller allowed it)."""

    model: Any
    tensors: dict[str, Any]
    layers: list[LayerReport]
    indices: dict[str, np.ndarray]  # the true (simplified) cluster indices of each encoded layer
    simplified_val_error: float
    simplified_test_error: float | None
    val_error: float
    test_error: float | None
    seconds: float
    reference: str = "simplified"
    reference_val_error: float | None = None
    validation_disjoint: bool = True
    budget: dict[str, Any] = field(default_factory=dict)
    simplified: Any = None
    tail: list[dict[str, Any]] = field(default_factory=list)  # decisions of the whole-model stage
    allowance: float = 0.0
    confirmation: dict[str, Any] | None = None
    backed_off: list[str] = field(default_factory=list)
    within_budget: bool = True
    contract: Any = None  # the Contract that decided (to compare other encodings under the same rule)
