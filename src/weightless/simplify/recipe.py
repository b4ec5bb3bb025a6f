"""One-call simplification: prune (magnitude or DNS), cluster, optionally fine-tune centroids.

A :class:`Recipe` holds the per-layer targets (:class:`LayerRecipe`, or a model-agnostic
:class:`~weightless.simplify.select.LayerSelect` resolved against the model) and the training
schedules. :func:`simplify` takes a *trained dense* model and a task (any data the
:class:`~weightless.training.task.Task` interface accepts) and returns a :class:`SimplifyResult`
ready for encoding. Layers not named in the recipe stay dense float (they are still retrained
alongside).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from ..errors import InputError, WeightlessError
from ..training.loop import TrainConfig, evaluate
from ..training.task import Task, as_task
from .select import METHODS, LayerSelect
from .cluster import INITS, ClusteredLayer, cluster_weight, finetune_codebooks
from .dns import DNSConfig, prune_dns
from .magnitude import PruneSchedule, PruneState, get_param, prune_magnitude

__all__ = [
    "LayerRecipe",
    "Recipe",
    "LayerResult",
    "SimplifyResult",
    "simplify",
]



@dataclass(frozen=True)
class LayerRecipe:
    """How to simplify one weight tensor.

    Attributes:
        name: fully qualified tensor name, e.g. "encoder.0.weight".
        method: "magnitude" or "dns".
        nonzero: fraction of weights kept, in (0, 1].
        k: number of shared values (clusters) for the nonzero weights.
        init: k-means initialisation, "density", "linear" or "random".
    """

    name: str
    method: str = "magnitude"
    nonzero: float = 0.05
    k: int = 9
    init: str = "density"

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if self.method not in METHODS:
            raise InputError(f"{self.name}: method must be one of {METHODS}, got {self.method!r}")
        if not (0.0 < self.nonzero <= 1.0):
            raise InputError(f"{self.name}: nonzero must be in (0, 1], got {self.nonzero}")
        if not (1 <= self.k <= 32767):
            raise InputError(f"{self.name}: k must be in [1, 32767], got {self.k}")
        if self.init not in INITS:
            raise InputError(f"{self.name}: init must be one of {INITS}, got {self.init!r}")


@dataclass(frozen=True)
class Recipe:
    """A simplification recipe.

    Attributes:
        model: a label for reports; the algorithm does not use it.
        layers: per-layer settings; all must use the same pruning method.
        select: instead of ``layers``, a rule that picks the layers of whatever model is
            given (:meth:`resolve`); ``layers`` wins when both are set.
        prune: schedule of magnitude pruning (used when the method is "magnitude").
        dns: schedule of Dynamic Network Surgery (used when the method is "dns").
        finetune: trained quantization after clustering (None: skip).
        seed: seeds k-means random init.
        display_names: tensor name -> name shown in reports (e.g. the paper's "FC-0").
    """

    model: str = ""
    layers: tuple[LayerRecipe, ...] = ()
    prune: PruneSchedule = field(default_factory=PruneSchedule)
    dns: DNSConfig = field(default_factory=DNSConfig)
    finetune: TrainConfig | None = field(default_factory=lambda: TrainConfig(epochs=1, lr=1e-4))
    seed: int = 0
    select: LayerSelect | None = None
    display_names: Any = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The pruning method shared by all layers."""
        if self.layers:
            return self.layers[0].method
        return self.select.method if self.select is not None else "magnitude"

    def resolve(self, model: Any) -> "Recipe":
        """Return this recipe with ``layers`` filled in for ``model`` from ``select``.

        Raises:
            InputError: neither layers nor a selection, or a selection that matches nothing.
        """
        if self.layers:
            return self
        if self.select is None:
            raise InputError("a recipe needs layers or a layer selection (select=LayerSelect(...))")
        picked = self.select.pick(model)
        return replace(self, layers=tuple(LayerRecipe(n, m, nz, k, self.select.init) for n, m, nz, k in picked))

    def validate(self) -> None:
        """Raise :class:`InputError` if the recipe is inconsistent."""
        if not self.layers and self.select is not None:
            self.select.validate()
            return
        if not self.layers:
            raise InputError("a recipe needs at least one layer")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise InputError(f"duplicate layer names in recipe: {names}")
        for l in self.layers:
            l.validate()
        methods = {l.method for l in self.layers}
        if len(methods) != 1:
            raise InputError(f"all layers of a recipe must share one pruning method, got {sorted(methods)}")

    def scaled(self, factor: float) -> "Recipe":
        """Return a copy with every training phase's epochs multiplied by ``factor`` (> 0)."""
        if not factor > 0:
            raise InputError(f"factor must be > 0, got {factor}")

        def s(c: TrainConfig | None) -> TrainConfig | None:
            return None if c is None else replace(c, epochs=max(c.epochs * factor, 0.05))

        return replace(
            self,
            prune=replace(self.prune, retrain=s(self.prune.retrain), final=s(self.prune.final)),
            dns=replace(self.dns, surgery=s(self.dns.surgery), retrain=s(self.dns.retrain)),
            finetune=s(self.finetune),
        )


@dataclass
class LayerResult:
    """One simplified layer.

    Attributes:
        indices: int16, shaped like the weight; -1 = zero, else cluster id in [0, k).
        codebook: float32 (k,), increasing.
        mask: bool, True where the weight is nonzero.
        nonzero_fraction: fraction of nonzero weights.
        paper_name: the layer's name in the paper (e.g. "FC-0"), or the tensor name.
    """

    name: str
    paper_name: str
    method: str
    k: int
    init: str
    indices: np.ndarray
    codebook: np.ndarray
    mask: np.ndarray
    nonzero_fraction: float

    def weights(self) -> np.ndarray:
        """The reconstructed float32 weights."""
        return ClusteredLayer(self.indices, self.codebook).weights()


@dataclass
class SimplifyResult:
    """What :func:`simplify` returns (``model`` holds exactly the simplified weights)."""

    model: Any
    recipe: Recipe
    layers: dict[str, LayerResult]
    test_error: float | None
    val_error: float
    dense_test_error: float | None
    pruned_test_error: float | None
    seconds: dict[str, float]
    dense_val_error: float | None = None

    @property
    def nonzero_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of nonzero weights."""
        return {n: l.nonzero_fraction for n, l in self.layers.items()}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (errors in %, per-layer nonzero % and k)."""
        return {
            "model": self.recipe.model,
            "pruning": self.recipe.method,
            "dense_test_error": _r(self.dense_test_error),
            "pruned_test_error": _r(self.pruned_test_error),
            "test_error": _r(self.test_error),
            "val_error": _r(self.val_error),
            "dense_val_error": _r(self.dense_val_error),
            "layers": {
                n: {
                    "paper_name": l.paper_name,
                    "shape": list(l.indices.shape),
                    "nonzero": int(l.mask.sum()),
                    "nonzero_percent": round(100.0 * l.nonzero_fraction, 4),
                    "k": l.k,
                    "init": l.init,
                    "codebook": [float(c) for c in l.codebook],
                }
                for n, l in self.layers.items()
            },
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _maybe_test(model: Any, task: Task) -> float | None:
    return None if task.test is None else evaluate(model, task, split="test")


class Stopped(WeightlessError):
    """:func:`simplify` stopped after pruning because its ``after_prune`` check said so."""


def simplify(model: Any, data: Any, recipe: Recipe, progress: bool = False, *, start: PruneState | None = None,
             record: list[PruneState] | None = None, after_prune: Callable[[Any], Any] | None = None) -> SimplifyResult:
    """Simplify a trained dense ``model`` with ``recipe``: prune, retrain, cluster, fine-tune.

    Magnitude pruning only: ``start`` (a :class:`PruneState` recorded by an earlier call on the
    same model) makes the pruning go on from there instead of from the dense model, and
    ``record`` collects the state after each pruning step (see
    :func:`~weightless.simplify.magnitude.prune_magnitude`). ``after_prune`` is called with the
    pruned model before clustering; a value it returns (not None) stops the run: ``Stopped(value)``.

    ``data`` is a :class:`~weightless.training.task.Task` or anything :func:`as_task` accepts
    (an object with ``train``/``val``/``test``). The input model is not modified;
    ``result.model`` is a simplified copy whose recipe layers hold exactly ``codebook[indices]``
    (zeros where pruned). Test errors are None when the task has no test split.

    Returns:
        A :class:`SimplifyResult` with the per-layer indices/codebooks/masks and the
        validation (and test) errors (%) of the dense and simplified model.

    Raises:
        InputError: invalid recipe, or a layer the model does not have.
        Stopped: ``after_prune`` returned a value (``args[0]``).
    """
    import torch

    recipe.validate()
    recipe = recipe.resolve(model)
    recipe.validate()
    for l in recipe.layers:
        get_param(model, l.name)
    data = as_task(data)
    model = copy.deepcopy(model)
    seconds: dict[str, float] = {}
    dense_err = _maybe_test(model, data)
    dense_val = evaluate(model, data, split="val")
    targets = {l.name: l.nonzero for l in recipe.layers}
    t0 = time.perf_counter()
    if recipe.method == "magnitude":
        masks = prune_magnitude(model, data, targets, recipe.prune, progress=progress, start=start, record=record)
    elif start is not None:
        raise InputError("only magnitude pruning can start from a pruned state")
    else:
        masks = prune_dns(model, data, targets, recipe.dns, progress=progress)
    seconds["prune"] = time.perf_counter() - t0
    reason = after_prune(model) if after_prune is not None else None
    if reason is not None:
        raise Stopped(reason)
    pruned_err = _maybe_test(model, data)
    t0 = time.perf_counter()
    clustered: dict[str, ClusteredLayer] = {}
    with torch.no_grad():
        for i, l in enumerate(recipe.layers):
            p = get_param(model, l.name)
            w = (p * masks[l.name]).detach().cpu().numpy()
            cl = cluster_weight(w, l.k, l.init, seed=recipe.seed + i)
            p.copy_(torch.from_numpy(cl.weights()))
            clustered[l.name] = cl
    if recipe.finetune is not None:
        clustered = finetune_codebooks(model, data, clustered, recipe.finetune, progress=progress)
    seconds["cluster"] = time.perf_counter() - t0
    paper = dict(recipe.display_names)
    layers: dict[str, LayerResult] = {}
    for l in recipe.layers:
        cl = clustered[l.name]
        mask = cl.mask
        layers[l.name] = LayerResult(
            name=l.name,
            paper_name=paper.get(l.name, l.name),
            method=l.method,
            k=l.k,
            init=l.init,
            indices=cl.indices,
            codebook=cl.codebook,
            mask=mask,
            nonzero_fraction=float(mask.mean()),
        )
    return SimplifyResult(
        model=model,
        recipe=recipe,
        layers=layers,
        test_error=_maybe_test(model, data),
        val_error=evaluate(model, data, split="val"),
        dense_test_error=dense_err,
        pruned_test_error=pruned_err,
        seconds=seconds,
        dense_val_error=dense_val,
    )
