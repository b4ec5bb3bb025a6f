"""Layer-by-layer lossy encoding with retraining (paper section 3.2, Algorithm 1, Figure 3).

For each chosen layer, in model order: cluster it again from the weights retraining left
(:func:`~weightless.pipeline.steps.recluster`), search its t (:meth:`_Encoder.search`), put the
weights reconstructed *from the filter* (false positives included) into the model, freeze the
filter, and retrain the layers after it (:func:`~weightless.pipeline.steps.retrain_around`).
Then the tensors the recipe left dense are simplified too (:mod:`weightless.pipeline.whole`).
Every decision is the accuracy contract's (:mod:`weightless.pipeline.contract`): ranked by
loss, accepted on the task's metric, and the final model confirmed on data no decision saw,
backing off the last lossy steps if it fails."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .assemble import assemble, lossless_report, set_clustered
from .config import EncodeConfig
from .contract import Contract, Decision, split_data
from .harder import prune_harder
from .reports import CompressResult, LayerReport, Stage, Trial
from .steps import best_filter, bias_of, min_t, ordered_layers, recluster, resolve_construction, retrain_around, size_cap
from .whole import lossless_bytes, simplify_rest

__all__ = ["LayerReport", "CompressResult", "Trial", "Stage", "encode_with_retraining"]


class _Encoder:
    """Algorithm 1 over one simplified model: :meth:`layer` per chosen layer, :meth:`tail` for
    the rest, :meth:`finalize` for the file of a stage (see :func:`_confirmed`)."""

    def __init__(self, simplified: Any, task: Any, cfg: EncodeConfig, contract: Contract, progress: bool,
                 say: Callable[[str], None]) -> None:
        self.simplified, self.task, self.cfg, self.contract = simplified, task, cfg, contract
        self.progress, self.say = progress, say
        self.teacher: Any = None  # the simplified model's outputs on the training data, once for every retraining
        if cfg.retraining.train is not None and cfg.retraining.train.distill > 0:
            from ..training.loop import soft_targets

            self.teacher = soft_targets(copy.deepcopy(simplified.model).eval().requires_grad_(False), task)
        model = copy.deepcopy(simplified.model)
        self.names = ordered_layers(model, list(simplified.layers))
        self.params = [n for n, _ in model.named_parameters()]
        pending = {n: (simplified.layers[n].indices, simplified.layers[n].codebook) for n in self.names}
        self.stage = Stage("simplified (every layer lossless)", model, {}, pending, {}, {}, [], fresh=True)
        self.stages = [self.stage]
        self.true_indices: dict[str, np.ndarray] = {}
        self.k = {n: int(simplified.layers[n].k) for n in self.names}  # the k each layer is encoded with
        self.share: float | None = None  # the allowance the current layer's filter trials are decided within

    def trial(self, name: str, t: int, indices: np.ndarray, codebook: np.ndarray, trainable: set[str]) -> Trial:
        """Encode ``name`` at ``t`` (0: lossless) on a copy of the current model, decide, and
        retrain first when the candidate does not pass as it is (or always, if so configured)."""
        st, fs, rt = self.stage, self.cfg.filters, self.cfg.retraining
        cand = copy.deepcopy(st.model)
        construction = resolve_construction(fs.construction, int(indices.size))
        if t == 0:
            f, secs, dec_idx = None, 0.0, indices
            set_clustered(cand, name, indices, codebook)
        else:
            f, _, secs = best_filter(cand, name, indices, codebook, self.k[name], t, fs, self.contract.splits.rank, construction)
            dec_idx = f.reconstruct_indices(tuple(indices.shape))
        dec = self.contract.decide(cand, allowance=self.share)
        before = dec.error
        enc, pend = {**st.encoded, name: (dec_idx, codebook)}, {n: v for n, v in st.pending.items() if n != name}
        retrain = rt.train is not None and not (rt.accept_before_retraining and dec.accepted)
        if retrain:
            enc, pend = retrain_around(cand, self.task, rt, encoded=enc, pending=pend, trainable=trainable,
                                       teacher=self.teacher, desc=f"retrain after {name} t={t}", progress=self.progress)
            dec = self.contract.decide(cand, allowance=self.share)
        what = f"t={t} ({construction})" if t else "lossless"
        self.say(f"{name}: {what} val error {before:.2f}% encoded, {dec.error:.2f}% "
                 f"{'retrained' if retrain else 'not retrained'}, {dec.describe()} vs reference {dec.reference_error:.2f}%: "
                 f"{'kept (exact records need no rule)' if not t else 'accepted' if dec.accepted else 'rejected'}"
                 f"{f' (within the layer share {self.share:.2f} pp)' if t and self.share is not None else ''}")
        return Trial(t, dec, before, retrain, f, cand, secs, enc, pend)

    def search(self, name: str, indices: np.ndarray, codebook: np.ndarray, trainable: set[str]) -> tuple[int, dict[int, Trial], bool]:
        """The t of layer ``name``: fixed by ``cfg.filters.t``, else the smallest accepted t among
        filters smaller than the lossless record (the largest first, then a binary search below
        it: acceptance grows with t), else the lossless record. Returns ``(t, trials, auto)``."""
        cfg, k = self.cfg.filters, self.k[name]
        least = min_t(k)
        trials: dict[int, Trial] = {}

        def run(t: int) -> Trial:
            if t not in trials:
                trials[t] = self.trial(name, t, indices, codebook, trainable)
            return trials[t]

        if name in cfg.t:
            t = int(cfg.t[name])
            if 0 < t < least:
                raise InputError(f"t = {t} for {name!r} is too small for k = {k}: need t >= {least}")
            run(t)
            return t, trials, False
        lo = max(least, cfg.t_min or least)
        hi = max(lo, cfg.t_max)
        lossless = lossless_bytes(indices, codebook)
        if cfg.lossless_fallback:
            hi = size_cap(name, indices, codebook, k, lo, hi, lossless, cfg)
        t = 0
        if hi >= lo:  # the largest t first: when it fails, no smaller t can pass
            if not run(hi).decision.accepted:
                lo = hi
            while lo < hi:
                mid = (lo + hi) // 2
                if run(mid).decision.accepted:
                    hi = mid
                else:
                    lo = mid + 1
            t = lo
            run(t)
        if cfg.lossless_fallback and (t == 0 or not trials[t].decision.accepted):
            self.say(f"{name}: no filter smaller than the lossless record ({lossless} bytes) passed; stored lossless")
            t = 0
            run(0)
        elif not trials[t].decision.accepted:
            self.say(f"{name}: no t up to t_max = {cfg.t_max} passed the rule; using t = {t}")
        return t, trials, True

    def layer(self, li: int, name: str) -> None:
        """Encode layer ``name`` (the ``li``-th) and make the result the current stage."""
        st, cfg, lr = self.stage, self.cfg, self.simplified.layers[name]
        later = set(self.params[self.params.index(name) + 1:]) - set(st.pending) - set(st.encoded)
        biases = {b for b in (bias_of(n, self.params) for n in [*st.encoded, name]) if b is not None}
        trainable = (later - biases) | (biases if cfg.retraining.train_encoded else set())
        share = self.layer_share(name) if cfg.filters.layer_share or cfg.filters.harder else self.contract.allowance
        self.share = share if cfg.filters.layer_share else None
        cuts = prune_harder(self, li, name, share, trainable)  # a fixed t too: the every-layer-lossless comparison cuts alike
        st = self.stage
        indices, codebook = st.pending[name]
        if not st.fresh:
            indices, codebook = recluster(st.model, name, indices >= 0, self.k[name], lr.init, seed=cfg.filters.seed + li)
        t, trials, auto = self.search(name, indices, codebook, trainable)
        tr = trials[t]
        flags = [trials[u].decision.accepted for u in sorted(trials) if u]
        mono = all(a <= b for a, b in zip(flags, flags[1:]))
        if not mono:
            self.say(f"{name}: the t trials are not monotone (an accepted t below a rejected one): "
                     + ", ".join(f"t={u} {'ok' if v.decision.accepted else 'no'}" for u, v in sorted(trials.items())))
        rows = [*cuts, *(v.row() for _, v in sorted(trials.items()))]
        if auto and tr.filter is not None and tr.decision.accepted:
            t, tr, indices, codebook = self.halve_k(name, li, t, tr, indices, codebook, trainable, rows)
        f = tr.filter
        lossless = lossless_bytes(indices, codebook)
        rep = LayerReport(
            name=name, paper_name=lr.paper_name, shape=tuple(indices.shape), nonzero=int((indices >= 0).sum()), k=self.k[name],
            t=t, auto_t=auto, t_within_tolerance=tr.decision.accepted,
            construction=resolve_construction(cfg.filters.construction, int(indices.size)) if f else "lossless",
            seed=int(f.seed) if f else 0, m=int(f.m) if f else 0, false_positives=int(f.count_false_positives()) if f else 0,
            filter_bytes=int(f.nbytes) if f else lossless, build_seconds=tr.build_seconds, lossless_bytes=lossless,
            val_error_encoded=tr.error_before, val_error_retrained=tr.decision.error, decision=tr.decision.as_dict(),
            monotone=mono, trials=rows)
        self.true_indices[name] = indices
        self.stage = Stage(f"{name} at {'t=' + str(t) if t else 'lossless'}", tr.model, tr.encoded, tr.pending, {},
                           {**st.filters, name: f}, [*st.reports, rep], fresh=st.fresh and not tr.retrained)
        self.stages.append(self.stage)

    def layer_share(self, name: str) -> float:
        """The budget layer ``name`` may spend, up to: what the current stage spent plus the
        layer's lossless bytes over those of it and the chosen layers after it, times what is
        left of the allowance (the last chosen layer: all of it)."""
        st = self.stage
        sizes = [lossless_bytes(*st.pending[n]) for n in self.names[self.names.index(name):]]
        spent = self.contract.decide(st.model).difference
        return spent + sizes[0] / max(sum(sizes), 1) * max(self.contract.allowance - spent, 0.0)

    def halve_k(self, name: str, li: int, t: int, tr: Trial, indices: np.ndarray, codebook: np.ndarray,
                trainable: set[str], rows: list[dict[str, Any]]) -> tuple[int, Trial, np.ndarray, np.ndarray]:
        """After layer ``name``'s filter at ``t`` passed: the layer clustered again to at most
        half its values (the largest of ``cfg.filters.smaller_k`` <= k / 2) in a filter at
        ``t - 1``, which keeps the false-positive rate k / 2**t and is about 1 / t smaller; kept
        (and tried again from there) when the rule accepts it. When that filter would not be
        smaller than the lossless record of the fewer values, the record is tried instead (and
        ends the search). Returns ``(t, trial, indices, codebook)`` of what is kept (t = 0: the
        record); ``rows`` gets a line per trial."""
        lr = self.simplified.layers[name]
        while True:
            k = self.k[name]
            halves = [int(v) for v in self.cfg.filters.smaller_k if 2 * int(v) <= k]
            if not halves or t - 1 < max(min_t(max(halves)), self.cfg.filters.t_min or 1):
                return t, tr, indices, codebook
            k2 = max(halves)
            idx2, cb2 = recluster(copy.deepcopy(self.stage.model), name, indices >= 0, k2, lr.init,
                                  seed=self.cfg.filters.seed + li)
            self.k[name] = k2
            fs = self.cfg.filters
            smaller = not fs.lossless_fallback or size_cap(name, idx2, cb2, k2, t - 1, t - 1, lossless_bytes(idx2, cb2), fs) == t - 1
            tr2 = self.trial(name, t - 1 if smaller else 0, idx2, cb2, trainable)  # else the record of k2 values is smaller
            rows.append({"k": k2, **tr2.row()})
            if not tr2.decision.accepted:
                self.k[name] = k
                return t, tr, indices, codebook
            t, tr, indices, codebook = tr2.t, tr2, idx2, cb2
            if not t:
                return t, tr, indices, codebook

    def tail(self) -> None:
        """The whole-model stage: simplify what the recipe left dense, a stage per kept step (a
        back-off undoes them one at a time)."""
        st = self.stage
        filters = {n for n, f in st.filters.items() if f is not None}
        for step in simplify_rest(st.model, self.task, self.cfg, encoded=st.encoded, contract=self.contract,
                                  teacher=self.teacher, progress=self.progress, say=self.say, filters=filters):
            reports = [_recount(r, *step.encoded[r.name]) if _changed(st.encoded.get(r.name), step.encoded.get(r.name))
                       else r for r in st.reports]  # fewer units: fewer nonzeros
            self.stage = Stage(f"the whole-model stage ({step.what})", step.model, step.encoded, {}, step.rest,
                               st.filters, reports, st.fresh, step.report)
            self.stages.append(self.stage)

    def fewer_values(self) -> None:
        """The last stage: every weight stored as a lossless record (an encoded layer without
        a filter, a tail weight clustered to at most ``tail.k`` values), largest record first,
        clustered again (same mask) to each of ``cfg.filters.smaller_k`` below its k, largest
        first, kept while the model passes the rule as it is (no retraining), until one fails.
        It spends only what the earlier steps left of the budget."""
        st, rungs = self.stage, sorted({int(v) for v in self.cfg.filters.smaller_k}, reverse=True)
        weights = {**{n: v for n, v in st.encoded.items() if st.filters.get(n) is None},
                   **{n: v for n, v in st.rest.items() if v[0].ndim >= 2 and v[1].size <= self.cfg.tail.k}}
        if not rungs or not weights:
            return
        model, encoded, rest, lines = copy.deepcopy(st.model), dict(st.encoded), dict(st.rest), list(st.tail)
        sizes = {n: lossless_bytes(*v) for n, v in weights.items()}
        for name in sorted(weights, key=lambda n: -sizes[n]):
            idx, cb = weights[name]
            init = self.simplified.layers[name].init if name in self.simplified.layers else "density"
            kept = False
            for k in [r for r in rungs if r < cb.size]:
                cand = copy.deepcopy(model)
                i2, c2 = recluster(cand, name, idx >= 0, k, init, seed=self.cfg.filters.seed)
                dec = self.contract.decide(cand)
                size = lossless_bytes(i2, c2)
                self.say(f"{name}: k={k} ({size} bytes lossless, was {sizes[name]}) val error {dec.error:.2f}%, "
                         f"{dec.describe()} vs reference {dec.reference_error:.2f}%: {'accepted' if dec.accepted else 'rejected'}")
                lines.append({"what": f"{name} with fewer values, k={k}", "retrained": False, "bytes": size, **dec.as_dict()})
                if not dec.accepted:
                    break
                model, idx, cb, sizes[name], kept = cand, i2, c2, size, True
                (encoded if name in encoded else rest)[name] = (idx, cb)
                self.k[name] = k
            if kept:  # a stage per layer: a back-off undoes them one at a time
                reports = [replace(r, k=self.k[r.name], lossless_bytes=sizes[r.name], filter_bytes=sizes[r.name])
                           if r.name in weights else r for r in st.reports]
                self.stage = Stage(f"fewer values ({name} k={self.k[name]})", model, dict(encoded), {}, dict(rest),
                                   st.filters, reports, st.fresh, list(lines))
                self.stages.append(self.stage)
        if len(lines) > len(self.stage.tail):  # the rejected rungs after the last kept one: reported too
            self.stage = self.stages[-1] = replace(self.stage, tail=list(lines))

    def finalize(self, stage: Stage) -> tuple[Any, dict[str, Any], list[LayerReport]]:
        """The model, tensors and reports of the file written at ``stage``: its pending layers
        stored losslessly (clustered again from the weights retraining left). The true indices
        of its lossless layers become those of this stage (the fewer-values stage changes them)."""
        model = copy.deepcopy(stage.model)
        rest, reports = dict(stage.rest), list(stage.reports)
        self.true_indices.update({n: idx for n, (idx, _) in stage.encoded.items() if stage.filters.get(n) is None})
        for name in [n for n in self.names if n in stage.pending]:
            lr = self.simplified.layers[name]
            idx, cb = stage.pending[name]
            if stage.fresh:
                set_clustered(model, name, idx, cb)
            else:
                idx, cb = recluster(model, name, idx >= 0, lr.k, lr.init, seed=self.cfg.filters.seed + self.names.index(name))
            rest[name] = (idx, cb)
            reports.append(lossless_report(LayerReport, name, lr, idx, cb, backed_off=len(stage.reports) < len(self.names)))
            self.true_indices.setdefault(name, idx)
        tensors = assemble(model, stage.encoded, rest, stage.filters, self.cfg.tail.round_codebooks)
        return model, tensors, reports


def _changed(before: tuple[np.ndarray, np.ndarray] | None, after: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """Whether an encoded layer's indices changed between two stages (units cut or dropped, the
    layer clustered again); a copy of the same indices or a retrained codebook is no change."""
    return before is not None and after is not None and before[0] is not after[0] \
        and not np.array_equal(before[0], after[0])


def _recount(report: LayerReport, indices: np.ndarray, codebook: np.ndarray) -> LayerReport:
    """A lossless layer's report after its positions changed (units cut in the whole-model stage)."""
    size = lossless_bytes(indices, codebook)
    return replace(report, nonzero=int((indices >= 0).sum()), lossless_bytes=size, filter_bytes=size)


