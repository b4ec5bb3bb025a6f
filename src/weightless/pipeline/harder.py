"""Before a chosen layer's t search: fewer nonzeros (``FilterSearch.harder``). The layer's
nonzeros are cut to each fraction in turn (the largest magnitudes kept), the model retrained and
the layer clustered again; each cut is a stage of the encoder, kept while the accuracy contract
accepts it within the layer's share of the budget
(:meth:`~weightless.pipeline.encode._Encoder.layer_share`)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import Decision
from .reports import Stage
from .steps import recluster, retrain_around

if TYPE_CHECKING:
    from .encode import _Encoder

__all__ = ["prune_harder"]


def prune_harder(enc: "_Encoder", li: int, name: str, tol: float, trainable: set[str]) -> list[dict[str, Any]]:
    """Layer ``name``'s nonzeros cut to each fraction of ``cfg.filters.harder`` in turn, the
    model retrained (the layer under its new mask, the later layers) and the layer clustered
    again; each cut is a stage of ``enc``, kept while the rule accepts it within the layer's
    share ``tol``. Returns the report rows of the cuts tried."""
    fs, rt, st = enc.cfg.filters, enc.cfg.retraining, enc.stage
    if not fs.harder or rt.train is None:
        return []
    n0, rows = int((st.pending[name][0] >= 0).sum()), []
    for frac in fs.harder:
        keep = int(round(frac * n0))
        if keep < 8 * enc.k[name]:  # too few weights for its k values (and for a cut to matter)
            break
        cut = _cut(enc, li, name, keep, tol, trainable)
        if cut is None:
            break
        dec, stage = cut
        enc.say(f"{name}: {keep} of {n0} nonzeros ({100 * frac:.3g}%), retrained, val error {dec.error:.2f}%, "
                f"{dec.describe()} vs reference {dec.reference_error:.2f}%, the layer's share {tol:.2f} pp: "
                f"{'accepted' if dec.accepted else 'rejected'}")
        rows.append({"nonzero": keep, "allowance": round(tol, 4), "retrained": True, **dec.as_dict()})
        if not dec.accepted:  # a finer cut here was measured worse: the filter after it needs that budget
            break
        enc.stage = stage
        enc.stages.append(stage)
    return rows


def _cut(enc: "_Encoder", li: int, name: str, keep: int, tol: float, trainable: set[str]) -> tuple[Decision, Stage] | None:
    """Layer ``name`` of the current stage cut to its ``keep`` largest-magnitude nonzeros,
    the model retrained and the layer clustered again; the decision (within ``tol``) and the
    stage it would make. None when the layer can no longer be clustered to its k values."""
    import torch

    from ..simplify.magnitude import get_param

    fs, st = enc.cfg.filters, enc.stage
    cand, (idx, cb) = copy.deepcopy(st.model), st.pending[name]
    p = get_param(cand, name)
    w = np.where(idx >= 0, np.abs(p.detach().cpu().numpy()), -1.0).ravel()
    flat = np.zeros(w.size, dtype=bool)
    flat[np.argsort(-w, kind="stable")[:keep]] = True
    mask = flat.reshape(idx.shape)
    with torch.no_grad():
        p.mul_(torch.from_numpy(mask.astype(np.float32)).to(p.device, p.dtype))
    encoded, pend = retrain_around(cand, enc.task, enc.cfg.retraining, encoded=st.encoded,
                                   pending={**st.pending, name: (np.where(mask, idx, -1), cb)}, trainable=trainable,
                                   teacher=enc.teacher, desc=f"retrain {name} at {keep} nonzeros", progress=enc.progress)
    if np.unique(p.detach().cpu().numpy()[mask]).size < enc.k[name]:  # retraining left too few values to cluster
        return None
    pend[name] = recluster(cand, name, mask, enc.k[name], enc.simplified.layers[name].init, seed=fs.seed + li)
    if np.unique(pend[name][0][mask]).size < enc.k[name]:  # a value lost all its weights: k could not be kept
        return None
    stage = Stage(f"{name} cut to {keep} nonzeros", cand, encoded, pend, {}, st.filters, st.reports, fresh=False)
    return enc.contract.decide(cand, allowance=tol), stage
