"""Peak decode memory of coded records (issue 24 item 2): ``sparse`` and ``indexed`` records are
decoded in chunks straight into the output array, so the traced peak (tracemalloc) of
``decode_record`` should be the output plus at most 10%.

    python benchmarks/bench_decode_memory.py

Writes results/bench/bench_decode_memory.json and .md.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from weightless.container import Record  # noqa: E402
from weightless.entropy._bits import write_varint  # noqa: E402
from weightless.entropy.table_coder import _ans_encode  # noqa: E402
from weightless.io.clustered import Clustered, coded_record  # noqa: E402
from weightless.io.records import decode_record  # noqa: E402


def _case(name: str, encoding: str, shape: tuple[int, ...], density: float, k: int, dtype: str, rng) -> dict:
    size = int(np.prod(shape))
    idx = rng.integers(0, k, size)
    if encoding == "sparse":
        idx = np.where(rng.random(size) < density, idx, -1)
    cb = np.linspace(-1, 1, k)
    if dtype == "float16":
        cb = cb.astype(np.float16).astype(np.float64)
    elif dtype in ("float32", "bfloat16"):
        cb = np.round(cb * 64) / 64
    rec = coded_record("w", Clustered(idx.reshape(shape), cb, dtype), encoding)
    del idx
    out, peak, dt = _traced(rec)
    return {"case": name, "encoding": encoding, "shape": list(shape), "dtype": dtype, "k": k,
            "density": density if encoding == "sparse" else 1.0, "payload_bytes": len(rec.payload),
            "output_bytes": out.nbytes, "peak_bytes": peak, "peak_over_output": round(peak / out.nbytes - 1, 4),
            "seconds": round(dt, 3)}


def _traced(rec: Record) -> tuple[np.ndarray, int, float]:
    """(the decoded array, the traced peak bytes of decoding it, seconds)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = decode_record(rec)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak, dt


def _crafted(name: str, rec: Record) -> dict:
    """A valid record written by hand (the range-coded models, whose streams a writer of random
    data never picks): its peak per coded symbol, the figure docs/FORMAT.md states."""
    decode_record(rec)  # numba compiled before the measure
    out, peak, dt = _traced(rec)
    return {"case": name, "encoding": rec.encoding, "shape": list(rec.shape), "dtype": rec.dtype, "k": None,
            "density": float(np.count_nonzero(out)) / out.size, "payload_bytes": len(rec.payload),
            "output_bytes": out.nbytes, "peak_bytes": peak, "peak_over_output": round(peak / out.nbytes - 1, 4),
            "peak_per_element": round((peak - out.nbytes) / out.size, 1), "seconds": round(dt, 3)}


def _all_nonzero_blocks(cols: int) -> Record:
    """2 rows, every position but column 0's nonzero: one full block (positions model 3)."""
    lab = np.zeros(cols, dtype=np.int32)
    lab[0] = 1
    words = _ans_encode(lab, np.array([(cols - 1) / cols, 1 / cols]))
    labels = bytes([1]) + write_varint(cols - 1) + write_varint(1) + write_varint(len(words)) + words
    n = 2 * (cols - 1)
    pos = write_varint(n) + bytes([3, 1, 2]) + labels + write_varint(n) + write_varint(0) + write_varint(0)
    return Record("w", "sparse", (2, cols), "float16", {}, write_varint(1) + bytes([1]) + np.ones(1, "<f2").tobytes() + pos)


def _left_indexed(length: int, model: int) -> Record:
    """An indexed record of 2 values whose symbols (model 3, or 4 with stride 1) are ``length``
    zero bytes of range coder: the most symbols such a stream may hold."""
    count = 5672 * length + 45376
    count -= count % 2
    sym = bytes([model, 64]) + (write_varint(1) if model == 4 else b"") + write_varint(length) + b"\0" * length
    return Record("w", "indexed", (2, count // 2), "float16", {},
                  write_varint(2) + bytes([1]) + np.array([1, 2], "<f2").tobytes() + sym)


def main() -> int:
    rng = np.random.default_rng(0)
    cases = [
        ("sparse 10% float32 flat", "sparse", (4096, 4096), 0.10, 16, "float32"),
        ("sparse 1% float32", "sparse", (4096, 4096), 0.01, 32, "float32"),
        ("sparse 50% float16", "sparse", (4096, 4096), 0.5, 8, "float16"),
        ("sparse 5% bfloat16", "sparse", (2048, 4096), 0.05, 16, "bfloat16"),
        ("indexed k=16 float32", "indexed", (4096, 4096), 1.0, 16, "float32"),
        ("indexed k=300 float64", "indexed", (2048, 2048), 1.0, 300, "float64"),
        ("indexed k=4 float16", "indexed", (4096, 4096), 1.0, 4, "float16"),
    ]
    rows = [_case(*c, rng) for c in cases]
    rows += [_crafted("crafted: blocks, all nonzero (positions model 3)", _all_nonzero_blocks(1 << 21)),
             _crafted("crafted: indexed, symbols model 3", _left_indexed(1000, 3)),
             _crafted("crafted: indexed, symbols model 4", _left_indexed(1000, 4))]
    result = {"benchmark": "bench_decode_memory", "rows": rows,
              "max_peak_over_output": max(r["peak_over_output"] for r in rows if "peak_per_element" not in r),
              "max_crafted_bytes_per_element": max(r.get("peak_per_element", 0) for r in rows),
              "command": "python benchmarks/bench_decode_memory.py"}
    out_dir = os.path.join(ROOT, "results", "bench")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench_decode_memory.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    table = "\n".join(f"| {r['case']} | {r['payload_bytes']:,} | {r['output_bytes']:,} | {r['peak_bytes']:,} | "
                      f"{100 * r['peak_over_output']:+.1f}% | {r.get('peak_per_element', '')} | {r['seconds']} |" for r in rows)
    with open(os.path.join(out_dir, "bench_decode_memory.md"), "w") as f:
        f.write("# Peak decode memory of coded records\n\n"
                "`python benchmarks/bench_decode_memory.py`: traced peak (tracemalloc) of `decode_record` on "
                "one record, against the decoded array's size.\n\n"
                "| case | payload bytes | output bytes | peak bytes | peak above output | above output, B per element | seconds |\n"
                f"|---|---|---|---|---|---|---|\n{table}\n\n"
                "The crafted records are valid files written by hand for the range-coded models (a stream of zero "
                "bytes holds the most symbols its length allows); docs/FORMAT.md states their working memory.\n\n"
                f"Largest peak above the output (written records): {100 * result['max_peak_over_output']:+.1f}%; "
                f"crafted range-coded records: at most {result['max_crafted_bytes_per_element']} bytes an element "
                "above the output.\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
