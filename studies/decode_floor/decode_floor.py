"""Where the paper construction's query time goes (issue 13): the decode kernel against its two
halves, each run alone over the whole layer, as ratios to the fill time measured in the same run.

Layer and filter as in ``benchmarks/bench_decode.py`` (25088 x 4096 positions, 3.07M keys, k = 4, t = 6,
S = 40 shards, one thread). Cases:

- ``decode``: the library kernel (``paper_kernels.nb_decode_blocks``): hash every position,
  then three table loads, the mask and the codebook lookup, written to the output;
- ``hash only``: the same hashing (``nb_hash_step``) in the same steps, its four words
  combined and written to the output (no table loads);
- ``loads only``: the table loads, mask and lookup of one step's hashes (computed once, for
  the smallest table) reused for every step (no hashing), written to the output.

If either half alone is above a target ratio, no overlap of the two reaches it on this CPU.

    python studies/decode_floor/decode_floor.py [--reps 9] [--out studies/decode_floor/decode_floor.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # bench_decode's layer


def _kernels():
    from weightless._compat import njit
    from weightless.filters.paper_kernels import DECODE_STEP, nb_hash_step

    @njit
    def hash_only(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, lut, out):
        ia = np.empty(DECODE_STEP, np.uint32)
        ib = np.empty(DECODE_STEP, np.uint32)
        ic = np.empty(DECODE_STEP, np.uint32)
        im = np.empty(DECODE_STEP, cells.dtype)
        bsize = np.int64(1) << block_bits
        for bi in range(blocks.shape[0]):
            b = blocks[bi]
            lo = np.int64(b) * bsize
            hi = min(lo + bsize, size)
            s = block_shard[b]
            m = ms[s]
            q = m // 3
            for p0 in range(lo, hi, DECODE_STEP):
                n = min(DECODE_STEP, hi - p0)
                nb_hash_step(p0, n, sws[s], q, m - 2 * q, tmask, ia, ib, ic, im)
                o = out[p0:p0 + n]
                for j in range(n):
                    o[j] = np.float32(ia[j] ^ ib[j] ^ ic[j] ^ np.uint32(im[j]))

    @njit
    def loads_only(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, lut, out):
        ia = np.empty(DECODE_STEP, np.uint32)
        ib = np.empty(DECODE_STEP, np.uint32)
        ic = np.empty(DECODE_STEP, np.uint32)
        im = np.empty(DECODE_STEP, cells.dtype)
        m0 = ms.min()  # indices valid in every shard's table
        nb_hash_step(0, DECODE_STEP, sws[0], m0 // 3, m0 - 2 * (m0 // 3), tmask, ia, ib, ic, im)
        bsize = np.int64(1) << block_bits
        for bi in range(blocks.shape[0]):
            b = blocks[bi]
            lo = np.int64(b) * bsize
            hi = min(lo + bsize, size)
            s = block_shard[b]
            tab = cells[offs[s]:offs[s] + ms[s]]
            for p0 in range(lo, hi, DECODE_STEP):
                n = min(DECODE_STEP, hi - p0)
                o = out[p0:p0 + n]
                for j in range(n):
                    o[j] = lut[tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]]

    return hash_only, loads_only


def main(argv: list[str] | None = None) -> int:
    import numba

    from bench_decode import COLS, DENSITY, K, ROWS, T, layer_keys
    from weightless_lab.experiments.common import env_info
    from weightless.filters import build
    from weightless.filters import paper_kernels as pk

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "decode_floor.json"))
    a = ap.parse_args(argv)
    numba.set_num_threads(1)
    size = ROWS * COLS
    keys, vals = layer_keys(size, int(size * DENSITY))
    f = build(keys, vals, size=size, k=K, t=T, construction="paper", shards=40, seed=0)
    tables = f._con.prepare(f.shards, T)
    plan = f.plan()
    out = np.empty(size, np.float32)
    lut = np.zeros(1 << T, np.float32)
    lut[:K] = np.arange(1, K + 1)
    args = (tables.cells, tables.offs, tables.ms, tables.sws, tables.tmask, plan.block_bits, plan.order,
            plan.block_shard, plan.size, lut, out)
    hash_only, loads_only = _kernels()
    cases = {"decode": pk.nb_decode_blocks, "hash only": hash_only, "loads only": loads_only}
    load_before = os.getloadavg()
    ratios: dict[str, list[float]] = {c: [] for c in cases}
    secs: dict[str, list[float]] = {c: [] for c in cases}
    for fn in cases.values():
        fn(*args)  # compile and warm
    for _ in range(a.reps):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            out.fill(0)
            t1 = time.perf_counter()
            fn(*args)
            t2 = time.perf_counter()
            ratios[name].append((t2 - t1) / (t1 - t0))
            secs[name].append(t2 - t1)
    res = {"layer": [ROWS, COLS], "keys": int(keys.size), "k": K, "t": T, "shards": 40, "reps": a.reps,
           "load_average_before": load_before, "load_average_after": os.getloadavg(), "cpu": platform.processor(),
           "cases": {n: {"x_fill_median": round(statistics.median(ratios[n]), 2), "x_fill_min": round(min(ratios[n]), 2),
                         "s_median": round(statistics.median(secs[n]), 4),
                         "ns_per_position": round(1e9 * statistics.median(secs[n]) / size, 2)} for n in cases},
           "env": env_info()}
    p = Path(a.out)
    p.write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Where the paper query's time goes (issue 13)", "",
          f"`python studies/decode_floor/decode_floor.py --reps {a.reps}`; commit {str(res['env']['git']['commit'])[:10]}. "
          f"Layer {ROWS} x {COLS}, {keys.size:,} keys, k = {K}, t = {T}, S = 40, one thread; each figure the median "
          f"over {a.reps} repetitions of the step's time over the `out.fill(0)` timed right before it. Load average "
          f"{load_before[0]:.2f} before, {res['load_average_after'][0]:.2f} after.", "",
          "| case | x fill (median) | x fill (min) | ns per position |", "|---|---|---|---|"]
    for n, c in res["cases"].items():
        md.append(f"| {n} | {c['x_fill_median']:.2f} | {c['x_fill_min']:.2f} | {c['ns_per_position']:.2f} |")
    p.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
