"""Issue 15, parts 2 and 3: a per-position harm estimate for false positives, validated against
the measured loss increase, and per-group t (one filter per class of groups, t by water-filling).

Harm of a zero position (i, j) that decodes as a false positive of value v: h = 0.5 * F_ij * v^2,
F the diagonal empirical Fisher of the training loss (mean over the first ``--fisher-images``
training images of the squared per-example gradient, exact per example via torch.func vmap, at the
simplified model). A variant adds the first-order term g_ij * v (g the mean gradient). For a
sample of real filters (t from ceil(log2 k)+1 to 10, several seeds) the prediction (sum over the
filter's actual false positives) is compared with the measured increase of the mean validation
loss (decoded layer vs simplified model; no retraining). Part 3: groups the decoder can read
(rows, columns, tiles, a factorised row x column statistic; for conv layers output / input
channel, kernel, tap), t per group by water-filling at the uniform t's total estimated harm,
then real filters (one per distinct t; empty groups need none) against the uniform filter.

    PYTHONPATH=src .venv/bin/python benchmarks/harm_pergroup.py [--only lenet300:magnitude:fc1.weight]

Writes results/harm_pergroup.{json,md} after every layer (partial results survive).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from weightless_lab.apps.mnist import PAPER_T
from weightless.training.splits import Split
from weightless.entropy.filter_record import MAGIC, encode_filter
from weightless_lab.experiments.common import ReproConfig, env_info, load_data, prepare_simplified, write_result
from weightless.filters import build, get_construction
from weightless.filters.wire import HEADER_SIZE
from weightless.pipeline.steps import RANK_EXAMPLES, resolve_construction
from weightless.io.records import filter_record
from weightless.simplify.magnitude import get_param
from weightless.training import per_example, set_threads

OUT = Path(__file__).resolve().parents[1] / "results"
LAYERS = ("lenet300:magnitude:fc1.weight", "lenet300:dns:fc1.weight", "lenet5:magnitude:fc1.weight",
          "lenet5:dns:fc1.weight", "lenet5:magnitude:conv2.weight", "lenet5:dns:conv2.weight")
#: The automatic t (compact construction) of results/table123.md, the second uniform t of part 3.
AUTO_T = {("lenet300", "magnitude", "fc1.weight"): 11, ("lenet300", "dns", "fc1.weight"): 12,
          ("lenet5", "magnitude", "fc1.weight"): 7, ("lenet5", "dns", "fc1.weight"): 12,
          ("lenet5", "magnitude", "conv2.weight"): 10, ("lenet5", "dns", "conv2.weight"): 9}


def fisher(model: torch.nn.Module, name: str, x: np.ndarray, y: np.ndarray, chunk: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal empirical Fisher (mean squared per-example gradient) and mean gradient of the
    cross-entropy w.r.t. parameter ``name``, over the examples ``x, y`` (float64 arrays)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(w: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**params, name: w}, (xi.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_ex = vmap(grad(loss_one), in_dims=(None, 0, 0))
    fs = torch.zeros(params[name].shape, dtype=torch.float64)
    gs = torch.zeros_like(fs)
    model.eval()
    for a in range(0, len(y), chunk):
        g = per_ex(params[name], torch.from_numpy(x[a:a + chunk]), torch.from_numpy(y[a:a + chunk])).double()
        fs += (g * g).sum(0)
        gs += g.sum(0)
    return (fs / len(y)).numpy(), (gs / len(y)).numpy()


class Layer:
    """One simplified layer inside its model, with the losses of candidate decodings."""

    def __init__(self, simp: Any, name: str, data: Any, val_images: int, val_offset: int = 0) -> None:
        self.model, self.name, self.data = simp.model, name, data
        self.val = Split(data.val.x[val_offset:val_offset + val_images], data.val.y[val_offset:val_offset + val_images])
        self.rank = data.train.head(RANK_EXAMPLES)
        lr = simp.layers[name]
        self.indices, self.codebook, self.k = lr.indices, np.asarray(lr.codebook, np.float64), int(lr.k)
        self.paper_name = lr.paper_name
        flat = self.indices.ravel()
        self.keys = np.flatnonzero(flat >= 0).astype(np.int64)
        self.values = flat[self.keys].astype(np.int64)
        self.zero = flat < 0
        self.construction = resolve_construction("auto", flat.size)
        self.param = get_param(self.model, name)
        self.w0 = self.param.detach().clone()
        self.base = self.losses(None, rank=True)

    def set(self, idx: np.ndarray | None) -> None:
        """Put the layer decoded as ``idx`` (-1 = zero; None: the simplified layer) into the model."""
        w = self.w0 if idx is None else torch.from_numpy(
            np.where(idx >= 0, self.codebook[np.maximum(idx, 0)], 0.0).astype(np.float32).reshape(self.indices.shape))
        with torch.no_grad():
            self.param.copy_(w)

    def losses(self, idx: np.ndarray | None, rank: bool = False) -> tuple[float, float, float]:
        """(mean validation loss, validation error %, mean loss on the pipeline's seed-ranking
        training images or nan) with the layer decoded as ``idx``; the model is restored after."""
        self.set(idx)
        err, val = per_example(self.model, self.val)
        r = float(per_example(self.model, self.rank)[1].mean()) if rank else float("nan")
        self.set(None)
        return float(val.mean()), 100 * float(err.mean()), r

    def filt(self, t: int, seed: int, mask: np.ndarray | None = None) -> Any:
        """A real filter of the layer's keys (only those inside ``mask``, a flat bool array)."""
        keep = slice(None) if mask is None else mask[self.keys]
        return build(self.keys[keep], self.values[keep], k=self.k, t=t, size=self.zero.size, seed=seed,
                     construction=self.construction)


