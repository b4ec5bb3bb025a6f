"""Layer-by-layer lossy encoding with retraining (paper section 3.2, Algorithm 1, Figure 3).

For each chosen layer, in model order: take its simplified form (pruned + clustered; in the
default "masked" retraining mode it is clustered again here, from the weights retraining left),
encode the nonzeros in a Bloomier filter with that layer's ``t``, put the weights reconstructed
*from the filter* (false positives included) into the model, freeze the filter, and retrain
the layers after it to absorb the errors (see :class:`~weightless.pipeline.config.EncodeConfig`
for the levers: pending layers free under their masks, codebooks and biases of encoded layers
trainable, distillation from the simplified model).

Filter seeds are ranked by loss on a slice of the training data (the harm of a false-positive
pattern), and t is decided on the validation data by a paired comparison with the reference
model (:func:`~weightless.pipeline.steps.paired_difference`); see
:func:`~weightless.pipeline.steps.split_validation` for loaders. The test split, when the task
has one, is only reported.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..io.files import EncodedLayer
from ..errors import InputError
from .config import AUTO_COMPACT_MAX_POSITIONS, EncodeConfig
from ..io.records import _round_to
from ..io.clustered import Clustered
from .whole import lossless_bytes, simplify_rest
from .steps import (best_filter, layer_seed, paired_difference, recluster, reprune, resolve_construction, retrain_around,
                    split_validation)

__all__ = ["AUTO_COMPACT_MAX_POSITIONS", "resolve_construction", "EncodeConfig", "LayerReport", "CompressResult",
           "encode_with_retraining", "layer_seed"]


@dataclass
class LayerReport:
    """What happened to one encoded layer (errors in % on the data that decided t)."""

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
    decision: dict[str, Any] = field(default_factory=dict)
    monotone: bool = True
    trials: list[dict[str, Any]] = field(default_factory=list)
    lossless_bytes: int = 0  # the lossless record of the same layer: the alternative the filter had to beat

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["shape"] = list(self.shape)
        return d


@dataclass
class CompressResult:
    """The encoded model: ``model`` holds exactly the weights the file will decode to (before
    any float16 rounding of dense layers); ``tensors`` is what :func:`weightless.save` takes.
    Errors are in % of the task's metric; test errors are None without a test split."""

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


def _ordered(model: Any, names: list[str]) -> list[str]:
    order = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in order]
    if missing:
        raise InputError(f"layers {missing} are not parameters of the model")
    return sorted(names, key=order.index)


def _bias_of(name: str, params: list[str]) -> str | None:
    b = (name.rsplit(".", 1)[0] + ".bias") if "." in name else "bias"
    return b if b in params else None


def _set_clustered(model: Any, name: str, indices: np.ndarray, codebook: np.ndarray) -> None:
    import torch

    from ..simplify.magnitude import get_param

    p = get_param(model, name)
    w = np.where(indices >= 0, np.asarray(codebook, np.float32)[np.maximum(indices, 0)], np.float32(0))
    with torch.no_grad():
        p.copy_(torch.from_numpy(w).to(p.device, p.dtype))


def _size_cap(name: str, indices: np.ndarray, codebook: np.ndarray, k: int, lo: int, hi: int, limit: int,
              cfg: EncodeConfig, construction: str) -> int:
    """The largest t in [lo, hi] whose filter record (one seed) is smaller than ``limit`` bytes
    (lo - 1 if none): larger t cannot beat the lossless record."""
    from ..filters import build
    from ..io.records import filter_record

    flat = indices.ravel()
    keys = np.flatnonzero(flat >= 0).astype(np.int64)
    for t in range(lo, hi + 1):
        f = build(keys, flat[keys].astype(np.int64), k=k, t=t, size=int(flat.size), seed=layer_seed(cfg.seed, name) >> 1,
                  construction=construction, c=cfg.c, shards=cfg.shards)
        if len(filter_record(name, f, codebook, indices.shape, entropy=cfg.entropy).payload) >= limit:
            return t - 1
    return hi


def _monotone(trials: dict[int, Any]) -> bool:
    flags = [trials[t][0].accepted for t in sorted(trials)]
    return all(a <= b for a, b in zip(flags, flags[1:]))


