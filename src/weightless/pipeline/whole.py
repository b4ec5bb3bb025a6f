"""Whole-model files: every tensor under the same accuracy budget, each in its smallest encoding.

After the chosen layers are encoded (Algorithm 1), the tensors the recipe left dense (a first
conv, an output layer, every bias) are simplified too, one decision at a time, each accepted
only when the whole model still passes the accuracy contract's rule on the decision data
(:class:`~weightless.pipeline.contract.Contract`):

0. the units pruning left without inputs (a zero row of a linear layer's weight) folded into
   the next linear layer (:func:`~weightless.simplify.fold.fold_dead_units`, ``TailConfig.fold``):
   exact, so no decision; the fractions below are then of that layer's other weights;
1. each remaining weight (>= 2 dimensions), in model order: the smallest nonzero fraction of
   ``TailConfig.nonzero`` (from the top, one rung at a time, until one is rejected) at which
   magnitude pruning + k-means to ``TailConfig.k`` values, then retraining of what is still
   free and of every codebook, passes; when none passes (a model so far near the edge of the
   budget rejects any step), the weight clustered to ``TailConfig.exact_k`` (16, 64, 256)
   values in turn (fewer where k-means merges values closer than float32 resolution), kept when that changes no outcome on the decision data and its record is
   smaller than float16 storage; else the weight rounded to float16 (2 bytes a weight in the
   file) if that passes as it is or changes no outcome on the decision data; else the weight
   as it is;
   then, exact again, the units a pruned layer no longer reads (its column zero) dropped from
   the layer before it when that is not a filter (:func:`~weightless.simplify.fold.drop_unread`:
   their rows zero, and their record's);
2. the remaining 1-D float parameters (biases, norms' affine parameters), all at once,
   clustered to the first of ``TailConfig.bias_k`` (16, then 64) values each that passes (retrained
   codebooks), else the ``exact_k`` rungs as above, else kept exact as their own codebooks
   (rung 0), which the final codebook rounding stores at float16 precision (2 bytes a value;
   the reported errors are measured after that rounding);
3. fewer units, last (the steps above are what every file needs; a unit cut before them took
   the margin they needed: LeNet5 DNS at 1.0% went from 7,627 to 16,017 bytes, its output
   layer left in float16): for each pair of linear layers whose first is stored as a lossless
   record (not a filter) and whose second is not a filter, the fraction ``TailConfig.units`` of
   the first's live units that matter most kept (from the top, one rung at a time, until one is
   rejected), each other unit replaced by its mean (:func:`~weightless.simplify.fold.cut_units`;
   the biases and weights already clustered are clustered again), retrained when it does not
   pass as it is; fewer units make both layers smaller.

Every simplified tensor is then a :class:`~weightless.io.clustered.Clustered` value, which
:func:`weightless.save` stores in its smallest lossless encoding. Buffers (BatchNorm running
statistics) stay as they are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ..errors import ConstructionError
from .config import EncodeConfig
from .contract import Contract
from .steps import recluster, retrain_around

__all__ = ["simplify_rest", "lossless_bytes", "TailStep"]


def lossless_bytes(indices: np.ndarray, codebook: np.ndarray) -> int:
    """Payload bytes of the smallest lossless record of a clustered layer (sparse / indexed)."""
    from ..io.clustered import Clustered, clustered_candidates

    return min(len(r.payload) for r in clustered_candidates("w", Clustered(indices, codebook)))


def _fewer_values(cluster: Callable[[int], Any], k: int) -> Any:
    """``cluster(k)``, again at three quarters of k (at least 2) while k-means cannot make k
    distinct float32 values (it merges centroids closer than float32 resolution).

    Raises:
        ConstructionError: not even 2 distinct values.
    """
    while True:
        try:
            return cluster(k)
        except ConstructionError:
            if k <= 2:
                raise
            k = max(2, (3 * k) // 4)


def _prune_cluster(model: Any, name: str, nonzero: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from ..simplify.cluster import cluster_weight
    from ..simplify.magnitude import get_param, topk_mask

    p = get_param(model, name)
    live = p.detach().cpu().numpy() != 0  # a weight already zero (a folded unit's) stays zero
    m = topk_mask(p, max(nonzero * live.mean(), 1 / live.size)).cpu().numpy() > 0 if nonzero < 1 else live
    w = p.detach().cpu().numpy() * m
    kk = max(1, min(k, int(m.sum())))
    cl = _fewer_values(lambda j: cluster_weight(w, j, "density", seed=seed), kk)
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
        cb, idx = _fewer_values(lambda j: kmeans_1d(v, j, seed=seed), k)
    cb = np.asarray(cb, dtype=np.float32)
    with torch.no_grad():
        p.copy_(torch.from_numpy(cb[idx].reshape(tuple(p.shape))).to(p.device, p.dtype))
    return np.asarray(idx, dtype=np.int64).reshape(tuple(p.shape)), cb


def _cut_rows(indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``indices`` (2-D or more) with the given rows (first axis) made zero (-1)."""
    out = indices.copy()
    out[rows] = -1
    return out


