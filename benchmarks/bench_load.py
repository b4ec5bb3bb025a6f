"""Load time of a .wl file against the time to decode its filters (issue 5 target: <= 2x).

Usage: python benchmarks/bench_load.py FILE.wl [--reps N] [--out results/bench/bench_load.json]
Prints a table and writes JSON. Medians over --reps runs, after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from weightless.io.files import load_arrays
from weightless.container import read_container
from weightless.io.records import decode_filter_of


def median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default="results/bench/bench_load.json")
    args = ap.parse_args()
    load_arrays(args.file)  # warm-up: numba compilation, page cache
    recs = [r for r in read_container(args.file).records if r.encoding == "bloomier"]
    decoded = [(decode_filter_of(r), r.shape) for r in recs]
    res = {
        "file": args.file,
        "file_bytes": Path(args.file).stat().st_size,
        "filters": len(recs),
        "load_s": median_seconds(lambda: load_arrays(args.file), args.reps),
        "filter_records_decode_s": median_seconds(lambda: [decode_filter_of(r) for r in recs], args.reps),
        "reconstruct_s": median_seconds(lambda: [f.reconstruct(s, cb) for (f, cb), s in decoded], args.reps),
    }
    res["load_over_decode_and_reconstruct"] = res["load_s"] / (res["filter_records_decode_s"] + res["reconstruct_s"])
    res["load_over_reconstruct"] = res["load_s"] / res["reconstruct_s"]
    for k, v in res.items():
        print(f"{k:<34} {v:.5f}" if isinstance(v, float) else f"{k:<34} {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