def encode_with_retraining(simplified: Any, data: Any, cfg: EncodeConfig, *, reference: Any = None,
                           tolerance: float | None = None, confirm_fraction: float = 0.5, progress: bool = False,
                           log: Callable[[str], None] | None = None, contract: Contract | None = None) -> CompressResult:
    """Encode the layers of a :class:`~weightless.simplify.SimplifyResult` one by one with
    retraining in between (Algorithm 1), then the rest of the model, and confirm the result.

    Args:
        data: the task (:class:`~weightless.training.task.Task` or what :func:`as_task` takes).
        reference: the model every decision compares with (default: the simplified model);
            ``tolerance`` (default ``cfg.rule.tolerance``) is the allowance over it, in percentage
            points; ``confirm_fraction`` of the validation data is set aside to confirm.
        contract: instead of those three, a ready :class:`~weightless.pipeline.contract.Contract`.

    Returns:
        A :class:`CompressResult`; ``within_budget`` is False when even the least lossy model is
        over the allowance on the confirmation data (the caller decides what to do).

    Raises:
        InputError: invalid config. ConstructionError: a filter could not be built.
    """
    from ..training.loop import evaluate
    from ..training.task import as_task

    cfg.validate()
    task = as_task(data)
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    if contract is None:
        splits = split_data(task, confirm_fraction)
        ref_model = simplified.model if reference is None else reference
        allowance = cfg.rule.tolerance if tolerance is None else float(tolerance)
        contract = Contract(ref_model, splits, allowance, cfg.rule.confidence_z)
    if not contract.splits.disjoint:
        say("the training data is a loader: filter seeds are ranked on the decision data")
    enc = _Encoder(simplified, task, cfg, contract, progress, say)
    for li, name in enumerate(enc.names):
        enc.layer(li, name)
    if cfg.tail.enabled:
        enc.tail()
    enc.fewer_values()
    stage, model, tensors, reports, conf, undone = _confirmed(enc, contract, say)
    return CompressResult(
        model=model, tensors=tensors, layers=reports, indices=enc.true_indices,
        simplified_val_error=float(simplified.val_error), simplified_test_error=simplified.test_error,
        val_error=evaluate(model, contract.splits.decide, split="val"),
        test_error=None if task.test is None else evaluate(model, task, split="test"),
        seconds=time.perf_counter() - t_start, reference="simplified" if reference is None else "user model",
        reference_val_error=float(100 * contract.ref_decide.mean()), validation_disjoint=contract.splits.disjoint,
        simplified=simplified, tail=stage.tail, allowance=contract.allowance,
        confirmation=None if conf is None else conf.as_dict(), backed_off=undone,
        within_budget=conf is None or conf.accepted, contract=contract)