def validate(layer: Layer, est: dict[str, tuple[np.ndarray, np.ndarray]], seeds: int, log: Callable[[str], None]) -> dict:
    """Predicted (per estimator: Fisher, Fisher + first-order term) vs measured loss increase on
    real filters; correlations overall and over seeds within each t."""
    tmin = int(np.ceil(np.log2(layer.k))) + 1
    shape = layer.indices.shape
    rows = []
    for t in range(tmin, 11):
        for s in range(seeds):
            idx = layer.filt(t, 1000 * t + s).reconstruct_indices(shape).ravel()
            fp = layer.zero & (idx >= 0)
            v = layer.codebook[idx[fp]]
            val, err, rank = layer.losses(idx, rank=True)
            row = {"t": t, "seed": s, "false_positives": int(fp.sum()), "measured_dL": val - layer.base[0],
                   "val_error": err, "train-5k dL": rank - layer.base[2]}
            for name, (fm, gm) in est.items():
                row[name] = float((0.5 * fm.ravel()[fp] * v * v).sum())
                row[name + " +grad"] = row[name] + float((gm.ravel()[fp] * v).sum())
            rows.append(row)
        log(f"  validate t={t}: measured " + ", ".join(f"{r['measured_dL']:.4f}" for r in rows[-seeds:]))
    ts = sorted({r["t"] for r in rows})
    m = np.array([r["measured_dL"] for r in rows])
    out: dict[str, Any] = {"filters": rows, "ts": ts, "criteria": {}}
    for key in [k for k in rows[0] if k not in ("t", "seed", "false_positives", "measured_dL", "val_error")]:
        p = np.array([r[key] for r in rows])
        per_t = [float(stats.spearmanr([r[key] for r in rows if r["t"] == t], [r["measured_dL"] for r in rows if r["t"] == t])[0])
                 for t in ts]
        pick = [min((r for r in rows if r["t"] == t), key=lambda r: r[key])["measured_dL"] for t in ts]
        out["criteria"][key] = {"pearson": float(stats.pearsonr(p, m)[0]), "spearman": float(stats.spearmanr(p, m)[0]),
                                "ratio_median": float(np.median(p / m)), "spearman_within_t": per_t,
                                "spearman_within_t_mean": float(np.nanmean(per_t)), "measured_dL_of_pick": pick}
    out["measured_dL_best_seed"] = [min(r["measured_dL"] for r in rows if r["t"] == t) for t in ts]
    out["measured_dL_mean_seed"] = [float(np.mean([r["measured_dL"] for r in rows if r["t"] == t])) for t in ts]
    return out


