"""Whole-model files: every tensor under the same accuracy budget, each in its smallest encoding.

After the chosen layers are encoded (Algorithm 1), the tensors the recipe left dense (a first
conv, an output layer, every bias) are simplified too, one decision at a time, each accepted
only when the whole model still passes the accuracy contract's rule on the decision data
(:class:`~weightless.pipeline.contract.Contract`):

1. each remaining weight (>= 2 dimensions), in model order: the smallest nonzero fraction of
   ``EncodeConfig.tail_nonzero`` (searched like t: the fractions are assumed to pass from some
   point on) at which magnitude pruning + k-means to ``tail_k`` values, then retraining of
   what is still free and of every codebook, passes; none passing leaves it dense;
2. the remaining 1-D float parameters (biases, norms' affine parameters), all at once,
   clustered to the first of ``tail_bias_k`` (16, then 64) values each that passes (retrained
   codebooks), else kept exact as their own codebooks (rung 0), which the final codebook
   rounding stores at float16 precision (2 bytes a value; the reported errors are measured
   after that rounding).

Every simplified tensor is then a :class:`~weightless.io.clustered.Clustered` value, which
:func:`weightless.save` stores in its smallest lossless encoding. Buffers (BatchNorm running
statistics) stay as they are.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..errors import ConstructionError
from .config import EncodeConfig
from .contract import Contract
from .steps import retrain_around

__all__ = ["simplify_rest", "lossless_bytes"]


def lossless_bytes(indices: np.ndarray, codebook: np.ndarray) -> int:
    """Payload bytes of the smallest lossless record of a clustered layer (sparse / indexed)."""
    from ..io.clustered import Clustered, clustered_candidates

    return min(len(r.payload) for r in clustered_candidates("w", Clustered(indices, codebook)))


def _prune_cluster(model: Any, name: str, nonzero: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from ..simplify.cluster import cluster_weight
    from ..simplify.magnitude import get_param, topk_mask

    p = get_param(model, name)
    m = topk_mask(p, nonzero).cpu().numpy() > 0 if nonzero < 1 else np.ones(tuple(p.shape), dtype=bool)
    w = p.detach().cpu().numpy() * m
    kk = max(1, min(k, int(m.sum())))
    cl = cluster_weight(w, kk, "density", seed=seed)
    with torch.no_grad():
        p.copy_(torch.from_numpy(cl.weights()).to(p.device, p.dtype))
    return cl.indices, cl.codebook


def _cluster_vector(model: Any, name: str, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster every value of a 1-D parameter (zeros included) to at most ``k`` values."""
    import torch

    from ..simplify.cluster import kmeans_1d
    from ..simplify.magnitude import get_param

    p = get_param(model, name)
    v = p.detach().cpu().numpy().astype(np.float64).ravel()
    uniq = np.unique(v)
    k = k or uniq.size  # 0: every value its own
    if uniq.size <= k:
        cb, idx = uniq, np.searchsorted(uniq, v)
    else:
        while True:  # k-means may merge centroids closer than float32 resolution: fewer values then
            try:
                cb, idx = kmeans_1d(v, k, seed=seed)
                break
            except ConstructionError:
                if k <= 2:
                    raise
                k = max(2, (3 * k) // 4)
    cb = np.asarray(cb, dtype=np.float32)
    with torch.no_grad():
        p.copy_(torch.from_numpy(cb[idx].reshape(tuple(p.shape))).to(p.device, p.dtype))
    return np.asarray(idx, dtype=np.int64).reshape(tuple(p.shape)), cb


def simplify_rest(model: Any, task: Any, cfg: EncodeConfig, *, encoded: dict[str, tuple[np.ndarray, np.ndarray]],
                  contract: Contract, teacher: Any, progress: bool,
                  say: Callable[[str], None]) -> tuple[Any, dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]], list[dict]]:
    """Simplify the tensors Algorithm 1 left dense (see the module docstring).

    Args:
        encoded: name -> (indices, codebook) of the layers already encoded (their indices stay;
            codebooks retrain and come back updated).
        contract: decides each step (a candidate that passes before retraining is kept as it
            is when ``cfg.accept_before_retraining``).

    Returns:
        ``(model, encoded, rest, report)``: the model, the encoded layers' updated codebooks,
        name -> (indices, codebook) of every tensor simplified here, and one report line per
        decision.
    """
    params = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
    rest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    report: list[dict] = []
    epochs = None if cfg.retrain is None else (cfg.retrain.epochs / 3 if cfg.tail_epochs is None else cfg.tail_epochs)
    short = None if not epochs else replace(cfg.retrain, epochs=epochs)
    rcfg = replace(cfg, retrain=short)

    def attempt(change: Callable[[Any], dict[str, tuple[np.ndarray, np.ndarray]]], what: str) -> tuple:
        cand = copy.deepcopy(model)
        new = change(cand)
        frozen = {**encoded, **rest, **new}
        free = set(params) - set(frozen)
        enc = frozen
        dec = contract.decide(cand)
        retrain = rcfg.retrain is not None and not (cfg.accept_before_retraining and dec.accepted)
        if retrain:
            enc, _ = retrain_around(cand, task, rcfg, encoded=frozen, pending={}, trainable=free, teacher=teacher,
                                    desc=f"retrain after {what}", progress=progress)
            dec = contract.decide(cand)
        say(f"{what}: val error {dec.error:.2f}% {'retrained' if retrain else 'not retrained'}, {dec.describe()} "
            f"vs reference: {'accepted' if dec.accepted else 'rejected'}")
        report.append({"what": what, "retrained": retrain, **dec.as_dict()})
        return dec.accepted, cand, enc, new

    weights = [n for n in params if n not in encoded and model.get_parameter(n).dim() >= 2]
    for i, name in enumerate(weights):
        ladder = sorted(cfg.tail_nonzero, reverse=True)
        lo, hi, best = 0, len(ladder) - 1, None  # find the last (smallest) fraction that passes
        tried: dict[int, tuple] = {}

        def run(j: int) -> tuple:
            if j not in tried:
                tried[j] = attempt(lambda m: {name: _prune_cluster(m, name, ladder[j], cfg.tail_k, cfg.seed + i)},
                                   f"{name} at {100 * ladder[j]:g}% nonzero, k={cfg.tail_k}")
            return tried[j]

        if run(0)[0]:
            best = 0
            lo = 1
            while lo <= hi:
                mid = (lo + hi) // 2
                if run(mid)[0]:
                    best, lo = mid, mid + 1
                else:
                    hi = mid - 1
        if best is None:
            say(f"{name}: no simplification passed; stored dense")
            continue
        _, model, enc, new = tried[best]
        encoded = {n: enc[n] for n in encoded}
        rest = {**{n: enc[n] for n in rest}, **{n: enc[n] for n in new}}

    vectors = [n for n in params if n not in encoded and n not in rest and model.get_parameter(n).dim() < 2]
    for kb in cfg.tail_bias_k if vectors else ():
        if kb == 0:  # exact: nothing changes now (the final codebook rounding makes it float16)
            rest = {**rest, **{n: _cluster_vector(model, n, 0, 0) for n in vectors}}
            say(f"{len(vectors)} vectors (biases) kept exact, stored at float16 precision")
            report.append({"what": "vectors kept exact (float16 at the end)", "accepted": True})
            break
        ok, cand, enc, new = attempt(
            lambda m: {n: _cluster_vector(m, n, int(kb), cfg.seed + j) for j, n in enumerate(vectors)},
            f"{len(vectors)} vectors (biases) clustered to {kb} values")
        if ok:
            model = cand
            encoded = {n: enc[n] for n in encoded}
            rest = {n: enc[n] for n in [*rest, *new]}
            break
    return model, encoded, rest, report
