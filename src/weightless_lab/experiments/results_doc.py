"""docs/RESULTS.md, generated from the committed result files under ``results/`` (never typed by hand).

    python -m weightless_lab.experiments.results_doc [--results results] [--out docs/RESULTS.md]

Sections: whole-model files of ``weightless compress`` (``results/compress/``), the codec's
benchmarks (``results/bench/``), then the paper's tables and figures (``results/paper/``,
rendered by :func:`weightless_lab.experiments.readme.readme_results`, the same text as
``weightless reproduce --render-only``). Reads JSON and Markdown only: no training, no torch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from weightless._atomic import write_atomic

from .readme import readme_results

__all__ = ["results_doc", "write_results_doc", "main"]

COMMAND = "python -m weightless_lab.experiments.results_doc"


def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _demote(md: str, levels: int = 1) -> str:
    """Headings one level (or ``levels``) deeper, and no issue numbers in them."""
    out = []
    for line in md.splitlines():
        if line.startswith("#"):
            line = "#" * levels + re.sub(r"\s*\(issues? [0-9, ]+\)", "", line)
        out.append(line)
    return "\n".join(out)


def _ci(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return f"{d['difference']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}]"


def _link(path: Path, out: Path) -> str:
    """``[name](relative path)`` from the folder of ``out``."""
    return f"[{path.name}]({os.path.relpath(path, out.parent).replace(os.sep, '/')})"


def _compress_section(folder: Path, out: Path) -> list[str]:
    files = sorted(folder.glob("compress_*.json"))
    if not files:
        return []
    lines = [
        "## Whole-model files (`weightless compress`)", "",
        "Each row is one `weightless compress --model M --pruning P --json` report: the whole `.wl` file "
        "(every tensor, container included) against the float32 model, the test error of the model decoded "
        "from the file against the simplified model (paired difference, 95% CI, on the 10,000 MNIST test "
        "images), which layers are Bloomier filters (t) and which are stored lossless (t 0), and Deep "
        "Compression (CSR + Huffman) of the same simplification. The reference of these runs is the "
        "simplified model.", "",
        "| report | file bytes | x float32 | overhead | test err % (simplified) | decoded - simplified, pp [95% CI] "
        "| layers: t, bytes (lossless record) | Deep Compression bytes | DC test err % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in files:
        r = _load(f)
        w = r.get("whole_model", {})
        layers = "; ".join(
            f"{l.get('paper_name', l['name'])} t {l['t']}, {l['weightless_bytes']:,} ({l['lossless_bytes']:,})"
            for l in r.get("layers", []))
        lines.append(
            f"| {_link(f, out)} "
            f"| {r['file_bytes']:,} | {r['model_compression_factor']:.1f}x "
            f"| {w.get('overhead_bytes', '-')} B | {r['decoded_test_error']:.2f} ({r['simplified_test_error']:.2f}) "
            f"| {_ci(r.get('decoded_vs_simplified_test'))} | {layers} | {w.get('dc_bytes', 0):,} "
            f"| {w.get('dc_test_error', float('nan')):.2f} |")
    lines.append("")
    own = sorted(folder.glob("own_model_*.json"))
    if own:
        lines += [
            "### Your own model (`examples/own_model.py`, Fashion-MNIST CNN)", "",
            "| report | file bytes | x state dict | dense test err % | test err % from the file "
            "| budget pp | spent on validation, pp | within budget | t per layer |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for f in own:
            r = _load(f)
            b = r.get("budget", {})
            ratio = r.get("ratio", r.get("model_compression_factor"))
            err = r.get("test_error_from_file", r.get("decoded_test_error"))
            ts = r.get("t") or {l["name"]: l["t"] for l in r.get("layers", [])}
            lines.append(
                f"| {_link(f, out)} | {r['file_bytes']:,} "
                f"| {ratio:.1f}x | {r['dense_test_error']:.2f} | {err:.2f} "
                f"| {b.get('max_error_increase', '-')} | {b.get('spent_total', float('nan')):+.2f} "
                f"| {'yes' if b.get('within_budget') else 'NO'} | {', '.join(f'{k} {v}' for k, v in ts.items())} |")
        lines.append("")
    return lines


def _constructions_table(path: Path) -> list[str]:
    r = _load(path)
    lines = [
        "### Filter constructions (`benchmarks/bench_constructions.py`)", "",
        f"Cells per key (m/n) and speed of each construction at t = {r.get('t')}, random keys; "
        f"{r.get('cpus')} CPUs, numba threads {r.get('numba_threads')}.", "",
        "| construction | keys n | k | m/n | file bytes / n | build keys/s | decode positions/s | false-positive rate (expected) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r.get("rows", []):
        lines.append(
            f"| {row['construction']} | {row['n']:,} | {row['k']} | {row['ratio']:.3f} | {row['bytes_ratio']:.3f} "
            f"| {row['build_keys_per_s'] / 1e6:.2f}M | {row['decode_pos_per_s'] / 1e6:.0f}M "
            f"| {row['fp_rate']:.4f} ({row['fp_expected']:.4f}) |")
    return lines + [""]


def _included(path: Path, out: Path, levels: int = 2) -> list[str]:
    """A Markdown result file as it is, its headings ``levels`` deeper, the first one naming the file."""
    if not path.exists():
        return []
    md = _demote(path.read_text(encoding="utf-8").strip(), levels).split("\n", 1)
    head = md[0] + f" ({_link(path, out)})" if md[0].startswith("#") else md[0]
    return [head + ("\n" + md[1] if len(md) > 1 else ""), ""]


def _bench_section(folder: Path, out: Path) -> list[str]:
    if not folder.is_dir():
        return []
    lines = ["## Codec benchmarks (`benchmarks/`, `make bench`)", "",
             "Timings depend on the machine and on what else ran on it; each table says where it was measured.", ""]
    if (folder / "bench_constructions.json").exists():
        lines += _constructions_table(folder / "bench_constructions.json")
    names = ["bench_decode.md", "bench_decode_busy.md", "bench_lossless.md", "fuzz_files_numba.md", "fuzz_files_numpy.md"]
    for name in names + sorted(p.name for p in folder.glob("bench_compress*.md")):
        lines += _included(folder / name, out)
    if (folder / "bench_load.json").exists():
        r = _load(folder / "bench_load.json")
        lines += ["### Loading a file (`benchmarks/bench_load.py FILE.wl`)", "",
                  f"`{r['file']}` ({r['file_bytes']:,} bytes, {r['filters']} filters): `weightless.load` "
                  f"{1000 * r['load_s']:.1f} ms, {r['load_over_reconstruct']:.2f}x the filters' reconstruct alone.", ""]
    return lines


def _paper_section(folder: Path, root: Path, out: Path) -> list[str]:
    if not folder.is_dir():
        return []
    md = readme_results(folder)
    rel = os.path.relpath(folder, out.parent).replace(os.sep, "/")
    md = re.sub(r"(!\[[^\]]*\]\()([^)/]+\.png\))", lambda m: f"{m.group(1)}{rel}/{m.group(2)}", md)
    body = md.split("\n", 1)[1] if md.startswith("## Results") else md
    return ["## The paper's tables and figures (`weightless reproduce`)", "",
            f"Rendered from `{folder.relative_to(root).as_posix()}/*.json` as `weightless reproduce --render-only` does.",
            body.rstrip(), ""] + _included(folder / "simplify.md", out)


def _budget_section(folder: Path, out: Path) -> list[str]:
    """The accuracy-budget runs (``benchmarks/bench_compress.py --max-error-increase ...``): every
    Markdown table under results/budget, included as it is."""
    files = sorted(folder.glob("bench_compress*.md")) if folder.is_dir() else []
    if not files:
        return []
    lines = ["## Accuracy budgets and compress time (`benchmarks/bench_compress.py`)", ""]
    for f in files:
        lines += _included(f, out)
    return lines


def results_doc(results: str | os.PathLike = "results", out: str | os.PathLike = "docs/RESULTS.md") -> str:
    """Return docs/RESULTS.md (Markdown) from the result files under ``results``."""
    res, outp = Path(results).resolve(), Path(out).resolve()
    root = res.parent
    lines = [
        "# Measured results", "",
        f"<!-- GENERATED by `{COMMAND}` from the files under results/; do not edit by hand. -->", "",
        f"Generated from the committed result files under `results/`; regenerate with `{COMMAND}`. "
        "Each section names the command that produced its files. The README's short summary links here.", "",
        "Contents: [whole-model files](#whole-model-files-weightless-compress), "
        "[codec benchmarks](#codec-benchmarks-benchmarks-make-bench), "
        "[the paper's tables and figures](#the-papers-tables-and-figures-weightless-reproduce). "
        "Concluded studies (questions settled, with their verdicts) are in [studies/](../studies/README.md).", "",
    ]
    lines += _compress_section(res / "compress", outp)
    lines += _budget_section(res / "budget", outp)
    lines += _bench_section(res / "bench", outp)
    lines += _paper_section(res / "paper", root, outp)
    return "\n".join(lines).rstrip() + "\n"


def write_results_doc(results: str | os.PathLike = "results", out: str | os.PathLike = "docs/RESULTS.md") -> Path:
    """Write :func:`results_doc` to ``out``; return its path."""
    path = Path(out)
    write_atomic(path, results_doc(results, out))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="the results folder (default results)")
    p.add_argument("--out", default="docs/RESULTS.md", help="the Markdown file to write (default docs/RESULTS.md)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when --out differs from what would be written")
    args = p.parse_args(argv)
    if args.check:
        want = results_doc(args.results, args.out)
        have = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        if want != have:
            print(f"{args.out} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    print(write_results_doc(args.results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
