"""The named steps of Algorithm 1, shared by :func:`~weightless.pipeline.encode.encode_with_retraining`
and the experiments: build the least harmful filter of a layer, retrain the model around the
encoded layers, cluster a pending layer again. (Deciding is :mod:`weightless.pipeline.contract`.)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from .config import AUTO_COMPACT_MAX_POSITIONS, FilterSearch, Retraining

__all__ = ["layer_seed", "resolve_construction", "best_filter", "retrain_around", "recluster", "min_t", "size_cap", "ordered_layers", "bias_of"]


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


def best_filter(model: Any, name: str, indices: np.ndarray, codebook: np.ndarray, k: int, t: int,
                cfg: FilterSearch, rank_task: Any, construction: str) -> tuple[Any, float, float]:
    """Build filters of layer ``name`` (seeds derived from the layer's) and keep the one whose
    reconstruction gives ``model`` the lowest loss on the ranking data; the model's layer is
    left holding the kept filter's weights.

    ``cfg.seed_trials`` whole filters are built; the loss ranks them, it never accepts one.

    Returns:
        ``(filter, ranking loss, build seconds)``.

    Raises:
        ConstructionError: a filter could not be built.
    """
    import torch

    from ..filters import build
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
    assert best is not None  # seed_trials >= 1 (validated)
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


def retrain_around(model: Any, task: Any, cfg: Retraining, *, encoded: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   pending: Mapping[str, tuple[np.ndarray, np.ndarray]], trainable: set[str], teacher: Any,
                   desc: str, progress: bool) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Retrain ``model`` in place after an encoding.

    ``encoded``: name -> (decoded indices, codebook) of the encoded layers; their indices never
    change, their codebooks train when ``cfg.train_encoded``. ``pending``: name -> (indices,
    codebook) of simplified layers still to encode: free under their pruning masks.
    ``trainable``: the other parameters to train (the later layers, biases).

    Returns:
        ``(encoded, pending)`` with the retrained codebooks; a pending layer's indices then
        only carry its mask (it is clustered again before its encoding).
    """
    import torch

    from ..simplify.magnitude import get_param
    from ..training.loop import train

    if cfg.train is None:
        raise ValueError("retrain_around needs a Retraining with a train config")
    rc = replace(cfg.train, progress=progress, desc=desc)
    attached: list[str] = []
    masks: dict[str, Any] = {}
    names = set(trainable)
    try:
        if cfg.train_encoded:
            for n, (idx, cb) in encoded.items():
                _attach(model, n, cb, idx)
                attached.append(n)
        for n, (idx, _) in pending.items():
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


def min_t(k: int) -> int:
    """The smallest t a filter of ``k`` values can have: ``ceil(log2 k) + 1`` (1 for k = 1)."""
    return int(np.ceil(np.log2(k))) + 1 if k > 1 else 1


def size_cap(name: str, indices: np.ndarray, codebook: np.ndarray, k: int, lo: int, hi: int, limit: int,
              cfg: FilterSearch) -> int:
    """The largest t in [lo, hi] whose filter record (one seed) is smaller than ``limit`` bytes
    (lo - 1 if none): larger t cannot beat the lossless record. Sizes are entropy-coded, as
    :func:`weightless.save` writes by default."""
    from ..filters import build
    from ..io.records import filter_record

    flat = indices.ravel()
    keys = np.flatnonzero(flat >= 0).astype(np.int64)
    construction = resolve_construction(cfg.construction, int(flat.size))
    for t in range(lo, hi + 1):
        f = build(keys, flat[keys].astype(np.int64), k=k, t=t, size=int(flat.size), seed=layer_seed(cfg.seed, name) >> 1,
                  construction=construction, c=cfg.c, shards=cfg.shards)
        if len(filter_record(name, f, codebook, indices.shape, entropy=True).payload) >= limit:
            return t - 1
    return hi


def ordered_layers(model: Any, names: list[str]) -> list[str]:
    """``names`` in the model's parameter order. Raises InputError: a name is not a parameter."""
    order = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in order]
    if missing:
        raise InputError(f"layers {missing} are not parameters of the model")
    return sorted(names, key=order.index)


def bias_of(name: str, params: list[str]) -> str | None:
    """The bias parameter beside weight ``name`` in ``params``, or None."""
    b = (name.rsplit(".", 1)[0] + ".bias") if "." in name else "bias"
    return b if b in params else None
