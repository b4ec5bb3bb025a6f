"""The named steps of Algorithm 1, shared by :func:`~weightless.pipeline.encode.encode_with_retraining`
and the experiments: split the validation data, build the least harmful filter of a layer,
retrain the model around the encoded layers, cluster a pending layer again, and decide t.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from .config import AUTO_COMPACT_MAX_POSITIONS, EncodeConfig

__all__ = ["layer_seed", "resolve_construction", "split_validation", "best_filter", "retrain_around",
           "recluster", "reprune", "paired_difference", "Decision"]


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


#: Training examples on which filter seeds are ranked (when the training data can be sliced).
RANK_EXAMPLES = 5000


def split_validation(task: Any) -> tuple[Any, Any, bool]:
    """Return ``(rank_task, decide_task, disjoint)``: the data whose "val" split ranks filter
    seeds, and the data whose "val" split decides t.

    Seeds are ranked by loss on the first :data:`RANK_EXAMPLES` training examples (harm of a
    false-positive pattern, not generalisation), so t is decided on all the validation data.
    When the training data is a loader (cannot be sliced), the validation data is cut in two
    halves instead; when that is a loader too, both use it (``disjoint`` False, reported).
    """
    train = task.source("train")
    if train.kind != "loader":
        return task.with_val(train.head(RANK_EXAMPLES)), task, True
    src = task.source("val")
    try:
        a, b = src.split(2)
    except InputError:
        return task, task, False
    return task.with_val(a), task.with_val(b), True


@dataclass(frozen=True)
class Decision:
    """A paired comparison of a candidate with the reference on the same examples (errors in
    %; the loss figures, when given, are the paired mean difference of per-example losses, its
    standard error, the reference's mean loss and the scale that converts loss to percentage
    points; ``rule`` says which of the two decided ``accepted``)."""

    error: float
    reference_error: float
    difference: float
    standard_error: float
    accepted: bool
    loss_difference: float | None = None
    loss_standard_error: float | None = None
    reference_loss: float | None = None
    rule: str = "error"
    loss_scale: float | None = None  # percentage points per unit of loss (the reference's error-to-loss ratio)

    def describe(self) -> str:
        """One line for logs: the error difference, and under the loss rule the converted loss
        difference that decided (both +- their standard errors, in percentage points)."""
        s = f"{self.difference:+.2f} +- {self.standard_error:.2f} pp error"
        if self.rule == "loss" and self.loss_difference is not None and self.loss_scale is not None:
            k = self.loss_scale
            s += f", {self.loss_difference * k:+.3f} +- {self.loss_standard_error * k:.3f} pp loss (deciding)"
        return s

    def as_dict(self) -> dict[str, float | bool | None]:
        """JSON-ready dict."""
        return {k: (round(v, 6 if k.startswith("loss") else 4) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def _mean_se(d: np.ndarray) -> tuple[float, float]:
    n = d.size
    return float(d.mean()), (float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0)


def paired_difference(errors: np.ndarray, reference: np.ndarray, tolerance: float, z: float, *,
                      losses: np.ndarray | None = None, reference_losses: np.ndarray | None = None,
                      rule: str = "error") -> Decision:
    """Compare per-example errors of a candidate and the reference on the same examples.

    ``rule="error"``: accepted when ``difference + z * standard_error <= tolerance`` (all in
    percentage points), the standard error being that of the mean of the per-example
    differences. ``rule="loss"``: the same test on the paired mean *loss* difference converted
    to percentage points by the reference's error-to-loss ratio (error % / mean loss), i.e. a
    relative loss increase is allowed as large as the relative error increase ``tolerance``
    allows; the loss difference is far less noisy than error counts. ``losses`` and
    ``reference_losses`` are per-example losses on the same examples (required by "loss").

    Raises:
        InputError: ``rule`` unknown, or "loss" without losses.
    """
    diff, se = _mean_se((np.asarray(errors, dtype=np.float64) - np.asarray(reference, dtype=np.float64)) * 100.0)
    ld = lse = rl = scale = None
    if losses is not None and reference_losses is not None:
        ld, lse = _mean_se(np.asarray(losses, dtype=np.float64) - np.asarray(reference_losses, dtype=np.float64))
        rl = float(np.mean(reference_losses))
    ref_pct = float(reference.mean()) * 100.0
    if rl is not None:
        scale = max(ref_pct, 100.0 / max(reference.size, 1)) / max(rl, 1e-12)  # pp per unit of loss
    if rule == "error":
        accepted = diff + z * se <= tolerance + 1e-12
    elif rule == "loss":
        if ld is None:
            raise InputError("the loss rule needs per-example losses")
        accepted = (ld + z * lse) * scale <= tolerance + 1e-12
    else:
        raise InputError(f"t rule must be 'error' or 'loss', got {rule!r}")
    return Decision(float(errors.mean()) * 100.0, ref_pct, diff, se, accepted, ld, lse, rl, rule, scale)


def best_filter(model: Any, name: str, indices: np.ndarray, codebook: np.ndarray, k: int, t: int,
                cfg: EncodeConfig, rank_task: Any, construction: str) -> tuple[Any, float, float]:
    """Build filters of layer ``name`` (seeds derived from the layer's) and keep the one whose
    reconstruction gives ``model`` the lowest loss on the ranking data; the model's layer is
    left holding the kept filter's weights.

    ``cfg.seed_search`` "layer": ``cfg.seed_trials`` whole filters. "shard": the first
    ``cfg.seed_trials`` tables that solve each of the ``cfg.shards`` shards, and each shard's
    table chosen in turn (one coordinate-descent sweep, the other shards held at their current
    choice; each shard stores its own seed, so the file format is unchanged).

    Returns:
        ``(filter, ranking loss, build seconds)``.

    Raises:
        ConstructionError: a filter could not be built.
    """
    import torch

    from ..filters import build, build_candidates
    from ..filters.hashing import derive_seed
    from ..simplify.magnitude import get_param
    from ..training.loop import per_example

    flat = indices.ravel()
    keys = np.flatnonzero(flat >= 0).astype(np.int64)
    values = flat[keys].astype(np.int64)
    weight = get_param(model, name)
    base = layer_seed(cfg.seed, name)
    rank = cfg.seed_trials > 1

    def score(f: Any) -> tuple[float, Any]:
        w = torch.from_numpy(f.reconstruct(indices.shape, codebook)).to(weight.device, weight.dtype)
        with torch.no_grad():
            weight.copy_(w)
        return (float(per_example(model, rank_task, "val")[1].mean()) if rank else 0.0), w

    t0 = time.perf_counter()
    if cfg.seed_search == "shard":
        cands = build_candidates(keys, values, k=k, t=t, size=int(flat.size), seed=derive_seed(base, 0) >> 1,
                                 construction=construction, c=cfg.c, shards=cfg.shards, per_shard=cfg.seed_trials)
        secs = time.perf_counter() - t0
        choice = [0] * len(cands.options)
        f = cands.filter(choice)
        loss, w = score(f)
        best = (loss, f, w)
        for sh, opts in enumerate(cands.options):
            for o in range(1, len(opts) if rank else 1):
                f = cands.filter(choice[:sh] + [o] + choice[sh + 1:])
                loss, w = score(f)
                if loss < best[0]:
                    best, choice[sh] = (loss, f, w), o
        loss, f, w = best
    else:
        best = None
        secs = 0.0
        for s in range(cfg.seed_trials):
            t0 = time.perf_counter()
            f = build(keys, values, k=k, t=t, size=int(flat.size), seed=derive_seed(base, s) >> 1,
                      construction=construction, c=cfg.c, shards=cfg.shards)
            secs += time.perf_counter() - t0
            loss, w = score(f)
            if best is None or loss < best[0]:
                best = (loss, f, w)
        loss, f, w = best
    with torch.no_grad():
        weight.copy_(w)
    return f, loss, secs


def _attach(model: Any, name: str, codebook: np.ndarray, indices: np.ndarray) -> None:
    import torch
    from torch.nn.utils import parametrize

    from ..simplify.cluster import _quantized_param_module

    mod, _, attr = name.rpartition(".")
    module = model.get_submodule(mod)
    dev = getattr(module, attr).device
    q = _quantized_param_module()(torch.from_numpy(np.asarray(codebook, np.float32)).to(dev),
                                  torch.from_numpy(indices.astype(np.int64)).to(dev))
    parametrize.register_parametrization(module, attr, q)


def _detach(model: Any, name: str) -> np.ndarray:
    from torch.nn.utils import parametrize

    mod, _, attr = name.rpartition(".")
    module = model.get_submodule(mod)
    cb = getattr(module.parametrizations, attr)[0].codebook.detach().cpu().numpy().astype(np.float32)
    parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    return cb


def retrain_around(model: Any, task: Any, cfg: EncodeConfig, *, encoded: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   pending: Mapping[str, tuple[np.ndarray, np.ndarray]], trainable: set[str], teacher: Any,
                   desc: str, progress: bool) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Retrain ``model`` in place after an encoding.

    ``encoded``: name -> (decoded indices, codebook) of the encoded layers; their indices never
    change, their codebooks train when ``cfg.train_encoded``. ``pending``: name -> (indices,
    codebook) of simplified layers still to encode, retrained as ``cfg.retrain_mode`` says.
    ``trainable``: the other parameters to train (the later layers, biases).

    Returns:
        ``(encoded, pending)`` with the retrained codebooks; in "masked" mode a pending layer's
        indices only carry its mask (it is clustered again before its encoding).
    """
    import torch

    from ..simplify.magnitude import get_param
    from ..training.loop import train

    rc = replace(cfg.retrain, progress=progress, desc=desc)
    attached: list[str] = []
    masks: dict[str, Any] = {}
    names = set(trainable)
    try:
        if cfg.train_encoded:
            for n, (idx, cb) in encoded.items():
                _attach(model, n, cb, idx)
                attached.append(n)
        for n, (idx, cb) in pending.items():
            if cfg.retrain_mode == "centroid":
                _attach(model, n, cb, idx)
                attached.append(n)
            elif cfg.retrain_mode == "dense":
                names.add(n)
            else:
                p = get_param(model, n)
                masks[n] = torch.from_numpy((idx >= 0).astype(np.float32)).to(p.device)
                names.add(n)
        all_names = {n for n, _ in model.named_parameters()}
        names = (names & all_names) | {n for n in all_names if n.endswith(".codebook")}
        if names:
            train(model, task, rc, trainable=names, masks=masks, teacher=teacher)
    finally:
        books = {n: _detach(model, n) for n in attached}
    new_encoded = {n: (idx, books.get(n, cb)) for n, (idx, cb) in encoded.items()}
    new_pending = {n: (idx, books.get(n, cb)) for n, (idx, cb) in pending.items()}
    return new_encoded, new_pending


def reprune(model: Any, task: Any, cfg: EncodeConfig, name: str, keep: int, trainable: set[str], teacher: Any,
            progress: bool) -> np.ndarray:
    """Prune layer ``name`` (retrained dense) back to its ``keep`` largest weights and retrain
    ``trainable`` under that mask for ``cfg.reprune_epochs``. Returns the new mask."""
    import torch

    from ..simplify.magnitude import get_param, topk_mask
    from ..training.loop import train

    p = get_param(model, name)
    m = topk_mask(p, keep / p.numel()).to(p.device, p.dtype)
    with torch.no_grad():
        p.mul_(m)
    if cfg.retrain is not None and cfg.reprune_epochs > 0:
        rc = replace(cfg.retrain, epochs=cfg.reprune_epochs, progress=progress, desc=f"re-prune {name}")
        train(model, task, rc, trainable=set(trainable) | {name}, masks={name: m}, teacher=teacher)
    return m.detach().cpu().numpy() > 0


def recluster(model: Any, name: str, mask: np.ndarray, k: int, init: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the current surviving weights of layer ``name`` again (same k and initialisation)
    and put ``codebook[indices]`` into the model. Returns ``(indices, codebook)``."""
    import torch

    from ..simplify.cluster import cluster_weight
    from ..simplify.magnitude import get_param

    p = get_param(model, name)
    w = p.detach().cpu().numpy() * mask
    cl = cluster_weight(w, k, init, seed=seed)
    with torch.no_grad():
        p.copy_(torch.from_numpy(cl.weights()).to(p.device, p.dtype))
    return cl.indices, cl.codebook