def _half(model: Any, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Round float32 weight ``name`` to float16 values, as a clustered value of every distinct
    one (the file stores it densely in 2 bytes a weight: its values are float16-exact)."""
    import torch

    from ..simplify.magnitude import get_param

    p = get_param(model, name)
    with torch.no_grad():
        p.copy_(p.to(torch.float16).to(p.dtype))
    return {name: _cluster_vector(model, name, 0, 0)}


def simplify_rest(model: Any, task: Any, cfg: EncodeConfig, *, encoded: dict[str, tuple[np.ndarray, np.ndarray]],
                  contract: Contract, teacher: Any, progress: bool,
                  say: Callable[[str], None], filters: "set[str] | frozenset[str]" = frozenset()) -> list[TailStep]:
    """Simplify the tensors Algorithm 1 left dense (see the module docstring).

    Args:
        encoded: name -> (indices, codebook) of the layers already encoded (their indices stay;
            codebooks retrain and come back updated).
        contract: decides each step (a candidate that passes before retraining is kept as it
            is when ``cfg.retraining.accept_before_retraining``).
        filters: the names of ``encoded`` stored in filters (their positions cannot change).

    Returns:
        One :class:`TailStep` per step kept, in order (the last is the stage's result; a
        back-off undoes them one at a time); a single step with the model as it came when none
        was kept.
    """
    tail = _Tail(model, task, cfg, encoded, contract, teacher, progress, say, frozenset(filters))
    if cfg.tail.fold:
        tail.fold()
    for i, name in enumerate([n for n in tail.params if n not in encoded and model.get_parameter(n).dim() >= 2]):
        tail.weight(i, name)
    if cfg.tail.fold:  # a pruned layer may no longer read some units of the one before
        tail.fold()
    tail.vectors()
    if cfg.tail.units:
        tail.units()
    if not tail.steps:
        return [TailStep("nothing kept", tail.model, tail.encoded, tail.rest, tail.report)]
    return [*tail.steps[:-1], replace(tail.steps[-1], report=list(tail.report))]  # the rejections after the last step too


@dataclass(frozen=True)
class TailStep:
    """The whole-model stage after one kept step: ``what`` was kept, the model, the encoded
    layers' (updated) codebooks, name -> (indices, codebook) of every tensor simplified so far,
    and the decision lines so far."""

    what: str
    model: Any
    encoded: dict[str, tuple[np.ndarray, np.ndarray]]
    rest: dict[str, tuple[np.ndarray, np.ndarray]]
    report: list[dict]


class _Tail:
    """The state of the whole-model stage: the model, the encoded layers, the tensors
    simplified so far (``rest``) and the report lines; each accepted step replaces them."""

    def __init__(self, model: Any, task: Any, cfg: EncodeConfig, encoded: dict[str, tuple[np.ndarray, np.ndarray]],
                 contract: Contract, teacher: Any, progress: bool, say: Callable[[str], None],
                 filters: frozenset[str] = frozenset()) -> None:
        self.model, self.task, self.cfg, self.encoded, self.filters = model, task, cfg, encoded, filters
        self.contract, self.teacher, self.progress, self.say = contract, teacher, progress, say
        self.params = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        self.rest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.report: list[dict] = []
        self.steps: list[TailStep] = []
        rt = cfg.retraining
        epochs = None if rt.train is None else (rt.train.epochs / 3 if cfg.tail.epochs is None else cfg.tail.epochs)
        self.retraining = replace(rt, train=None if not epochs or rt.train is None else replace(rt.train, epochs=epochs))

    def attempt(self, change: Callable[[Any], dict[str, tuple[np.ndarray, np.ndarray]]], what: str,
                exact_only: bool = False, smaller_than: int | None = None, free: tuple[str, ...] = ()) -> tuple:
        """Apply ``change`` to a copy of the model, decide (retraining first unless it passes
        as it is); returns ``(accepted, candidate, its encoded/frozen layers, the new ones)``.
        ``exact_only``: no retraining, and a candidate that changes no outcome on the decision
        data is accepted whatever the rule says of the model so far (the step is invisible to it).
        ``smaller_than``: a candidate whose new records are not smaller than this many bytes is
        not evaluated (not accepted). ``free``: lossless layers (among the frozen ones) whose
        weights retraining may change under their masks; they are clustered again afterwards
        (same number of values)."""
        cand = copy.deepcopy(self.model)
        new = change(cand)
        if smaller_than is not None and sum(lossless_bytes(*v) for v in new.values()) >= smaller_than:
            self.say(f"{what}: not smaller than {smaller_than} bytes, not tried")
            return False, cand, {}, new
        frozen = {**self.encoded, **self.rest, **new}
        pending = {n: frozen.pop(n) for n in free}
        enc = {**frozen, **pending}
        dec = self.contract.decide(cand)
        if exact_only and not dec.accepted and self.contract.same_outcomes(cand, self.model):
            dec = replace(dec, accepted=True)
            what += " (no outcome on the decision data changed)"
        retrain = (not exact_only and self.retraining.train is not None
                   and not (self.retraining.accept_before_retraining and dec.accepted))
        if retrain:
            enc, pend = retrain_around(cand, self.task, self.retraining, encoded=frozen, pending=pending,
                                       trainable=set(self.params) - set(frozen), teacher=self.teacher,
                                       desc=f"retrain after {what}", progress=self.progress)
            enc = {**enc, **{n: self._again(cand, n, idx >= 0, pending[n][1].size) for n, (idx, _) in pend.items()}}
            dec = self.contract.decide(cand)
        self.say(f"{what}: val error {dec.error:.2f}% {'retrained' if retrain else 'not retrained'}, {dec.describe()} "
                 f"vs reference: {'accepted' if dec.accepted else 'rejected'}")
        self.report.append({"what": what, "retrained": retrain, **dec.as_dict()})
        return dec.accepted, cand, enc, new

    def _again(self, model: Any, name: str, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Weight ``name`` of ``model`` under ``mask`` clustered again to at most ``k`` values
        (fewer when retraining left fewer distinct ones, or k-means merges some)."""
        w = model.get_parameter(name).detach().cpu().numpy()
        k = max(1, min(k, int(np.unique(w[mask & (w != 0)]).size)))  # what cluster_weight clusters
        return _fewer_values(lambda j: recluster(model, name, mask, j, "density", self.cfg.filters.seed), k)

    def fold(self) -> None:
        """The exact unit steps (no decision; the earlier stages keep their model): dead units
        folded into the next linear layer when that is not stored yet, then the units the next
        layer never reads (a zero column) dropped from a layer that is not a filter (its row
        zero, its record's too)."""
        from ..simplify.fold import drop_unread, fold_dead_units

        cand = copy.deepcopy(self.model)
        folds = fold_dead_units(cand, skip=set(self.encoded) | set(self.rest))
        drops = drop_unread(cand, skip=self.filters)
        whats = [f"{f.units} dead units of {f.source} folded into {f.target} (exact)" for f in folds]
        whats += [f"{len(d.rows)} units of {d.source} that {d.target} never reads dropped (exact)" for d in drops]
        if not whats:
            return
        self.model = cand
        rows = {d.source: d.rows for d in drops}  # new dicts: the earlier stages hold the old ones
        self.encoded, self.rest = ({n: (_cut_rows(v[0], rows[n]), v[1]) if n in rows else v for n, v in layers.items()}
                                   for layers in (self.encoded, self.rest))
        for what in whats:
            self.say(what)
            self.report.append({"what": what, "retrained": False, "accepted": True})
        self._step(", ".join([*(["dead units folded"] if folds else []), *(["unread units dropped"] if drops else [])]))

    def _step(self, what: str) -> None:
        self.steps.append(TailStep(what, self.model, dict(self.encoded), dict(self.rest), list(self.report)))

    def keep(self, cand: Any, enc: dict, new: dict) -> None:
        """Make an accepted attempt the current state."""
        self.model = cand
        self.encoded = {n: enc[n] for n in self.encoded}
        self.rest = {**{n: enc[n] for n in self.rest}, **{n: enc[n] for n in new if n not in self.encoded}}
        accepted = [d["what"] for d in self.report if d.get("accepted")]  # the kept one: later rungs were rejected
        self._step(accepted[-1] if accepted else "a step")

    def units(self) -> None:
        """Fewer units in each linear pair whose first layer is stored as a lossless record
        (encoded or simplified here: its indices say which rows are cut) and whose second is
        not a filter; last, so the steps every file needs (a weight clustered) spend the budget
        first: the smallest fraction of
        ``cfg.tail.units`` that passes, down the ladder until one is rejected; then (with
        ``cfg.tail.fold``) any unit left constant folded (exact)."""
        from ..simplify.fold import cut_units, linear_pairs, live_units, unit_inputs

        ladder = sorted(self.cfg.tail.units, reverse=True)
        for pair in linear_pairs(self.model):  # by name: each step below works on a copy of the model
            a, b = f"{pair.a}.weight", f"{pair.b}.weight"
            stored = {**self.rest, **self.encoded}
            if a not in stored or a in self.filters or b in self.filters or self.model.get_submodule(pair.b).bias is None:
                continue  # (without a bias, the next layer has nowhere to take the means)
            mean, std = unit_inputs(self.model, pair, self._batches())
            live = int(live_units(self.model, pair).sum())
            best = None
            for keep in ladder:
                def change(m: Any, keep: float = keep, a: str = a, b: str = b, pair: Any = pair) -> dict:
                    cut = cut_units(m, pair, keep, mean, std).cpu().numpy()
                    new = {a: (_cut_rows(stored[a][0], cut), stored[a][1])}
                    if b in stored:
                        new[b] = (np.ascontiguousarray(_cut_rows(stored[b][0].T, cut).T), stored[b][1])
                    for v in (f"{pair.a}.bias", f"{pair.b}.bias"):
                        if v in self.rest:  # its values changed (the means, the cut units' zeros): clustered again
                            new[v] = _cluster_vector(m, v, self.rest[v][1].size, self.cfg.filters.seed)
                    return new

                tried = self.attempt(change, f"{pair.a} with {100 * keep:g}% of its {live} live units",
                                     free=tuple(n for n in (a, b) if n in stored))
                if not tried[0]:
                    break
                best = tried
            if best is not None:
                self.keep(*best[1:])
                if self.cfg.tail.fold:  # a unit retraining left constant
                    self.fold()

    def _batches(self, n: int = 8192) -> Any:
        """The first ``n`` training examples' inputs, on the model's device."""
        from ..training.loop import _to_device, model_device

        device, seen = model_device(self.model, self.task), 0
        for x, _ in self.task.source("train").ordered():
            if seen >= n:
                return
            seen += len(x)
            yield _to_device(x, device)

    def weight(self, i: int, name: str) -> None:
        """The smallest nonzero fraction of ``cfg.tail.nonzero`` at which weight ``name``
        passes, down the ladder until one is rejected; none: float16 or dense.

        Down the ladder rather than a binary search: each search ends on one rejected (always
        retrained) rung, and the rungs that pass often pass without retraining. In the runs
        logged while building this (LeNet-300-100, LeNet5, the example CNN; 2026-12) 25%
        passed in 0 of 46 trials and 50% in 28 of 50, so the binary search's first rung (25%)
        was a retraining wasted."""
        tail, seed = self.cfg.tail, self.cfg.filters.seed
        ladder = sorted(tail.nonzero, reverse=True)

        def run(j: int) -> tuple:
            return self.attempt(lambda m: {name: _prune_cluster(m, name, ladder[j], tail.k, seed + i)},
                                f"{name} at {100 * ladder[j]:g}% nonzero, k={tail.k}")

        best = run(0)
        if not best[0]:
            if self.exact([name], lambda m, k: {name: _prune_cluster(m, name, 1.0, k, seed + i)}, name):
                return
            p = self.model.get_parameter(name)
            if str(p.dtype) == "torch.float32" and float(p.detach().abs().max()) < 65504:  # the float16 rung
                ok, cand, enc, new = self.attempt(lambda m: _half(m, name), f"{name} rounded to float16", exact_only=True)
                if ok:
                    self.keep(cand, enc, new)
                    return
            self.say(f"{name}: no simplification passed; stored as it is")
            return
        for j in range(1, len(ladder)):
            tried = run(j)
            if not tried[0]:
                break
            best = tried
        self.keep(*best[1:])

    def vectors(self) -> None:
        """The 1-D parameters, all at once: the first of ``cfg.tail.bias_k`` that passes (0:
        kept exact, stored at float16 precision by the final codebook rounding)."""
        vectors = [n for n in self.params if n not in self.encoded and n not in self.rest
                   and self.model.get_parameter(n).dim() < 2]
        for kb in self.cfg.tail.bias_k if vectors else ():
            if kb == 0:
                seed = self.cfg.filters.seed
                if self.exact(vectors, lambda m, k: {n: _cluster_vector(m, n, k, seed + j) for j, n in enumerate(vectors)},
                              f"{len(vectors)} vectors (biases)"):
                    return
                self.rest = {**self.rest, **{n: _cluster_vector(self.model, n, 0, 0) for n in vectors}}
                self.say(f"{len(vectors)} vectors (biases) kept exact, stored at float16 precision")
                self.report.append({"what": "vectors kept exact (float16 at the end)", "accepted": True})
                self._step("vectors kept exact")
                return
            ok, cand, enc, new = self.attempt(
                lambda m: {n: _cluster_vector(m, n, int(kb), self.cfg.filters.seed + j) for j, n in enumerate(vectors)},
                f"{len(vectors)} vectors (biases) clustered to {kb} values")
            if ok:
                self.keep(cand, enc, new)
                return

    def exact(self, names: list[str], change: Callable[[Any, int], dict[str, tuple[np.ndarray, np.ndarray]]],
              what: str) -> bool:
        """The ``cfg.tail.exact_k`` rungs of ``names``: ``change(model, k)`` for each k in turn,
        without retraining, kept when it changes no outcome on the decision data and its records
        are smaller than float16 storage of those tensors; returns whether one was kept."""
        half = 2 * sum(self.model.get_parameter(n).numel() for n in names)
        for k in self.cfg.tail.exact_k:
            try:
                ok, cand, enc, new = self.attempt(lambda m: change(m, int(k)), f"{what} clustered to {k} values as it is",
                                                  exact_only=True, smaller_than=half)
            except ConstructionError as e:  # k-means could not make k distinct values
                self.say(f"{what} clustered to {k} values: {e}")
                continue
            if ok:
                self.keep(cand, enc, new)
                return True
        return False