def groupings(shape: tuple[int, ...], h: np.ndarray, nz: np.ndarray, h_all: np.ndarray) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], float]]]:
    """Position -> group labels the decoder can read, each with its map cost in bytes given a
    class per group (ideal entropy of the class labels plus, for factorised groupings, the bins).
    ``h``: expected harm of the zero positions (0 at keys); ``h_all``: the same formula at every
    position (the oracle groups keys by it too)."""

    def ent(cls: np.ndarray) -> float:
        p = np.unique(cls, return_counts=True)[1] / cls.size
        return float(cls.size * -(p * np.log2(p)).sum() / 8)

    def axis(lab: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], float]]:
        return lab.ravel(), ent

    def ratio_bins(a: np.ndarray, nb: int) -> np.ndarray:
        """Bin index (quantiles of log harm per key over the axis), empty slices apart."""
        hs, ns = h.sum(axis=tuple(i for i in range(h.ndim) if i != a)), nz.sum(axis=tuple(i for i in range(h.ndim) if i != a))
        r = np.log((hs + 1e-12) / (ns + 1))
        edges = np.quantile(r[ns > 0], np.linspace(0, 1, nb + 1)[1:-1]) if (ns > 0).any() else []
        return np.where(ns > 0, np.searchsorted(edges, r), nb)

    ix = np.indices(shape)
    out = {}
    if len(shape) == 2:
        out["row"], out["column"] = axis(ix[0]), axis(ix[1])
        out["tile 32x32"] = axis((ix[0] // 32) * 1000 + ix[1] // 32)
    else:
        out["out channel"], out["in channel"] = axis(ix[0]), axis(ix[1])
        out["kernel (out, in)"] = axis(ix[0] * 1000 + ix[1])
        out["tap (kh, kw)"] = axis(ix[2] * 100 + ix[3])
    nb = 4
    ra, rb = ratio_bins(0, nb), ratio_bins(1, nb)
    out[f"factorised {nb + 1}x{nb + 1}"] = ((ra[ix[0]] * (nb + 1) + rb[ix[1]]).ravel(),
                                            lambda cls: (shape[0] + shape[1]) * np.log2(nb + 1) / 8 + cls.size / 2)
    q = np.quantile(h_all, np.linspace(0, 1, 33)[1:-1])
    out["oracle (32 harm bins, map not counted)"] = (np.searchsorted(q, h_all.ravel()), lambda cls: 0.0)
    return out


def waterfill(H: np.ndarray, n: np.ndarray, k: int, T: int, tmin: int, cpk: float) -> np.ndarray:
    """Integer t per group minimising sum cpk*n_g*t_g subject to sum H_g*k*2^-t_g <= sum H_g*k*2^-T
    (Lagrangian, bisection on the multiplier); groups without keys get t = 0 (no filter, no harm)."""
    ts = np.arange(tmin, 17)
    budget = H.sum() * k * 2.0 ** -T

    def pick(lam: float) -> np.ndarray:
        cost = cpk * n[:, None] * ts[None, :] + lam * H[:, None] * k * 2.0 ** -ts[None, :]
        return np.where(n > 0, ts[cost.argmin(1)], 0)

    def harm(t: np.ndarray) -> float:
        return float((H * k * np.where(t > 0, 2.0 ** -t.astype(float), 0.0)).sum())

    lo, hi = 1e-6, 1e12
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        lo, hi = (lo, mid) if harm(pick(mid)) <= budget else (mid, hi)
    return pick(hi)


def uniform_curve(layer: Layer, T: int, seeds: int, base: int = 7000) -> dict[int, dict[str, list[float]]]:
    """Real bytes, measured dL and validation error of uniform filters at T-1, T, T+1 (filter
    seeds ``base + s``)."""
    tmin = int(np.ceil(np.log2(layer.k))) + 1
    out = {}
    for t in range(max(tmin, T - 1), T + 2):
        fs = [layer.filt(t, base + s) for s in range(seeds)]
        ls = [layer.losses(f.reconstruct_indices(layer.indices.shape)) for f in fs]
        out[t] = {"bytes": [len(filter_record("w", f, layer.codebook, layer.indices.shape).payload) for f in fs],
                  "dL": [l[0] - layer.base[0] for l in ls], "val_error": [l[1] for l in ls]}
    return out


def iso_bytes(curve: dict[int, dict[str, list[float]]], dl: float) -> float:
    """Uniform bytes at measured loss increase ``dl``: linear in log dL between the measured t
    (linear extrapolation beyond them)."""
    ts = sorted(curve)
    x = np.array([np.log(np.mean(curve[t]["dL"])) for t in ts])
    y = np.array([np.mean(curve[t]["bytes"]) for t in ts])
    o = np.argsort(x)
    x, y = x[o], y[o]
    j = int(np.clip(np.searchsorted(x, np.log(dl)), 1, len(x) - 1))
    return float(y[j - 1] + (y[j] - y[j - 1]) * (np.log(dl) - x[j - 1]) / (x[j] - x[j - 1]))


def pergroup(layer: Layer, fmean: np.ndarray, T: int, curve: dict, seeds: int, log: Callable[[str], None],
             keep: dict[int, np.ndarray] | None = None, only: str | None = None, base: int = 7000) -> list[dict]:
    """Per grouping (``only``: that one): water-filled t, estimated saving, then real filters
    (shared-header bytes) and measured loss against the uniform filter at t = T, ``seeds`` seeds
    each (``keep``: seed -> decoded indices of the last grouping)."""
    shape, k = layer.indices.shape, layer.k
    ev2 = float((layer.codebook ** 2).mean())
    h_all = 0.5 * fmean * ev2
    h = np.where(layer.zero.reshape(shape), h_all, 0.0)
    nz = ~layer.zero.reshape(shape)
    con = get_construction(layer.construction)
    n_keys = layer.keys.size
    cpk = con.num_cells(n_keys, None) / n_keys
    tmin = int(np.ceil(np.log2(k))) + 1
    fixed = 4 * k + len(MAGIC) + 1 + HEADER_SIZE  # codebook + record header, paid once
    est_uni = fixed + 21 + con.num_cells(n_keys, None) * T / 8
    uni_b, uni_dl = float(np.mean(curve[T]["bytes"])), float(np.mean(curve[T]["dL"]))
    rows = []
    for gname, (lab, mapcost) in groupings(shape, h, nz, h_all).items():
        if only is not None and gname != only:
            continue
        _, g = np.unique(lab, return_inverse=True)
        H, n = np.bincount(g, h.ravel()), np.bincount(g, nz.ravel().astype(float))
        tg = waterfill(H, n, k, T, tmin, cpk)
        classes = sorted(set(tg[n > 0].tolist()))
        cls_of_pos = tg[g]
        map_bytes = float(mapcost(tg)) + len(classes)  # + one byte per class (its t)
        nc = {c: int(nz.ravel()[cls_of_pos == c].sum()) for c in classes}
        est = fixed + map_bytes + sum(21 + con.num_cells(nc[c], None) * c / 8 for c in classes)
        real_bytes, real_loss = [], []
        for s in range(seeds):
            idx = np.full(layer.zero.size, -1, np.int64)
            total = fixed + map_bytes
            for c in classes:
                m = cls_of_pos == c
                f = layer.filt(c, base + 100 * s + c, m)
                coded = encode_filter(f)
                total += len(coded) - HEADER_SIZE - (len(MAGIC) + 1 if coded.startswith(MAGIC) else 0)
                idx[m] = f.reconstruct_indices(shape).ravel()[m]
            real_bytes.append(total)
            real_loss.append(layer.losses(idx))
            if keep is not None:
                keep[s] = idx
        dl = [l[0] - layer.base[0] for l in real_loss]
        row = {"grouping": gname, "T": T, "groups": int(g.max() + 1), "empty_groups": int((n == 0).sum()),
               "classes": {int(c): nc[c] for c in classes}, "map_bytes": round(map_bytes, 1),
               "est_harm_ratio": float((H * np.where(tg > 0, 2.0 ** -tg.astype(float), 0)).sum() / (H.sum() * 2.0 ** -T)),
               "est_uniform_bytes": round(est_uni), "est_grouped_bytes": round(est), "est_saving_pct": 100 * (1 - est / est_uni),
               "grouped_bytes": [round(b) for b in real_bytes], "real_saving_pct": 100 * (1 - np.mean(real_bytes) / uni_b),
               "grouped_dL": dl, "grouped_val_error": [l[1] for l in real_loss], "dL_ratio": float(np.mean(dl) / uni_dl),
               "uniform_bytes_at_equal_dL": iso_bytes(curve, float(np.mean(dl)))}
        row["saving_at_equal_dL_pct"] = 100 * (1 - np.mean(real_bytes) / row["uniform_bytes_at_equal_dL"])
        log(f"  T={T} {gname}: est {row['est_saving_pct']:.2f}%, real {row['real_saving_pct']:.2f}%, dL x{row['dL_ratio']:.2f}, "
            f"at equal dL {row['saving_at_equal_dL_pct']:.2f}%")
        rows.append(row)
    return rows


def retrain_check(layer: Layer, simp: Any, entry: dict, fmean: np.ndarray, T: int, epochs: float, seeds: int,
                  log: Callable[[str], None]) -> dict:
    """The pipeline's retraining (its defaults but ``epochs`` epochs: distillation from the
    simplified model, later simplified layers retrain masked) after decoding uniform filters at
    T-1 and T and the grouping with the best saving at equal measured dL; filter seed s with
    training seed s. Returns the validation loss and error % after it, per seed and plan."""
    import copy
    from dataclasses import replace

    from weightless.pipeline.steps import retrain_around
    from weightless.training.task import as_task

    rows = [r for r in entry["pergroup"] if r["estimator"] == "Fisher@decoded" and r["T"] == T and not r["grouping"].startswith("oracle")]
    best = max(rows, key=lambda r: r["saving_at_equal_dL_pct"])
    curve = {int(t): c for t, c in entry["uniform"][str(T)].items()}
    kept: dict[int, np.ndarray] = {}
    pergroup(layer, fmean, T, curve, seeds, log, kept, only=best["grouping"])
    names = [n for n, _ in simp.model.named_parameters()]
    later = names[names.index(layer.name) + 1:]
    pending = {n: (simp.layers[n].indices, simp.layers[n].codebook) for n in later if n in simp.layers}
    trainable = {n for n in later if n not in pending} | {layer.name.rsplit(".", 1)[0] + ".bias"}
    teacher = copy.deepcopy(simp.model).eval()
    out: dict[str, Any] = {"epochs": epochs, "grouping": best["grouping"], "design": "filter seed s with training seed s", "runs": []}
    for s in range(seeds):
        cfg = ReproConfig.for_mode(False, progress=False, retrain_epochs=epochs, seed=s).encode_config()
        plans = {f"uniform t={t}": (layer.filt(t, 7000 + s).reconstruct_indices(layer.indices.shape).ravel(), curve[t]["bytes"][s])
                 for t in (T - 1, T)}
        plans[f"grouped ({best['grouping']}) T={T}"] = (kept[s], best["grouped_bytes"][s])
        run: dict[str, Any] = {"filter_seed": s, "train_seed": s, "plans": {}}
        for pname, (idx, nbytes) in plans.items():
            layer.set(idx)
            cand = copy.deepcopy(simp.model)
            layer.set(None)
            retrain_around(cand, as_task(layer.data), replace(cfg, seed=s), encoded={layer.name: (
                idx.reshape(layer.indices.shape), layer.codebook.astype(np.float32))}, pending=pending, trainable=trainable,
                teacher=teacher, desc=pname, progress=False)
            err, loss = per_example(cand, layer.val)
            run["plans"][pname] = {"bytes": int(nbytes), "val_loss": float(loss.mean()), "val_error": 100 * float(err.mean())}
        log(f"  retrain seed {s}: {run['plans']}")
        out["runs"].append(run)
    return out


def ms(a: list[float], f: str = ".4f") -> str:
    """mean +- sd."""
    return f"{np.mean(a):{f}} ± {np.std(a, ddof=1) if len(a) > 1 else 0:{f}}"


def markdown(res: dict) -> str:
    """The tables of parts 2 and 3 and the decision."""
    env = res["env"]
    L = ["# Issue 15: harm estimate per zero position, and per-group t", "",
         f"Commit {env['git']['commit'][:10]}, {env['machine']['cpu']} (2 CPUs, shared), one torch thread. "
         "F: diagonal empirical Fisher, exact per-example gradients (torch.func vmap) over the first N training images, "
         "either at the simplified model ('Fisher') or at the model decoded with one uniform filter at the paper's t "
         "('Fisher@decoded'). Measured dL: mean validation loss (first V validation images) with the decoded layer minus "
         f"the simplified model's, no retraining. 'train-5k dL': the same on the {RANK_EXAMPLES} training images the "
         "pipeline ranks filter seeds on (a measurement, not an estimate). Test split unused.", "",
         "| layer | keys / positions | k | N | V | seeds per t (part 2) | seeds per plan (part 3) | command |", "|---|---|---|---|---|---|---|---|"]
    L += [f"| {l['label']} | {l['keys']} / {l['positions']} | {l['k']} | {l['fisher_images']} | {l['val_images']} | {l['seeds']} | "
          f"{l['group_seeds']} | `{l['command']}` |" for l in res["layers"]]
    L += ["",
         "## Part 2: predicted vs measured loss increase over real filters", "",
         "Prediction = sum over the filter's actual false positives of 0.5·F·v², or + g·v ('+grad', g the mean gradient). "
         "Filters: t = ceil(log2 k)+1 .. 10, several seeds each. Within-t: Spearman over the seeds of one t, mean over t. "
         "'pick dL': measured dL of the seed the criterion picks, mean over t (compare best and mean seed).", "",
         "| layer | criterion | Pearson | Spearman | pred/meas (median) | within-t Spearman | pick dL | best seed dL | mean seed dL |",
         "|---|---|---|---|---|---|---|---|---|"]
    for lay in res["layers"]:
        v = lay["validation"]
        for key, c in v["criteria"].items():
            L.append(f"| {lay['label']} ({len(v['filters'])} filters) | {key} | {c['pearson']:.3f} | {c['spearman']:.3f} | "
                     f"{c['ratio_median']:.2f} | {c['spearman_within_t_mean']:.2f} | {np.mean(c['measured_dL_of_pick']):.5f} | "
                     f"{np.mean(v['measured_dL_best_seed']):.5f} | {np.mean(v['measured_dL_mean_seed']):.5f} |")
    L += ["", "## Part 3: per-group t (water-filling at the uniform t's estimated harm)", "",
          "Bytes: codebook + one record header, then per class (distinct t) its filter's cells, aux and shard record (real, "
          "entropy-coded) + 1 byte for its t, + the group->class map (ideal entropy of the labels; factorised: the row and "
          "column bins + half a byte per group). Groups without keys need no filter. 'real saving': grouped vs uniform "
          "bytes at T; 'dL x': grouped / uniform measured dL; 'saving at equal dL': grouped bytes vs the uniform bytes "
          "interpolated (linear in log dL over t = T-1..T+1) at the grouped plan's measured dL. Means over seeds.", "",
          "| layer | estimator | T | grouping | groups (empty) | classes t:keys | map B | est. saving % | grouped B | uniform B | real saving % | dL x | saving at equal dL % |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lay in res["layers"]:
        for r in lay["pergroup"]:
            u = lay["uniform"][str(r["T"])][str(r["T"])]
            L.append(f"| {lay['label']} | {r['estimator']} | {r['T']} | {r['grouping']} | {r['groups']} ({r['empty_groups']}) | "
                     f"{' '.join(f'{t}:{n}' for t, n in r['classes'].items())} | {r['map_bytes']:.0f} | {r['est_saving_pct']:.2f} | "
                     f"{ms(r['grouped_bytes'], '.0f')} | {ms(u['bytes'], '.0f')} | {r['real_saving_pct']:.2f} | "
                     f"{r['dL_ratio']:.2f} | {r['saving_at_equal_dL_pct']:.1f} |")
    L += ["", "Uniform filters (real bytes, measured dL, validation error %; mean ± sd over seeds):", "",
          "| layer | t | bytes | dL | val error % |", "|---|---|---|---|---|"]
    for lay in res["layers"]:
        seen = {}
        for c in lay["uniform"].values():
            seen.update(c)
        for t, c in sorted(seen.items(), key=lambda x: int(x[0])):
            L.append(f"| {lay['label']} (simplified {lay['simplified_val_error']:.2f}%) | {t} | {ms(c['bytes'], '.0f')} | "
                     f"{ms(c['dL'], '.5f')} | {ms(c['val_error'], '.2f')} |")
    for lay in res["layers"]:
        c = lay.get("confirm")
        if c:
            u = c["uniform"][str(c["T"])]
            L += ["", f"Confirmation, {lay['label']}, grouping '{c['grouping']}' (Fisher@decoded, T={c['T']}), on validation "
                  f"images {c['val_images'][0]}-{c['val_images'][1] - 1} (not used for any choice) with {c['seeds']} fresh filter "
                  f"seeds (`{c['command']}`): grouped {ms(c['grouped_bytes'], '.0f')} B vs uniform {ms(u['bytes'], '.0f')} B "
                  f"(real saving {c['real_saving_pct']:.2f}%), dL {ms(c['grouped_dL'])} vs {ms(u['dL'])} (x{c['dL_ratio']:.2f}), "
                  f"saving at equal dL {c['saving_at_equal_dL_pct']:.1f}%; uniform dL at T-1..T+1: "
                  + ", ".join(f"{t}: {ms(v['dL'])}" for t, v in c["uniform"].items()) + "."]
    for lay in res["layers"]:
        r = lay.get("retrain")
        if r:
            L += ["", f"Retraining check, {lay['label']}: the pipeline's retraining ({r['epochs']} epoch, distillation, "
                  f"later layers) after each decoding ({r['design']}; `{r['command']}`); validation loss / error %, mean ± sd over seeds:", "",
                  "| plan | bytes | val loss | val error % |", "|---|---|---|---|"]
            for p in r["runs"][0]["plans"]:
                v = [run["plans"][p] for run in r["runs"]]
                L.append(f"| {p} | {ms([x['bytes'] for x in v], '.0f')} | {ms([x['val_loss'] for x in v])} | "
                         f"{ms([x['val_error'] for x in v], '.2f')} |")
    L += ["", "## Decision", "", res.get("decision") or "(pending)", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    """Run the layers given (default all six) and write the results after each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="model:pruning:tensor (repeatable)")
    ap.add_argument("--fisher-images", type=int, default=5000)
    ap.add_argument("--val-images", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=6, help="filter seeds per t in part 2")
    ap.add_argument("--group-seeds", type=int, default=3, help="filter seeds per plan in part 3")
    ap.add_argument("--auto-t", action="store_true", help="part 3 also at the automatic t of results/table123.md")
    ap.add_argument("--retrain-epochs", type=float, default=0.0,
                    help="> 0: retraining check at the paper's t (uniform T-1, T and the best grouping)")
    ap.add_argument("--retrain-seeds", type=int, default=2)
    ap.add_argument("--retrain-only", action="store_true", help="keep a layer's previous results, add the retraining check")
    ap.add_argument("--confirm", default=None, help="keep a layer's previous results; re-measure this grouping "
                    "(Fisher@decoded, paper t) with fresh filter seeds on the validation images after the first V")
    ap.add_argument("--decision", default=None, help="the decision paragraph for the Markdown")
    ap.add_argument("--markdown-only", action="store_true", help="only rewrite the Markdown (and decision) from the JSON")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    set_threads(1)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    data = load_data(False)
    cfg = ReproConfig.for_mode(False, progress=False)
    jp = Path(args.out) / "harm_pergroup.json"
    prev = json.loads(jp.read_text()) if jp.exists() else {}
    done = {l["label"]: l for l in prev.get("layers", [])}
    if args.markdown_only:
        prev["decision"] = args.decision or prev.get("decision")
        write_result(args.out, "harm_pergroup", prev, markdown(prev))
        return 0
    cmd = " ".join(["benchmarks/harm_pergroup.py"] + (argv if argv is not None else sys.argv[1:]))
    for spec in args.only or LAYERS:
        model, pruning, name = spec.split(":")
        t0 = time.perf_counter()
        simp, _ = prepare_simplified(model, pruning, cfg, data, log)
        layer = Layer(simp, name, data, args.val_images)
        label = f"{model} {pruning} {layer.paper_name}"
        log(f"== {label}: {layer.keys.size} keys, k={layer.k}, {layer.construction}")
        tr = data.train.head(args.fisher_images)
        tp = PAPER_T[(model, pruning)][name]
        reuse = done.get(label) if args.retrain_only or args.confirm else None
        est = {} if reuse else {"Fisher": fisher(layer.model, name, tr.x, tr.y)}
        layer.set(layer.filt(tp, 99).reconstruct_indices(layer.indices.shape))
        est["Fisher@decoded"] = fisher(layer.model, name, tr.x, tr.y)
        layer.set(None)
        log(f"  Fisher in {time.perf_counter() - t0:.0f} s")
        entry: dict[str, Any] = reuse or {
            "label": label, "model": model, "pruning": pruning, "tensor": name, "k": layer.k, "keys": int(layer.keys.size),
            "positions": int(layer.zero.size), "construction": layer.construction, "simplified_val_loss": layer.base[0],
            "simplified_val_error": layer.base[1], "command": cmd, "fisher_images": args.fisher_images,
            "val_images": args.val_images, "seeds": args.seeds, "group_seeds": args.group_seeds}
        if not reuse:
            entry["validation"] = validate(layer, est, args.seeds, log)
            entry["pergroup"], entry["uniform"] = [], {}
            for T in sorted({tp, AUTO_T[(model, pruning, name)] if args.auto_t else tp}):
                curve = uniform_curve(layer, T, args.group_seeds)
                entry["uniform"][str(T)] = {str(t): c for t, c in curve.items()}
                for ename, (fm, _) in est.items():
                    entry["pergroup"] += [{"estimator": ename, **r} for r in pergroup(layer, fm, T, curve, args.group_seeds, log)]
        if args.confirm:
            held = Layer(simp, name, data, args.val_images, val_offset=args.val_images)
            curve = uniform_curve(held, tp, args.group_seeds, base=9000)
            row = pergroup(held, est["Fisher@decoded"][0], tp, curve, args.group_seeds, log, only=args.confirm, base=9000)[0]
            entry["confirm"] = {"command": cmd, "val_images": [args.val_images, 2 * args.val_images], "seeds": args.group_seeds,
                                "uniform": {str(t): c for t, c in curve.items()}, **row}
        if args.retrain_epochs > 0:
            entry["retrain"] = retrain_check(layer, simp, entry, est["Fisher@decoded"][0], tp, args.retrain_epochs,
                                             min(args.retrain_seeds, args.group_seeds), log)
            entry["retrain"]["command"] = cmd
        entry["seconds_extra" if reuse else "seconds"] = round(time.perf_counter() - t0, 1)
        done[label] = entry
        res = {"env": env_info(), "command": cmd, "fisher_images": args.fisher_images, "val_images": args.val_images,
               "layers": list(done.values()), "decision": args.decision or prev.get("decision")}
        write_result(args.out, "harm_pergroup", res, markdown(res))
        log(f"  {label} done in {entry['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
