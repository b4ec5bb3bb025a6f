"""Layer-by-layer lossy encoding with retraining (paper section 3.2, Algorithm 1, Figure 3).

For each chosen layer, in model order: take its simplified form (pruned + clustered; layers
after the first are re-clustered, since retraining moved their nonzero weights), encode the
nonzeros in a Bloomier filter with that layer's ``t``, put the weights reconstructed *from the
filter* (false positives included) into the model, freeze the layer, and retrain the layers
after it for a few epochs to absorb the errors. Encoded layers are never retrained.

``t`` is given per layer or chosen automatically: the smallest ``t`` whose validation error
after retraining is within ``tolerance`` percentage points of the simplified model's validation
error (binary search over ``[t_min, t_max]``; the test split is never used for the choice).
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from ..api import EncodedLayer
from ..errors import InputError
from ..filters import build

__all__ = ["EncodeConfig", "LayerReport", "CompressResult", "encode_with_retraining", "layer_seed"]


@dataclass(frozen=True)
class EncodeConfig:
    """How to encode the simplified layers.

    Attributes:
        t: layer name -> bits per cell; layers not named get an automatic t.
        t_min, t_max: range searched for an automatic t (t_min None: ceil(log2 k) + 1).
        tolerance: allowed increase of validation error (percentage points) for automatic t.
        retrain: training of the later layers after each encoding (None: no retraining).
        construction: filter construction ("paper" or "compact").
        c: cells per key (None: the construction's default).
        shards: filter shards per layer.
        entropy: entropy-code the tables in the file.
        dense_dtype: on-disk dtype of layers stored densely ("float32" or "float16").
        seed: base seed of the filters (each layer derives its own from its name).
    """

    t: Mapping[str, int] = field(default_factory=dict)
    t_min: int | None = None
    t_max: int = 12
    tolerance: float = 0.05
    retrain: Any = None
    construction: str = "paper"
    c: float | None = None
    shards: int = 1
    entropy: bool = True
    dense_dtype: str = "float32"
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if not 1 <= self.t_max <= 16:
            raise InputError(f"t_max must be in [1, 16], got {self.t_max}")
        if self.t_min is not None and not 1 <= self.t_min <= self.t_max:
            raise InputError(f"t_min must be in [1, t_max={self.t_max}], got {self.t_min}")
        if self.tolerance < 0:
            raise InputError(f"tolerance must be >= 0 percentage points, got {self.tolerance}")
        for name, t in self.t.items():
            if not isinstance(t, (int, np.integer)) or not 1 <= int(t) <= 16:
                raise InputError(f"t for {name!r} must be an integer in [1, 16], got {t!r}")
        if self.dense_dtype not in ("float32", "float16"):
            raise InputError(f"dense dtype must be 'float32' or 'float16', got {self.dense_dtype!r}")


@dataclass
class LayerReport:
    """What happened to one encoded layer."""

    name: str
    paper_name: str
    shape: tuple[int, ...]
    nonzero: int
    k: int
    t: int
    auto_t: bool
    m: int
    false_positives: int
    filter_bytes: int
    build_seconds: float
    val_error_encoded: float
    val_error_retrained: float
    trials: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["shape"] = list(self.shape)
        return d


@dataclass
class CompressResult:
    """The encoded model: ``model`` holds exactly the weights the file will decode to (before
    any float16 rounding of dense layers); ``tensors`` is what :func:`weightless.save` takes."""

    model: Any
    tensors: dict[str, Any]
    layers: list[LayerReport]
    indices: dict[str, np.ndarray]
    simplified_val_error: float
    simplified_test_error: float
    val_error: float
    test_error: float
    seconds: float


def layer_seed(base: int, name: str) -> int:
    """Return the filter seed of layer ``name``: 63 bits of BLAKE2b of the base seed and the name."""
    digest = hashlib.blake2b(f"{int(base)}:{name}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _ordered(model: Any, names: list[str]) -> list[str]:
    order = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in order]
    if missing:
        raise InputError(f"layers {missing} are not parameters of the model")
    return sorted(names, key=order.index)


def _module_prefix(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def encode_with_retraining(
    simplified: Any,
    data: Any,
    cfg: EncodeConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> CompressResult:
    """Encode the layers of a :class:`~weightless.simplify.SimplifyResult` one by one with
    retraining in between.

    Returns:
        A :class:`CompressResult` (per-layer report, errors on validation and test splits).

    Raises:
        InputError: invalid config.
        ConstructionError: a filter could not be built.
    """
    import torch

    from ..simplify.cluster import cluster_weight
    from ..simplify.magnitude import get_param
    from ..training import evaluate, train

    cfg.validate()
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    model = copy.deepcopy(simplified.model)
    names = _ordered(model, list(simplified.layers))
    param_order = [n for n, _ in model.named_parameters()]
    masks = {n: torch.from_numpy(np.ascontiguousarray(simplified.layers[n].mask)).to(torch.float32) for n in names}
    frozen: set[str] = set()
    encoded: dict[str, EncodedLayer] = {}
    encoded_indices: dict[str, np.ndarray] = {}
    reports: list[LayerReport] = []
    base_val = float(simplified.val_error)

    for li, name in enumerate(names):
        lr = simplified.layers[name]
        if li == 0:
            indices, codebook = lr.indices, lr.codebook
        else:  # retraining moved this layer's nonzeros: cluster them again (zeros stay zero)
            w = get_param(model, name).detach().cpu().numpy() * lr.mask
            cl = cluster_weight(w, lr.k, lr.init, seed=cfg.seed + li)
            indices, codebook = cl.indices, cl.codebook
        shape = tuple(indices.shape)
        flat = indices.ravel()
        keys = np.flatnonzero(flat >= 0).astype(np.int64)
        values = flat[keys].astype(np.int64)
        bias = _module_prefix(name) + ".bias"
        layer_frozen = frozen | {name} | ({bias} if bias in param_order else set())
        later = param_order[param_order.index(name) + 1 :]
        trainable = {n for n in later if n not in layer_frozen}
        train_masks = {n: masks[n] for n in names if n in trainable}
        min_t = max(int(np.ceil(np.log2(lr.k))) + 1 if lr.k > 1 else 1, 1)
        seed = layer_seed(cfg.seed, name)
        trials: dict[int, tuple[float, float, Any, Any, float]] = {}

        def trial(t: int) -> tuple[float, float, Any, Any, float]:
            if t in trials:
                return trials[t]
            t0 = time.perf_counter()
            f = build(keys, values, k=lr.k, t=t, size=int(flat.size), seed=seed,
                      construction=cfg.construction, c=cfg.c, shards=cfg.shards)
            secs = time.perf_counter() - t0
            w = f.reconstruct(shape, codebook)
            cand = copy.deepcopy(model)
            with torch.no_grad():
                get_param(cand, name).copy_(torch.from_numpy(w))
            err0 = evaluate(cand, data.val)
            if cfg.retrain is not None and trainable:
                rcfg = replace(cfg.retrain, progress=progress, desc=f"retrain after {name} t={t}")
                train(cand, data, rcfg, trainable=trainable, masks=train_masks)
            err1 = evaluate(cand, data.val)
            say(f"{name}: t={t} val error {err0:.2f}% encoded, {err1:.2f}% retrained "
                f"(simplified {base_val:.2f}%)")
            trials[t] = (err0, err1, f, cand, secs)
            return trials[t]

        if name in cfg.t:
            t = int(cfg.t[name])
            if t < min_t:
                raise InputError(f"t = {t} for {name!r} is too small for k = {lr.k}: need t >= {min_t}")
            trial(t)
            auto = False
        else:
            lo = max(min_t, cfg.t_min or min_t)
            hi = max(lo, cfg.t_max)
            while lo < hi:  # smallest t that passes, assuming errors fall as t grows
                mid = (lo + hi) // 2
                if trial(mid)[1] <= base_val + cfg.tolerance:
                    hi = mid
                else:
                    lo = mid + 1
            t = lo
            trial(t)
            auto = True
        err0, err1, f, cand, secs = trials[t]
        model = cand
        frozen = layer_frozen
        encoded[name] = EncodedLayer(f, codebook, shape)
        encoded_indices[name] = indices
        reports.append(
            LayerReport(
                name=name,
                paper_name=lr.paper_name,
                shape=shape,
                nonzero=int(keys.size),
                k=int(lr.k),
                t=t,
                auto_t=auto,
                m=int(f.m),
                false_positives=int(f.count_false_positives()),
                filter_bytes=int(f.nbytes),
                build_seconds=secs,
                val_error_encoded=err0,
                val_error_retrained=err1,
                trials=[{"t": tt, "val_error_encoded": v[0], "val_error_retrained": v[1]} for tt, v in sorted(trials.items())],
            )
        )

    tensors: dict[str, Any] = {}
    for n, p in model.state_dict().items():
        tensors[n] = encoded[n] if n in encoded else p.detach().cpu().numpy().copy()
    return CompressResult(
        model=model,
        tensors=tensors,
        layers=reports,
        indices=encoded_indices,
        simplified_val_error=base_val,
        simplified_test_error=float(simplified.test_error),
        val_error=evaluate(model, data.val),
        test_error=evaluate(model, data.test),
        seconds=time.perf_counter() - t_start,
    )
