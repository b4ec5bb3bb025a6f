"""Lossless records against NNCodec (MPEG NNR, DeepCABAC) and Deep Compression on the same
clustered tensors: bytes per tensor and per model, decode times, every stream decoded back.

Tensors: the clean simplified weight tensors of the four ``compress`` recipes and of
examples/own_model.py, from ``runs/lossless/*.npz`` (``benchmarks/lossless_tensors.py``
makes them). For each tensor:

- weightless: the smallest lossless record (``sparse`` or ``indexed``) of the codebook and
  indices, its payload bytes (codebook included; the container's per-record name/shape
  header is not counted), decoded back and compared; also the record as written before the
  blocks and left models (``before``), and the encode and decode times.
- NNCodec 2.1.3 (``make nncodec``; run in its own venv by benchmarks/nncodec_worker.py): the
  cluster indices as int32 (0 = pruned) in NNCodec's integer mode (exact), under three
  mappings of clusters to integers (signed value rank: negative centroids -1, -2, ... from
  zero outwards; unsigned value rank 1..k; signed frequency rank: the commonest cluster of
  each sign nearest zero) and several encoder variants (row skipping, scan orders, parameter
  optimisation); every stream decoded and checked bit-exactly; the smallest exact one is the
  reference, plus the codebook at the width the record uses (k values). Tensor names are
  short (``t0``...), so NNCodec's stream header is as small as it gets.
- Deep Compression (CSR + Huffman, the project's baseline, best index width).

Whole model: the model's tensors in ONE NNCodec stream (each variant and mapping; smallest
exact) against the sum of the records.

    .venv/bin/python benchmarks/bench_lossless.py [--tensors runs/lossless] [--out results/bench/bench_lossless]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from weightless.baselines.whole_model import dc_tensor_bytes
from weightless.io.clustered import Clustered, clustered_candidates, decode_coded, smallest_record

ROOT = Path(__file__).resolve().parent.parent
NNCODEC_PY = ROOT / ".venv-nncodec" / "bin" / "python"
MODELS = ("lenet300-magnitude", "lenet300-dns", "lenet5-magnitude", "lenet5-dns", "own_model")
VARIANTS = (
    {},
    {"row_skipping": True},
    {"param_opt": False},
    {"scan_order": 1},
    {"scan_order": 2},
    {"row_skipping": True, "scan_order": 1},
)
MAPPINGS = ("signed_value_rank", "unsigned_value_rank", "signed_frequency_rank")
TARGET_TENSOR, TARGET_MODEL, TARGET_DECODE = 0.95, 0.93, 2.0


def as_integers(c: Clustered, mapping: str) -> np.ndarray:
    """The indices of ``c`` as int32 for NNCodec: 0 where pruned, else the cluster's integer."""
    cb = np.asarray(c.codebook, dtype=np.float64)
    idx = np.asarray(c.indices)
    k = cb.size
    if mapping == "unsigned_value_rank":
        rank = np.empty(k, np.int64)
        rank[np.argsort(cb, kind="stable")] = np.arange(k)
        code = rank + 1
    else:
        if mapping == "signed_value_rank":
            key = np.abs(cb)
        else:
            key = -np.bincount(idx[idx >= 0], minlength=k).astype(np.float64)
        code = np.zeros(k, np.int64)
        for sign in (-1, 1):
            members = np.flatnonzero(np.sign(cb) == sign) if sign < 0 else np.flatnonzero(cb >= 0)
            order = members[np.argsort(key[members], kind="stable")]
            code[order] = sign * np.arange(1, order.size + 1)
    return np.where(idx >= 0, code[np.maximum(idx, 0)], 0).astype(np.int32)


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ours(name: str, c: Clustered, repeats: int) -> dict:
    """The record's bytes, encode and decode times, and the bytes before the blocks model."""
    from weightless.io import clustered

    t0 = time.perf_counter()
    rec = smallest_record(name, clustered_candidates(name, c))
    encode_s = time.perf_counter() - t0
    back = decode_coded(rec).astype(np.float64)
    if not np.array_equal(back, c.values()):
        raise RuntimeError(f"{name}: the record did not decode back")  # a bug
    positions, symbols = clustered.encode_positions, clustered.encode_symbols
    try:  # the same record as written before the positions and symbols models 3 existed
        clustered.encode_positions = lambda m, rows=1, stride=None: positions(m, rows, blocks_model=False)  # type: ignore[assignment]
        clustered.encode_symbols = lambda s, k, context=None, up=None: symbols(s, k)  # type: ignore[assignment]
        before = min(len(r.payload) for r in clustered_candidates(name, c))
    finally:
        clustered.encode_positions, clustered.encode_symbols = positions, symbols  # type: ignore[assignment]
    return {"bytes": len(rec.payload), "encoding": rec.encoding, "before_bytes": before, "encode_s": encode_s,
            "decode_s": _best_time(lambda: decode_coded(rec), repeats)}


