"""Layer-by-layer lossy encoding with retraining (paper section 3.2, Algorithm 1, Figure 3).

For each chosen layer, in model order: take its simplified form (pruned + clustered), encode
the nonzeros in a Bloomier filter with that layer's ``t``, put the weights reconstructed *from
the filter* (false positives included) into the model, freeze the layer (weights and bias),
and retrain the layers after it for a few epochs to absorb the errors. Encoded layers are never
retrained.

Two refinements beyond the paper, both choices of what the file stores, never of the test data:

- Layers still waiting to be encoded are retrained *as clustered layers* (trained
  quantization: their assignments stay fixed, their k shared values are trained, the gradient
  of a value being the sum of its members' gradients), so they need no re-clustering.
- Seed selection: ``seed_trials`` filters are built with different seeds (each false-positive
  pattern is different) and the one whose reconstruction gives the lowest *validation* loss is
  kept; its seed is recorded in the file.

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

#: Largest layer (positions) for which construction="auto" picks the compact construction.
AUTO_COMPACT_MAX_POSITIONS = 1 << 24

__all__ = ["AUTO_COMPACT_MAX_POSITIONS", "resolve_construction", "EncodeConfig", "LayerReport", "CompressResult", "encode_with_retraining", "layer_seed"]


@dataclass(frozen=True)
class EncodeConfig:
    """How to encode the simplified layers.

    Attributes:
        t: layer name -> bits per cell; layers not named get an automatic t.
        t_min, t_max: range searched for an automatic t (t_min None: ceil(log2 k) + 1).
        tolerance: allowed increase of validation error (percentage points) for automatic t.
        retrain: training of the later layers after each encoding (None: no retraining).
        construction: filter construction: "paper", "compact", or "auto" (compact for layers of
            up to ``AUTO_COMPACT_MAX_POSITIONS`` positions, where its slower decode costs
            milliseconds; paper above).
        c: cells per key (None: the construction's default).
        shards: filter shards per layer.
        entropy: entropy-code the tables in the file.
        dense_dtype: on-disk dtype of layers stored densely ("float32" or "float16").
        seed: base seed of the filters (each layer derives its own from its name).
        seed_trials: filters built per (layer, t) to pick the least harmful false positives.
    """

    t: Mapping[str, int] = field(default_factory=dict)
    t_min: int | None = None
    t_max: int = 12
    tolerance: float = 0.05
    retrain: Any = None
    construction: str = "auto"
    c: float | None = None
    shards: int = 1
    entropy: bool = True
    dense_dtype: str = "float32"
    seed: int = 0
    seed_trials: int = 8

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
        if not 1 <= self.seed_trials <= 1024:
            raise InputError(f"seed_trials must be in [1, 1024], got {self.seed_trials}")
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
    t_within_tolerance: bool
    construction: str
    seed: int
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


def resolve_construction(construction: str, positions: int) -> str:
    """Return the construction used for a layer of ``positions`` positions ("auto" resolved:
    compact for small layers when it can be built here, i.e. with numba, else paper)."""
    from .._compat import HAVE_NUMBA
    from ..filters import constructions

    if construction != "auto":
        return construction
    compact = constructions().get("compact")
    if compact is not None and (HAVE_NUMBA or not compact.solve_needs_numba) and positions <= AUTO_COMPACT_MAX_POSITIONS:
        return "compact"
    return "paper"


def _val_loss(model: Any, split: Any, batch: int = 2000) -> float:
    import torch
    import torch.nn.functional as F

    was = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(split), batch):
            x = torch.as_tensor(split.x[i : i + batch])
            y = torch.as_tensor(split.y[i : i + batch])
            total += float(F.cross_entropy(model(x), y, reduction="sum"))
    model.train(was)
    return total / max(len(split), 1)


def _quantized(codebook: np.ndarray, indices: np.ndarray) -> Any:
    """A parametrization ``W -> codebook[indices]`` (0 where ``indices == -1``), codebook trainable."""
    import torch
    from torch import nn

    class Quantized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.codebook = nn.Parameter(torch.from_numpy(np.array(codebook, dtype=np.float32)))
            self.register_buffer("idx", torch.from_numpy(np.maximum(indices, 0).astype(np.int64)))
            self.register_buffer("nz", torch.from_numpy((indices >= 0).astype(np.float32)))

        def forward(self, w: Any) -> Any:
            return self.codebook[self.idx] * self.nz

    return Quantized()


def _retrain(model: Any, data: Any, cfg: Any, trainable: set[str], pending: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train ``trainable`` parameters and the codebooks of the ``pending`` clustered layers
    (assignments fixed); return the pending layers' new (indices, codebook)."""
    import torch
    from torch.nn.utils import parametrize

    from ..training import train

    for name, (idx, cb) in pending.items():
        mod, _, attr = name.rpartition(".")
        parametrize.register_parametrization(model.get_submodule(mod), attr, _quantized(cb, idx))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        names = {n for n, _ in model.named_parameters()}
        books = {n for n in names if n.endswith(".codebook")}
        train(model, data, cfg, trainable=(trainable & names) | books)
    finally:
        for name, (idx, _) in pending.items():
            mod, _, attr = name.rpartition(".")
            module = model.get_submodule(mod)
            cb = getattr(module.parametrizations, attr)[0].codebook.detach().cpu().numpy().astype(np.float32)
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
            out[name] = (idx, cb)
            with torch.no_grad():
                w = np.where(idx >= 0, cb[np.maximum(idx, 0)], 0).astype(np.float32)
                getattr(module, attr).copy_(torch.from_numpy(w))
    return out


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

    from .. import training
    from ..filters.hashing import derive_seed
    from ..simplify.magnitude import get_param

    cfg.validate()
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    model = copy.deepcopy(simplified.model)
    names = _ordered(model, list(simplified.layers))
    param_order = [n for n, _ in model.named_parameters()]
    # current (indices, codebook) of every simplified layer; pending ones are retrained clustered
    state = {n: (simplified.layers[n].indices, simplified.layers[n].codebook) for n in names}
    frozen: set[str] = set()
    encoded: dict[str, EncodedLayer] = {}
    encoded_indices: dict[str, np.ndarray] = {}
    reports: list[LayerReport] = []
    base_val = float(simplified.val_error)

    for li, name in enumerate(names):
        lr = simplified.layers[name]
        indices, codebook = state[name]
        shape = tuple(indices.shape)
        flat = indices.ravel()
        keys = np.flatnonzero(flat >= 0).astype(np.int64)
        values = flat[keys].astype(np.int64)
        construction = resolve_construction(cfg.construction, int(flat.size))
        bias = _module_prefix(name) + ".bias"
        layer_frozen = frozen | {name} | ({bias} if bias in param_order else set())
        later = param_order[param_order.index(name) + 1 :]
        pending_names = names[li + 1 :]
        trainable = {n for n in later if n not in layer_frozen and n not in pending_names}
        min_t = max(int(np.ceil(np.log2(lr.k))) + 1 if lr.k > 1 else 1, 1)
        base_seed = layer_seed(cfg.seed, name)
        trials: dict[int, Any] = {}

        def trial(t: int) -> Any:
            if t in trials:
                return trials[t]
            best = None
            secs = 0.0
            cand = copy.deepcopy(model)
            weight = get_param(cand, name)
            for s in range(cfg.seed_trials):
                t0 = time.perf_counter()
                f = build(keys, values, k=lr.k, t=t, size=int(flat.size), seed=derive_seed(base_seed, s) >> 1,
                          construction=construction, c=cfg.c, shards=cfg.shards)
                secs += time.perf_counter() - t0
                w = torch.from_numpy(f.reconstruct(shape, codebook))
                with torch.no_grad():
                    weight.copy_(w)
                loss = _val_loss(cand, data.val) if cfg.seed_trials > 1 else 0.0
                if best is None or loss < best[0]:
                    best = (loss, f, w)
            _, f, w = best
            with torch.no_grad():
                weight.copy_(w)
            err0 = training.evaluate(cand, data.val)
            pending = {n: state[n] for n in pending_names}
            if cfg.retrain is not None and (trainable or pending):
                rcfg = replace(cfg.retrain, progress=progress, desc=f"retrain after {name} t={t}")
                pending = _retrain(cand, data, rcfg, trainable, pending)
            err1 = training.evaluate(cand, data.val)
            say(f"{name}: t={t} ({construction}) val error {err0:.2f}% encoded, {err1:.2f}% retrained "
                f"(simplified {base_val:.2f}%)")
            trials[t] = (err0, err1, f, cand, secs, pending)
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
        err0, err1, f, cand, secs, pending = trials[t]
        within = err1 <= base_val + cfg.tolerance
        if auto and not within:
            say(f"{name}: no t up to t_max = {cfg.t_max} kept the validation error within "
                f"{cfg.tolerance} points of the simplified model's; using t = {t}")
        model = cand
        state.update(pending)
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
                t_within_tolerance=within,
                construction=construction,
                seed=int(f.seed),
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
        val_error=training.evaluate(model, data.val),
        test_error=training.evaluate(model, data.test),
        seconds=time.perf_counter() - t_start,
    )
