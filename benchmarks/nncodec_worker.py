"""NNCodec's side of bench_lossless.py; runs inside .venv-nncodec (``make nncodec``), never
imports weightless.

Reads an ``.npz`` of int32 tensors (cluster indices mapped to integers, 0 = pruned) and a
JSON job ``{"groups": {group: [tensor names]}, "variants": [{...}], "repeats": r}``; codes each
group (one tensor, or a whole model) as ONE NNCodec bitstream with every variant (integer
mode: int32 parameters are coded exactly by DeepCABAC, no quantization), decodes every
stream back, checks it bit-exactly against the input, times the decode (best of ``repeats``)
and writes ``{group: [{"variant", "bytes", "exact", "decode_s", "encode_s"}]}`` as JSON.

    .venv-nncodec/bin/python benchmarks/nncodec_worker.py tensors.npz job.json out.json
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

import numpy as np


def _code(params: dict, variant: dict, repeats: int) -> dict:
    from nncodec import nnc

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        bs = nnc.compress(params, bitstream_path=None, return_bitstream=True, verbose=False, use_dq=False,
                          **variant)
    encode_s = time.perf_counter() - t0
    best, exact = float("inf"), True
    for _ in range(repeats):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            dec = nnc.decompress(bytearray(bs), verbose=False)
        best = min(best, time.perf_counter() - t0)
        for name, a in params.items():
            d = np.asarray(dec[name])
            exact = exact and d.shape == a.shape and bool(np.array_equal(d.astype(np.int64), a.astype(np.int64)))
    return {"variant": variant, "bytes": len(bs), "exact": exact, "decode_s": best, "encode_s": encode_s}


def main(argv: list[str]) -> None:
    tensors_path, job_path, out_path = argv
    arrays = np.load(tensors_path)
    job = json.loads(open(job_path).read())
    out: dict = {}
    for group, names in job["groups"].items():
        params = {name: np.ascontiguousarray(arrays[name], dtype=np.int32) for name in names}
        rows = []
        for variant in job["variants"]:
            try:
                rows.append(_code(params, variant, int(job.get("repeats", 3))))
            except (Exception, SystemExit) as exc:  # a variant NNCodec refuses: recorded, not fatal
                rows.append({"variant": variant, "error": f"{type(exc).__name__}: {exc}"[:300]})
        out[group] = rows
        print(f"{group}: " + ", ".join(str(r.get("bytes", "error")) for r in rows), file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