def run_nncodec(groups: dict[str, dict[str, np.ndarray]], repeats: int) -> dict:
    """NNCodec's rows for each group (name -> {tensor name: int32 array}) from the worker."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays, job = {}, {"groups": {}, "variants": list(VARIANTS), "repeats": repeats}
        for g, tensors in groups.items():
            job["groups"][g] = []
            for t, a in tensors.items():
                key = f"{g}|{t}"
                arrays[key] = a
                job["groups"][g].append(key)
        np.savez(Path(tmp) / "t.npz", **arrays)
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        subprocess.run([str(NNCODEC_PY), str(ROOT / "benchmarks" / "nncodec_worker.py"), str(Path(tmp) / "t.npz"),
                        str(Path(tmp) / "job.json"), str(Path(tmp) / "out.json")], check=True, cwd=tmp)
        return json.loads((Path(tmp) / "out.json").read_text())


def best_exact(rows: list[dict]) -> dict | None:
    ok = [r for r in rows if r.get("exact")]
    return min(ok, key=lambda r: (r["bytes"], r["decode_s"])) if ok else None


def nncodec_version() -> str:
    out = subprocess.run([str(NNCODEC_PY), "-c", "import importlib.metadata as m; print(m.version('nncodec'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def load_models(folder: Path, names: "list[str] | None" = None) -> dict[str, dict[str, Clustered]]:
    models = {}
    for model in names or MODELS:
        path = folder / f"{model}.npz"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run benchmarks/lossless_tensors.py first")
        d = np.load(path)
        models[model] = {
            k[: -len("/indices")]: Clustered(d[k], d[k[: -len("/indices")] + "/codebook"].astype(np.float64))
            for k in d.files if k.endswith("/indices")
        }
    return models


def codebook_bytes(c: Clustered) -> int:
    """The codebook's bytes at the width the record stores it (its values only)."""
    from weightless.io.clustered import _codebook_bytes

    return len(_codebook_bytes(np.asarray(c.codebook, dtype=np.float64))) - 1