def encode_with_retraining(
    simplified: Any,
    data: Any,
    cfg: EncodeConfig,
    *,
    reference: Any = None,
    tolerance: float | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> CompressResult:
    """Encode the layers of a :class:`~weightless.simplify.SimplifyResult` one by one with
    retraining in between (Algorithm 1).

    Args:
        data: the task (:class:`~weightless.training.task.Task` or what :func:`as_task` takes).
        reference: the model a trial is compared with for the t decision (default: the
            simplified model); ``tolerance`` (default ``cfg.tolerance``) is the allowed error
            increase against it, in percentage points.

    Returns:
        A :class:`CompressResult` (per-layer report, validation and test errors).

    Raises:
        InputError: invalid config. ConstructionError: a filter could not be built.
    """
    from ..simplify.magnitude import get_param
    from ..training.loop import evaluate, per_example
    from ..training.task import as_task

    cfg.validate()
    task = as_task(data)
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    tol = cfg.tolerance if tolerance is None else float(tolerance)
    rank, decide, disjoint = split_validation(task)
    if not disjoint:
        say("validation data cannot be cut in two (a loader): seeds and t are decided on the same examples")
    ref_model = simplified.model if reference is None else reference
    ref_err, ref_loss = per_example(ref_model, decide, "val")
    teacher = None
    if cfg.retrain is not None and cfg.retrain.distill > 0:
        teacher = copy.deepcopy(simplified.model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    model = copy.deepcopy(simplified.model)
    names = _ordered(model, list(simplified.layers))
    params = [n for n, _ in model.named_parameters()]
    pending = {n: (simplified.layers[n].indices, simplified.layers[n].codebook) for n in names}
    encoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    filters: dict[str, Any] = {}
    true_indices: dict[str, np.ndarray] = {}
    reports: list[LayerReport] = []
    retrained = False

    for li, name in enumerate(names):
        lr = simplified.layers[name]
        indices, codebook = pending.pop(name)
        later = set(params[params.index(name) + 1 :]) - set(pending) - set(encoded) - {name}
        biases = {_bias_of(n, params) for n in [*encoded, name]} - {None}
        trainable = (later - biases) | (biases if cfg.train_encoded else set())
        mask = indices >= 0
        if cfg.retrain_mode == "dense" and retrained:
            mask = reprune(model, task, cfg, name, int(mask.sum()), trainable | set(pending), teacher, progress)
        if cfg.retrain_mode in ("masked", "dense") and retrained:
            indices, codebook = recluster(model, name, mask, lr.k, lr.init, seed=cfg.seed + li)
        shape = tuple(indices.shape)
        construction = resolve_construction(cfg.construction, int(indices.size))
        min_t = max(int(np.ceil(np.log2(lr.k))) + 1 if lr.k > 1 else 1, 1)
        trials: dict[int, Any] = {}

        def trial(t: int) -> Any:  # t = 0: the lossless record (no filter, no false positives)
            if t in trials:
                return trials[t]
            cand = copy.deepcopy(model)
            if t == 0:
                f, rank_loss, secs, dec_idx = None, 0.0, 0.0, indices
                _set_clustered(cand, name, indices, codebook)
            else:
                f, rank_loss, secs = best_filter(cand, name, indices, codebook, lr.k, t, cfg, rank, construction)
                dec_idx = f.reconstruct_indices(shape)
            e0 = per_example(cand, decide, "val")[0]
            enc = {**encoded, name: (dec_idx, codebook)}
            pend = dict(pending)
            if cfg.retrain is not None and (trainable or pend or cfg.train_encoded):
                enc, pend = retrain_around(cand, task, cfg, encoded=enc, pending=pend, trainable=trainable,
                                           teacher=teacher, desc=f"retrain after {name} t={t}", progress=progress)
            e1, l1 = per_example(cand, decide, "val")
            dec = paired_difference(e1, ref_err, tol, cfg.confidence_z, losses=l1, reference_losses=ref_loss, rule=cfg.t_rule)
            say(f"{name}: {f't={t} ({construction})' if t else 'lossless'} val error {100 * e0.mean():.2f}% encoded, {dec.error:.2f}% retrained, "
                f"{dec.describe()} vs reference {dec.reference_error:.2f}%: "
                f"{'kept (exact records need no rule)' if not t else 'accepted' if dec.accepted else 'rejected'}")
            trials[t] = (dec, float(100 * e0.mean()), f, cand, secs, enc, pend, rank_loss)
            return trials[t]

        lossless = lossless_bytes(indices, codebook)  # the record a filter has to beat
        if name in cfg.t:
            t = int(cfg.t[name])
            if 0 < t < min_t:
                raise InputError(f"t = {t} for {name!r} is too small for k = {lr.k}: need t >= {min_t}")
            trial(t)
            auto = False
        else:
            lo = max(min_t, cfg.t_min or min_t)
            hi = max(lo, cfg.t_max)
            if cfg.lossless_fallback:
                hi = _size_cap(name, indices, codebook, lr.k, lo, hi, lossless, cfg, construction)
            t = 0
            if hi >= lo:
                while lo < hi:  # smallest accepted t, assuming acceptance grows with t (checked below)
                    mid = (lo + hi) // 2
                    if trial(mid)[0].accepted:
                        hi = mid
                    else:
                        lo = mid + 1
                t = lo
                trial(t)
            if cfg.lossless_fallback and (t == 0 or not trials[t][0].accepted):
                say(f"{name}: no filter smaller than the lossless record ({lossless} bytes) passed; stored lossless")
                t = 0
                trial(0)
            auto = True
        dec, e0, f, cand, secs, enc, pend, _ = trials[t]
        mono = _monotone({tt: v for tt, v in trials.items() if tt})
        if auto and t and not dec.accepted:
            say(f"{name}: no t up to t_max = {cfg.t_max} passed the rule; using t = {t}")
        if not mono:
            say(f"{name}: the t trials are not monotone (an accepted t below a rejected one): "
                + ", ".join(f"t={tt} {'ok' if v[0].accepted else 'no'}" for tt, v in sorted(trials.items())))
        model, encoded, pending = cand, enc, pend
        retrained = retrained or cfg.retrain is not None
        filters[name] = f
        true_indices[name] = indices
        reports.append(LayerReport(
            name=name, paper_name=lr.paper_name, shape=shape, nonzero=int((indices >= 0).sum()), k=int(lr.k), t=t,
            auto_t=auto, t_within_tolerance=dec.accepted, construction=construction if f else "lossless",
            seed=int(f.seed) if f else 0, m=int(f.m) if f else 0,
            false_positives=int(f.count_false_positives()) if f else 0,
            filter_bytes=int(f.nbytes) if f else lossless, build_seconds=secs, lossless_bytes=lossless,
            val_error_encoded=e0, val_error_retrained=dec.error, decision=dec.as_dict(), monotone=mono,
            trials=[{"t": tt, "val_error_encoded": v[1], **v[0].as_dict()} for tt, v in sorted(trials.items())],
        ))

    import torch

    rest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    tail: list[dict] = []
    if cfg.whole_model:
        model, encoded, rest, tail = simplify_rest(model, task, cfg, encoded=encoded, decide=decide, ref_err=ref_err, ref_loss=ref_loss,
                                                   tol=tol, teacher=teacher, progress=progress, say=say)
    tensors: dict[str, Any] = {}
    for n, (idx, cb) in {**encoded, **rest}.items():  # the file decodes to exactly what was evaluated
        p = get_param(model, n)
        dtype = str(p.dtype).removeprefix("torch.")
        if filters.get(n) is not None:
            value = filters[n].reconstruct(tuple(p.shape), cb)
            tensors[n] = EncodedLayer(filters[n], cb, tuple(p.shape), dtype=dtype)
            if not np.array_equal(p.detach().cpu().numpy(), value):
                raise RuntimeError(f"encoded layer {n} does not match its filter")  # a bug, not a user error
        else:
            cb = _round_to(np.asarray(cb, np.float32), dtype)
            if cfg.round_codebooks and dtype == "float32" and np.all(np.abs(cb) < 65504):
                cb = cb.astype(np.float16).astype(np.float32)  # stored in 2 bytes a value
            c = Clustered(idx, cb.astype(np.float64), dtype)
            value = c.values()
            tensors[n] = c
        with torch.no_grad():  # bit for bit, signed zeros included
            p.copy_(torch.from_numpy(value).to(p.device, p.dtype))
    for n, p in model.state_dict().items():
        if n not in tensors:
            tensors[n] = p.detach().cpu().clone()  # any dtype, 0-d included, exactly as the model holds it
    tensors = {n: tensors[n] for n in model.state_dict()}  # the model's order
    return CompressResult(
        model=model,
        tensors=tensors,
        layers=reports,
        indices=true_indices,
        simplified_val_error=float(simplified.val_error),
        simplified_test_error=simplified.test_error,
        val_error=evaluate(model, task, split="val"),
        test_error=None if task.test is None else evaluate(model, task, split="test"),
        seconds=time.perf_counter() - t_start,
        reference="simplified" if reference is None else "user model",
        reference_val_error=float(100 * ref_err.mean()),
        validation_disjoint=disjoint,
        simplified=simplified,
        tail=tail,
    )
