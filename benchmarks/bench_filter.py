"""Benchmark of the Bloomier filter codec at the paper's layer scales.

Cases: VGG-16 FC-0 (25088 x 4096 positions, 2.99% nonzero, k=4, t=6) and LeNet5 FC-0
(800 x 500, 0.73% nonzero, k=10, t=8); each with S=1 and the paper's S=10 for VGG-16.
For each: build seconds and keys/s, decode positions/s (numba kernels and numpy fallback,
single thread), serialized bytes (decoded back and checked), bits per nonzero, m/n, measured
false-positive rate against k/2^t, and a memory-bandwidth reference (``out.fill(0)`` on the
output array) with the decode/fill time ratio.

Usage: python benchmarks/bench_filter.py [--out results/bench/bench_filter.json] [--quick]
Prints a table on stdout and writes JSON. The machine is shared: figures are what was measured
(wall clock; the JSON also records the CPU seconds of each timed run, and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from weightless import __version__
from weightless._compat import HAVE_NUMBA
from weightless.filters import BloomierFilter, build

CASES = [
    # name, rows, cols, density, k, t, shards
    ("VGG-16 FC-0", 25088, 4096, 0.0299, 4, 6, 1),
    ("VGG-16 FC-0 S=10", 25088, 4096, 0.0299, 4, 6, 10),
    ("LeNet5 FC-0", 800, 500, 0.0073, 10, 8, 1),
]


def _keys(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct uniformly random positions in [0, size)."""
    if size <= 1 << 22:
        return rng.choice(size, n, replace=False).astype(np.int64)
    cand = np.unique(rng.integers(0, size, int(n * 1.05) + 1000))
    return np.sort(rng.choice(cand, n, replace=False)).astype(np.int64)


def _best(fn, reps: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) over ``reps`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def run_case(name, rows, cols, density, k, t, shards, reps, numpy_decode=True) -> dict:
    rng = np.random.default_rng(12345)
    size = rows * cols
    n = int(round(density * size))
    keys = _keys(size, n, rng)
    vals = rng.integers(0, k, n)
    codebook = np.linspace(-0.1, 0.1, k).astype(np.float32)

    c0, t0 = time.process_time(), time.perf_counter()
    f = build(keys, vals, k=k, t=t, size=size, seed=0, shards=shards, workers=1)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    build_par = float("nan")
    if shards > 1:
        t0 = time.perf_counter()
        fp_ = build(keys, vals, k=k, t=t, size=size, seed=0, shards=shards, workers=2)
        build_par = time.perf_counter() - t0
        assert fp_.to_bytes() == f.to_bytes(), "parallel build differs"

    data = f.to_bytes()
    g = BloomierFilter.from_bytes(data)
    assert np.array_equal(g.query(keys), vals), "round trip failed"

    out = np.empty((rows, cols), np.float32)
    out.fill(1.0)  # fault the pages in before timing anything
    fill_s, _ = _best(lambda: out.fill(0.0), reps)
    dec_s, dec_cpu = _best(lambda: g.reconstruct((rows, cols), codebook, out=out), reps) if HAVE_NUMBA else (float("nan"),) * 2
    flat = out.reshape(-1)
    assert np.array_equal(flat[keys], codebook[vals]), "decode failed"
    np_s = np_cpu = float("nan")
    if numpy_decode:
        out2 = np.empty_like(out)
        out2.fill(1.0)
        np_s, np_cpu = _best(lambda: g.reconstruct((rows, cols), codebook, out=out2, use_numba=False), 1)
        assert np.array_equal(out2, out) or not HAVE_NUMBA, "numpy and numba decodes differ"
    nz = int(np.count_nonzero(flat))
    fp = nz - n  # every decoded nonzero that is not a key (codebook has no zero)
    assert fp == g.count_false_positives()
    m = f.m
    return {
        "case": name,
        "shape": [rows, cols],
        "positions": size,
        "n": n,
        "k": k,
        "t": t,
        "shards": shards,
        "build_s": build_s,
        "build_keys_per_s": n / build_s,
        "build_cpu_s": build_cpu,
        "build_s_2_workers": build_par,
        "shard_seeds": [s.seed for s in f.shards][:10],
        "decode_s_numba": dec_s,
        "decode_pos_per_s_numba": size / dec_s,
        "decode_cpu_s_numba": dec_cpu,
        "decode_s_numpy": np_s,
        "decode_pos_per_s_numpy": size / np_s,
        "decode_cpu_s_numpy": np_cpu,
        "bytes": len(data),
        "header_bytes": len(f.header_bytes()),
        "cell_bytes": len(data) - len(f.header_bytes()),
        "bits_per_nonzero": 8 * len(data) / n,
        "m": m,
        "m_over_n": m / n,
        "false_positives": fp,
        "fp_rate": fp / (size - n),
        "fp_rate_expected": k / 2**t,
        "fill_s": fill_s,
        "fill_bytes_per_s": out.nbytes / fill_s,
        "decode_over_fill": dec_s / fill_s,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench/bench_filter.json")
    ap.add_argument("--reps", type=int, default=3, help="decode repetitions (best is kept)")
    ap.add_argument("--quick", action="store_true", help="LeNet5 only")
    ap.add_argument("--no-numpy", action="store_true", help="skip the numpy decode timing")
    args = ap.parse_args(argv)
    # warm up (compile or load the numba kernels)
    w = build(np.arange(0, 3000, 3), np.zeros(1000, np.int64), k=2, t=3, size=3000)
    w.reconstruct((3000,), [1.0, 2.0])
    w.count_false_positives()
    rows = []
    for case in CASES:
        if args.quick and not case[0].startswith("LeNet"):
            continue
        r = run_case(*case, reps=args.reps, numpy_decode=not args.no_numpy)
        rows.append(r)
        print(f"[done] {r['case']}", file=sys.stderr)
    hdr = (
        f"{'case':<18} {'n':>9} {'build s':>8} {'Mkeys/s':>8} {'dec Mpos/s':>10} {'np Mpos/s':>9} "
        f"{'bytes':>9} {'bits/nz':>7} {'m/n':>6} {'FP rate':>8} {'k/2^t':>7} {'fill GB/s':>9} {'dec/fill':>8}"
    )
    print(hdr)
    for r in rows:
        print(
            f"{r['case']:<18} {r['n']:>9} {r['build_s']:>8.3f} {r['build_keys_per_s'] / 1e6:>8.2f} "
            f"{r['decode_pos_per_s_numba'] / 1e6:>10.1f} {r['decode_pos_per_s_numpy'] / 1e6:>9.1f} "
            f"{r['bytes']:>9} {r['bits_per_nonzero']:>7.3f} {r['m_over_n']:>6.3f} {r['fp_rate']:>8.5f} "
            f"{r['fp_rate_expected']:>7.5f} {r['fill_bytes_per_s'] / 1e9:>9.2f} {r['decode_over_fill']:>8.1f}"
        )
    meta = {
        "weightless": __version__,
        "numpy": np.__version__,
        "numba": HAVE_NUMBA,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