def measure(models: dict[str, dict[str, Clustered]], repeats: int, with_nncodec: bool) -> dict:
    rows, wholes = [], []
    groups: dict[str, dict[str, np.ndarray]] = {}
    for model, tensors in models.items():
        for i, (name, c) in enumerate(tensors.items()):
            row = {"model": model, "tensor": name, "shape": list(c.shape), "k": int(np.asarray(c.codebook).size),
                   "nonzero": int((np.asarray(c.indices) >= 0).sum()), "codebook_bytes": codebook_bytes(c),
                   "weightless": ours(name, c, repeats), "deep_compression": dc_tensor_bytes(c.indices, c.codebook)}
            rows.append(row)
            for mapping in MAPPINGS:
                groups.setdefault(f"{model}|{mapping}", {})[f"t{i}"] = as_integers(c, mapping)
                groups[f"{model}|{name}|{mapping}"] = {"t0": as_integers(c, mapping)}
    nnc = run_nncodec(groups, repeats) if with_nncodec else {}
    for row in rows:
        cands = [dict(r, mapping=m) for m in MAPPINGS for r in nnc.get(f"{row['model']}|{row['tensor']}|{m}", [])]
        row["nncodec_variants"] = [{k: r.get(k) for k in ("mapping", "variant", "bytes", "exact", "error")} for r in cands]
        best = best_exact(cands)
        row["nncodec"] = None if best is None else {**best, "bytes_with_codebook": best["bytes"] + row["codebook_bytes"]}
        if best is not None:
            row["ratio"] = row["weightless"]["bytes"] / row["nncodec"]["bytes_with_codebook"]
            row["before_ratio"] = row["weightless"]["before_bytes"] / row["nncodec"]["bytes_with_codebook"]
            row["decode_speedup"] = best["decode_s"] / row["weightless"]["decode_s"]
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        cands = [dict(r, mapping=m) for m in MAPPINGS for r in nnc.get(f"{model}|{m}", [])]
        best = best_exact(cands)
        whole = {"model": model, "tensors": len(mine), "weightless_bytes": sum(r["weightless"]["bytes"] for r in mine),
                 "before_bytes": sum(r["weightless"]["before_bytes"] for r in mine),
                 "codebook_bytes": sum(r["codebook_bytes"] for r in mine),
                 "weightless_encode_s": sum(r["weightless"]["encode_s"] for r in mine),
                 "deep_compression_bytes": sum(r["deep_compression"]["bytes"] for r in mine), "nncodec": best}
        if best is not None:
            whole["nncodec_bytes_with_codebooks"] = best["bytes"] + whole["codebook_bytes"]
            whole["ratio"] = whole["weightless_bytes"] / whole["nncodec_bytes_with_codebooks"]
            whole["before_ratio"] = whole["before_bytes"] / whole["nncodec_bytes_with_codebooks"]
        wholes.append(whole)
    return {"tensors": rows, "models": wholes}


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [
        "# Lossless records vs NNCodec (MPEG NNR) and Deep Compression",
        "",
        f"`benchmarks/bench_lossless.py`, {env['date']}; NNCodec {env['nncodec'] or 'NOT INSTALLED (make nncodec)'}; "
        f"numpy {env['numpy']}, Python {env['python']}, {env['machine']}. Decode times: best of {env['repeats']}, "
        "bytes -> array, both sides through their Python APIs, same machine and run.",
        "",
        "Bytes: weightless = the record's payload (codebook included); NNCodec = its smallest bit-exact stream over "
        f"{len(MAPPINGS)} index mappings x {len(VARIANTS)} encoder variants, plus the same codebook bytes. "
        "`before` = the record as written before this work (positions and symbols models 0-2 only).",
        "",
        f"Targets: tensor <= {TARGET_TENSOR}x NNCodec, whole model <= {TARGET_MODEL}x, LeNet5 FC-0 decode >= "
        f"{TARGET_DECODE}x faster.",
        "",
        "| model | tensor | shape | nonzero | k | weightless B | before B | NNCodec B (+codebook) | ratio | before ratio "
        "| Deep Compression B | decode ms (wl / NNCodec) | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["tensors"]:
        w, n = r["weightless"], r["nncodec"]
        nn = "n/a" if n is None else f"{n['bytes_with_codebook']:,} ({n['mapping']}, {json.dumps(n['variant'])})"
        ratio = "n/a" if n is None else f"{r['ratio']:.3f}{'' if r['ratio'] <= TARGET_TENSOR else ' (missed)'}"
        lines.append(
            f"| {r['model']} | {r['tensor']} | {'x'.join(map(str, r['shape']))} | {r['nonzero']:,} | {r['k']} "
            f"| {w['bytes']:,} | {w['before_bytes']:,} | {nn} | {ratio} | "
            f"{'n/a' if n is None else format(r['before_ratio'], '.3f')} | {r['deep_compression']['bytes']:,} | "
            f"{1e3 * w['decode_s']:.2f} / {'n/a' if n is None else format(1e3 * n['decode_s'], '.2f')} | "
            f"{'n/a' if n is None else format(r['decode_speedup'], '.2f') + 'x'} |")
    lines += ["", "| model | weightless B | before B | NNCodec one stream B (+codebooks) | ratio | before ratio "
              "| Deep Compression B | weightless encode s |", "|---|---|---|---|---|---|---|---|"]
    for m in res["models"]:
        n = m["nncodec"]
        lines.append(
            f"| {m['model']} | {m['weightless_bytes']:,} | {m['before_bytes']:,} | "
            f"{'n/a' if n is None else format(m['nncodec_bytes_with_codebooks'], ',')} | "
            f"{'n/a' if n is None else format(m['ratio'], '.3f') + ('' if m['ratio'] <= TARGET_MODEL else ' (missed)')} | "
            f"{'n/a' if n is None else format(m['before_ratio'], '.3f')} | {m['deep_compression_bytes']:,} | "
            f"{m['weightless_encode_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tensors", default=str(ROOT / "runs" / "lossless"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "bench_lossless"))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--only", choices=MODELS, action="append", help="these models only")
    ap.add_argument("--without-nncodec", action="store_true", help="measure weightless only (no reference)")
    args = ap.parse_args(argv)
    have = NNCODEC_PY.exists()
    if not have and not args.without_nncodec:
        print(f"NNCodec is not installed ({NNCODEC_PY} missing): run `make nncodec`, or pass --without-nncodec",
              file=sys.stderr)
        return 2
    models = load_models(Path(args.tensors), args.only)
    res = measure(models, args.repeats, have and not args.without_nncodec)
    res["environment"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
        "numpy": np.__version__, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "nncodec": nncodec_version() if have and not args.without_nncodec else None, "repeats": args.repeats,
        "mappings": list(MAPPINGS), "variants": list(VARIANTS),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    Path(args.out + ".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
