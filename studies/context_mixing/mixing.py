"""Would logistic mixing shrink the lossless records enough to pay for a format change?

Ideal code lengths (bits = sum of -log2 p, no coder overhead) on the clean simplified tensors
of ``benchmarks/lossless_tensors.py`` (runs/lossless/*.npz), each model against the one the
records use today:

- positions: the kept-rows x kept-columns grid under positions model 4/5 (FORMAT.md 8.2: 8 x 8
  density octaves x left (x the cell s columns back), context cap 255 as the writer uses,
  best s among the first 12 divisors of the column count) against a logistic mixer of the stretched column, row and
  model-4/5 context probabilities (plus a column-group and kernel-position estimate at the same
  s, best s of the same 12, and a bias), weights learnt per decision;
- symbols: symbols model 3 (left neighbour's rank, binary MSB-first, best of the writer's caps
  64 and 255) against a mixer of that probability with per-column and per-row adaptive ones.

The estimate per tensor subtracts both savings from the record measured by
``benchmarks/bench_lossless.py`` (results/bench/bench_lossless.json) and divides by NNCodec's
bytes there. Where a record's symbols use model 4 (left and up), the saving is measured
against model 3, so the estimate is optimistic.

    python studies/context_mixing/mixing.py  # writes mixing.json and mixing.md here
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = ("lenet300-magnitude", "lenet300-dns", "lenet5-magnitude", "lenet5-dns", "own_model")
CAP = 255  # index_coder.CONTEXT_CAP
LR = 0.002


@njit(cache=True)
def _adapt(p, n, i, bit, cap):
    r = 131072 // (2 * min(n[i], cap) + 3)
    q = p[i] + (((65536 - p[i]) * r) >> 16) if bit else p[i] - ((p[i] * r) >> 16)
    p[i] = min(max(q, 64), 65472)
    n[i] += 1


@njit(cache=True)
def _bucket(p):
    v, b = p >> 4, 0
    while v:
        b += 1
        v >>= 1
    return min(12 - b, 7)


@njit(cache=True)
def _st(p):
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


@njit(cache=True)
def positions_bits(mask, back, extra, tcol, stride, mix):
    """Ideal bits of the grid: model 4/5 (mix = 0) or the mixer (mix = 1)."""
    rows, cols = mask.shape
    pc, nc = np.full(cols, 32768, np.int64), np.zeros(cols, np.int64)
    pr, nr = np.full(rows, 32768, np.int64), np.zeros(rows, np.int64)
    nctx = 128 << extra
    px, nx = np.full(nctx, 32768, np.int64), np.zeros(nctx, np.int64)
    ng = tcol[cols - 1] // stride + 1 if stride > 0 else 1
    pg, ngc = np.full(2 * ng, 32768, np.int64), np.zeros(2 * ng, np.int64)
    nk = max(stride, 1)
    pk, nkc = np.full(2 * nk, 32768, np.int64), np.zeros(2 * nk, np.int64)
    w = np.array([0.3, 0.3, 0.4, 0.0, 0.0, 0.0])
    x = np.zeros(6)
    bits, ones, seen = 0.0, 0, 0
    for i in range(rows):
        if mix and seen:  # a new row starts at the density so far
            pr[i], nr[i] = max(64, min(65472, int(65536 * (ones + 0.5) / (seen + 1)))), 8
        left = 0
        for j in range(cols):
            c = (_bucket(pc[j]) * 8 + _bucket(pr[i])) * 2 + left
            if extra:
                c = 2 * c + (1 if back[j] >= 0 and mask[i, back[j]] else 0)
            g = (tcol[j] // stride) * 2 + left if stride > 0 else 0
            kk = (tcol[j] % stride) * 2 + left if stride > 0 else 0
            bit = mask[i, j]
            if mix:
                x[0], x[1], x[2] = _st(pc[j] / 65536), _st(pr[i] / 65536), _st(px[c] / 65536)
                x[3], x[4], x[5] = _st(pg[g] / 65536), _st(pk[kk] / 65536), 0.3
                dot = 0.0
                for a in range(6):
                    dot += w[a] * x[a]
                p = 1.0 / (1.0 + math.exp(-dot))
                q = min(max(p, 1 / 4096), 1 - 1 / 4096)
                for a in range(6):
                    w[a] += LR * (bit - p) * x[a]
            else:
                q = px[c] / 65536
            bits -= math.log2(q if bit else 1 - q)
            _adapt(px, nx, c, bit, CAP)
            _adapt(pc, nc, j, bit, 1023)
            _adapt(pr, nr, i, bit, 1023)
            if stride > 0:
                _adapt(pg, ngc, g, bit, 255)
                _adapt(pk, nkc, kk, bit, 255)
            left = bit
            ones += bit
            seen += 1
    return bits


@njit(cache=True)
def symbols_bits(ranks, left, rows, cols, k, cap, lr):
    """(model 3's ideal bits, the mixer's) for the ranks, MSB first."""
    d_max = max(k - 1, 1)
    depth = 0
    while d_max:
        depth += 1
        d_max >>= 1
    nodes = 1 << depth
    pl, nl = np.full((k + 1) * nodes, 32768, np.int64), np.zeros((k + 1) * nodes, np.int64)
    pcol, ncol = np.full((cols.max() + 1) * nodes, 32768, np.int64), np.zeros((cols.max() + 1) * nodes, np.int64)
    prow, nrow = np.full((rows.max() + 1) * nodes, 32768, np.int64), np.zeros((rows.max() + 1) * nodes, np.int64)
    w = np.zeros((nodes, 4))
    w[:, 0] = 1.0
    x = np.zeros(4)
    plain, mixed = 0.0, 0.0
    for t in range(ranks.size):
        ctx = ranks[t - 1] + 1 if left[t] else 0
        node = 1
        for d in range(depth - 1, -1, -1):
            bit = (ranks[t] >> d) & 1
            i, ic, ir = ctx * nodes + node, cols[t] * nodes + node, rows[t] * nodes + node
            q = pl[i] / 65536
            plain -= math.log2(q if bit else 1 - q)
            x[0], x[1], x[2], x[3] = _st(q), _st(pcol[ic] / 65536), _st(prow[ir] / 65536), 0.3
            dot = 0.0
            for a in range(4):
                dot += w[node, a] * x[a]
            p = min(max(1.0 / (1.0 + math.exp(-dot)), 1 / 4096), 1 - 1 / 4096)
            mixed -= math.log2(p if bit else 1 - p)
            for a in range(4):
                w[node, a] += lr * (bit - p) * x[a]
            _adapt(pl, nl, i, bit, cap)
            _adapt(pcol, ncol, ic, bit, 255)
            _adapt(prow, nrow, ir, bit, 255)
            node = (node << 1) | bit
    return plain, mixed


def _back(kept: np.ndarray, stride: int) -> np.ndarray:
    where = {c: i for i, c in enumerate(kept.tolist())}
    return np.array([where.get(c - stride, -1) for c in kept.tolist()], dtype=np.int64)


def positions(ind: np.ndarray) -> tuple[float, float]:
    """(model 4/5 bytes, mixer bytes) of the tensor's kept grid."""
    m = (ind >= 0).reshape(ind.shape[0], -1)
    rk, ck = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    g = np.ascontiguousarray(m[np.ix_(rk, ck)].astype(np.int64))
    cols = m.shape[1]
    none = np.zeros(0, np.int64)
    strides = [d for d in range(2, cols // 2 + 1) if cols % d == 0][:12]
    best = min([positions_bits(g, none, 0, ck, 0, 0)] + [positions_bits(g, _back(ck, s), 1, ck, 0, 0) for s in strides])
    mixed = min(positions_bits(g, _back(ck, s), 1, ck, s, 1) for s in strides)
    return best / 8, mixed / 8


def symbols(ind: np.ndarray, codebook: np.ndarray) -> tuple[float, float]:
    """(model 3 bytes, mixer bytes), each the best of the writer's caps and (mixer) 3 rates."""
    m = ind.reshape(ind.shape[0], -1)
    order = np.argsort(codebook, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(codebook.size)
    r, c = np.nonzero(m >= 0)
    s = rank[m[r, c]].astype(np.int64)
    left = np.r_[False, (r[1:] == r[:-1]) & (c[1:] == c[:-1] + 1)].astype(np.int64)
    runs = [symbols_bits(s, left, r.astype(np.int64), c.astype(np.int64), codebook.size, cap, lr)
            for cap in (64, 255) for lr in (0.002, 0.005, 0.02)]
    return min(a for a, _ in runs) / 8, min(b for _, b in runs) / 8


def main() -> int:
    bench = json.loads((ROOT / "results/bench/bench_lossless.json").read_text())
    records = {(t["model"], t["tensor"]): t for t in bench["tensors"]}
    rows = []
    for case in CASES:
        z = np.load(ROOT / f"runs/lossless/{case}.npz")
        for key in sorted(k for k in z.files if k.endswith("/indices")):
            name = key[: -len("/indices")]
            if z[key].ndim < 2 or (case, name) not in records:
                continue
            p0, p1 = positions(z[key])
            s0, s1 = symbols(z[key], z[f"{name}/codebook"])
            rec = records[(case, name)]
            ours, theirs = rec["weightless"]["bytes"], rec["nncodec"]["bytes_with_codebook"]
            est = ours - (p0 - p1) - (s0 - s1)
            rows.append({"model": case, "tensor": name, "positions_bytes": round(p0), "positions_mixed": round(p1),
                         "symbols_bytes": round(s0), "symbols_mixed": round(s1), "record_bytes": ours,
                         "nncodec_bytes": theirs, "ratio": ours / theirs, "estimated_ratio": est / theirs})
            print(f"{case} {name}: positions x{p1 / p0:.3f}, symbols x{s1 / s0:.3f}, "
                  f"ratio {rows[-1]['ratio']:.3f} -> {rows[-1]['estimated_ratio']:.3f}", flush=True)
    models = []
    for m in bench["models"]:
        saved = sum(r["record_bytes"] * (1 - r["estimated_ratio"] / r["ratio"]) for r in rows if r["model"] == m["model"])
        theirs = m["nncodec_bytes_with_codebooks"]
        models.append({"model": m["model"], "ratio": m["weightless_bytes"] / theirs,
                       "estimated_ratio": (m["weightless_bytes"] - saved) / theirs})
        print(f"{m['model']}: ratio {models[-1]['ratio']:.3f} -> {models[-1]['estimated_ratio']:.3f}", flush=True)
    (HERE / "mixing.json").write_text(json.dumps({"tensors": rows, "models": models}, indent=1) + "\n")
    lines = ["| model | tensor | positions B (model 4/5 -> mixed) | symbols B (model 3 -> mixed) | record / NNCodec | estimated |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['tensor']} | {r['positions_bytes']:,} -> {r['positions_mixed']:,} "
              f"({r['positions_mixed'] / r['positions_bytes']:.3f}x) | {r['symbols_bytes']:,} -> {r['symbols_mixed']:,} "
              f"({r['symbols_mixed'] / r['symbols_bytes']:.3f}x) | {r['ratio']:.3f} | {r['estimated_ratio']:.3f} |"
              for r in rows]
    lines += ["", "| model | whole model / NNCodec | estimated |", "|---|---|---|"]
    lines += [f"| {m['model']} | {m['ratio']:.3f} | {m['estimated_ratio']:.3f} |" for m in models]
    (HERE / "mixing.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