def _confirmed(enc: _Encoder, contract: Contract,
               say: Callable[[str], None]) -> tuple[Stage, Any, dict, list, Decision | None, list[str]]:
    """The last stage whose file passes the confirmation check (point estimate within the
    allowance on data no decision used), backing off one lossy step at a time; the least lossy
    stage, flagged, when none passes. Returns ``(stage, model, tensors, reports, decision, undone)``."""
    undone: list[str] = []
    conf = None
    for stage in reversed(enc.stages):
        model, tensors, reports = enc.finalize(stage)
        conf = contract.confirm(model)
        if conf is None:
            say("no confirmation data (confirm_fraction 0, or validation data that cannot be cut): the final model is unconfirmed")
            return stage, model, tensors, reports, None, undone
        say(f"confirmation ({stage.label}): {conf.describe()} vs reference {conf.reference_error:.2f}% on "
            f"{len(contract.ref_confirm if contract.ref_confirm is not None else ())} examples no decision used, allowance {contract.allowance:.2f} pp: "
            f"{'within' if conf.accepted else 'over'}")
        if conf.accepted:
            if undone:
                say(f"backed off: undid {', '.join(undone)}")
            return stage, model, tensors, reports, conf, undone
        undone.append(stage.label)
    say(f"WARNING: even the least lossy model is over the {contract.allowance:.2f} pp allowance on the confirmation data")
    return stage, model, tensors, reports, conf, undone[:-1]
