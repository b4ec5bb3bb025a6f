"""``weightless encode``: encode an already simplified checkpoint into a ``.wl`` file (no retraining).

Example::

    weightless encode runs/lenet300-magnitude -o lenet300.wl --t fc1.weight=8 --t fc2.weight=9
    weightless encode model.safetensors -o model.wl --t 8 --dense-dtype float16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from weightless.errors import InputError

__all__ = ["register", "run", "parse_t_values", "format_table"]


def parse_t_values(values: list[str] | None) -> int | dict[str, int] | None:
    """``--t 8`` (every filter layer) or ``--t fc1.weight=8 --t fc2.weight=9``; None if absent.

    Raises:
        InputError: a value that is neither BITS nor LAYER=BITS, or both forms mixed.
    """
    if not values:
        return None
    glob: int | None = None
    per: dict[str, int] = {}
    for v in values:
        name, sep, num = v.partition("=")
        if not sep:
            name, num = "", v
        num = num.strip()
        if not num.isdigit() or (sep and not name.strip()):
            raise InputError(f"--t expects BITS (e.g. 8) or LAYER=BITS (e.g. fc1.weight=8), got {v!r}")
        if sep:
            per[name.strip()] = int(num)
        elif glob is None:
            glob = int(num)
        else:
            raise InputError(f"--t BITS given twice ({glob} and {num}); give it once or use LAYER=BITS")
    if glob is not None and per:
        raise InputError("--t: give either one BITS for every layer or LAYER=BITS entries, not both")
    return glob if glob is not None else per


def register(subparsers: Any) -> None:
    """Add the ``encode`` sub-command."""
    p = subparsers.add_parser(
        "encode",
        help="encode an already simplified checkpoint into a .wl file (no retraining)",
        description=(
            "Read a simplified checkpoint (.safetensors, a torch state_dict .pt/.pth loaded with "
            "weights_only=True, or the folder of 'weightless simplify --out') and write a .wl file. "
            "By default every float tensor with >= 2 dims, at most 256 distinct nonzero values and "
            "at most 50% nonzeros is encoded with a Bloomier filter (k = its number of distinct "
            "nonzero values, codebook = those values sorted; for a simplify folder, the layers of "
            "layers.npz); all other tensors are stored densely. Default t = ceil(log2 k) + 4. "
            "No retraining: the filter's false positives stay as they are. A per-layer table goes "
            "to stderr, a JSON report to stdout."
        ),
    )
    p.add_argument("input", metavar="IN", help="checkpoint file or simplify output folder")
    p.add_argument("-o", "--output", required=True, help="output .wl file")
    p.add_argument("--t", action="append", metavar="T", help="bits per cell: BITS for every filter layer, "
                   "or LAYER=BITS (repeatable); default ceil(log2 k) + 4")
    p.add_argument("--layers", default=None, help="comma-separated tensors to filter-encode (default: automatic)")
    p.add_argument("--construction", choices=("paper", "compact"), default="paper")
    p.add_argument("--c", type=float, default=None, help="cells per key m/n (default: the construction's)")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--no-entropy", action="store_true", help="store raw bit-packed tables")
    p.add_argument("--dense-dtype", choices=("float32", "float16"), default="float32",
                   help="storage of float32 tensors not encoded with a filter")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def format_table(report: dict[str, Any]) -> str:
    """The per-tensor table printed by ``encode``."""
    head = f"{'tensor':<24}{'encoding':<10}{'shape':<16}{'nz %':>8}{'k':>5}{'t':>4}{'false +':>9}{'bytes':>10}{'x':>8}"
    lines = [head, "-" * len(head)]
    for r in report["tensors"]:
        f = r["encoding"] == "bloomier"
        lines.append(
            f"{r['name']:<24}{r['encoding']:<10}{'x'.join(map(str, r['shape'])):<16}"
            f"{r['nonzero_percent']:>8.2f}{r['k'] if f else '-':>5}{r['t'] if f else '-':>4}"
            f"{r['false_positives'] if f else '-':>9}{r['bytes']:>10}{(r['factor'] or 0):>7.1f}x"
        )
    lines.append(f"file {report['output']}: {report['file_bytes']} bytes (fp32 {report['dense_bytes']} bytes, "
                 f"{report['compression_factor']}x)")
    return "\n".join(lines)


def _verify(path: Path, source: dict[str, Any], encoded: dict[str, Any], dense_dtype: str,
            clustered: set[str]) -> None:
    """Decode the file just written and check every tensor: dense ones equal the input (after
    float16 rounding if asked), filter layers equal their filter's reconstruction and (unless
    their codebook came from ``layers.npz``) hold every nonzero float32 input value exactly.
    A mismatch is a bug, not a user error."""
    import numpy as np

    from weightless.io import files as api
    from weightless.io.files import EncodedLayer

    back = api.load_arrays(path)
    for name, a in source.items():
        b, e = back[name], encoded[name]
        if isinstance(e, EncodedLayer):
            ok = np.array_equal(b, e.filter.reconstruct(e.shape, e.codebook))
            nz = a != 0
            if name not in clustered and a.dtype == np.float32:  # codebook = the input's own values
                ok = ok and np.array_equal(b[nz], a[nz])
        else:
            want = a.astype(np.float16).astype(np.float32) if dense_dtype == "float16" and a.dtype == np.float32 else a
            ok = b.dtype == want.dtype and b.tobytes() == want.tobytes()
        if not ok:
            raise RuntimeError(f"{path}: tensor {name!r} did not decode back as written")  # a bug


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless encode``; return the exit code."""
    import numpy as np

    from weightless.io import files as api
    from weightless.convenience import encode_tensors, read_checkpoint
    from ._checks import check_numeric_options, output_file

    t_spec = parse_t_values(args.t)
    layers = None
    if args.layers is not None:
        layers = [s.strip() for s in args.layers.split(",") if s.strip()]
        if not layers:
            raise InputError("--layers needs at least one tensor name (comma-separated)")
    check_numeric_options(args)
    out = output_file(args.output, "-o")
    t0 = time.perf_counter()
    tensors, clustered = read_checkpoint(args.input)
    if not tensors:
        raise InputError(f"{args.input} holds no tensors")
    if layers is not None:
        clustered = {n: v for n, v in clustered.items() if n in layers}
    enc = encode_tensors(tensors, layers=layers, t=t_spec, clustered=clustered, construction=args.construction,
                         c=args.c, shards=args.shards, seed=args.seed)
    metadata = {"source": Path(args.input).name, "command": "encode",
                "weightless_version": __import__("weightless").__version__, "seed": args.seed}
    nbytes = api.save(out, enc.tensors, metadata=metadata, dense_dtype=args.dense_dtype, entropy=not args.no_entropy)
    _verify(out, tensors, enc.tensors, args.dense_dtype, set(clustered))
    summary = api.inspect(out, decode=False)  # _verify decoded every tensor already
    by_layer = {r.name: r for r in enc.layers}
    rows = []
    dense_total = 0
    for r in summary["records"]:
        a = tensors[r["name"]]
        dense = 4 * int(a.size)
        dense_total += dense
        row: dict[str, Any] = {
            "name": r["name"], "encoding": r["encoding"], "shape": r["shape"],
            "nonzero_percent": round(100.0 * int(np.count_nonzero(a)) / max(int(a.size), 1), 3),
            "bytes": r["payload_bytes"], "dense_bytes": dense,
            "factor": round(dense / r["payload_bytes"], 2) if r["payload_bytes"] else None,
        }
        if r["name"] in by_layer:
            le = by_layer[r["name"]]
            row.update(k=le.k, t=le.t, m=le.m, nonzero=le.nonzero, false_positives=le.false_positives,
                       build_seconds=round(le.build_seconds, 3))
        else:
            row["stored"] = r["params"].get("stored")
        rows.append(row)
    report = {
        "input": str(args.input),
        "output": str(out),
        "file_bytes": nbytes,
        "dense_bytes": dense_total,
        "compression_factor": round(dense_total / nbytes, 2),
        "verified": True,  # every tensor was decoded back from the file and checked
        "tensors": rows,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    print(format_table(report), file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0
