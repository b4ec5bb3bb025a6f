"""The README's results section, generated from the JSON results (never typed by hand).

:func:`readme_results` returns Markdown: run date and machine, the headline figures next to
the paper's, the layers that miss the paper's figures with their sparsity, k and t against the
paper's (the closing note), then every experiment's tables.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from weightless._atomic import write_atomic

from .. import paper as P
from .common import OPT_IN, fmt_factor, read_result

__all__ = ["headline", "readme_results", "write_readme_results"]

_ORDER = ("table123", "figure2", "figure4", "frontier", "vgg_scale", "vgg", "decode_times")


def headline(table: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a ``table123`` result, per construction: the largest per-layer
    compression factor after entropy coding, and the largest improvement over Deep Compression
    before and after entropy coding (with the layer each comes from)."""
    out: dict[str, Any] = {}
    for e in table["recipes"]:
        for con, c in e["constructions"].items():
            h = out.setdefault(con, {"max_compression": (0.0, ""), "max_improvement_entropy": (0.0, ""),
                                     "max_improvement_raw": (0.0, ""), "iso_accuracy": []})
            if "error" in c:
                continue
            h["iso_accuracy"].append((f"{e['model']}/{e['pruning']}", c.get("iso_accuracy")))
            for r in c.get("layers", []):
                where = f"{e['model']} {e['pruning']} {r['paper_name']}"
                for key, val in (("max_compression", r["factor"]["weightless_entropy"]),
                                 ("max_improvement_entropy", r["improvement_entropy"]),
                                 ("max_improvement_raw", r["improvement_raw"])):
                    if val > h[key][0]:
                        h[key] = (val, where)
    return out


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _demote(md: str) -> str:
    return "\n".join(("#" + line) if line.startswith("#") else line for line in md.splitlines())


def readme_results(out_dir: str | os.PathLike, total_seconds: float | None = None) -> str:
    """Return the results section (Markdown) built from the JSON files in ``out_dir``."""
    results = {n: read_result(out_dir, n) for n in _ORDER}
    present = {n: r for n, r in results.items() if r is not None}
    lines = ["## Results", ""]
    if not present:
        return "\n".join(lines + ["No results found.", ""])
    env = next(iter(present.values()))["env"]
    secs = sum(r.get("seconds", 0) for n, r in present.items() if n not in OPT_IN)
    quick = env["config"]["quick"]
    lines += [
        f"From `weightless reproduce {'--quick' if quick else '--full'}` run on {env['date_utc'][:10]} on "
        f"{env['machine']['cpu']} ({env['machine']['logical_cpus']} logical CPUs, shared with other jobs"
        f"{', torch CPU capability ' + str(env['machine'].get('torch_cpu_capability')) if env['machine'].get('torch_cpu_capability') else ''}), "
        f"weightless {env['versions']['weightless']} (commit {str(env['git']['commit'])[:10]}), "
        f"torch {env['versions']['torch']}, seed {env['seed']}. Measured run time of the experiments "
        f"that `--full` runs (opt-in ones such as the frontier, run with `--only`, not counted): "
        f"{secs / 60:.1f} min"
        + (f" ({total_seconds / 60:.1f} min wall clock for this invocation)" if total_seconds else "") + ".",
        "",
    ]
    if quick:
        lines += ["**QUICK smoke run: MNIST subsets and very few epochs; the figures are not meaningful.**", ""]
    t = present.get("table123")
    if t:
        lines += ["### Headline figures (ours vs the paper)", "",
                  "| figure | paper | " + " | ".join(f"ours ({c} construction)" for c in headline(t)) + " |",
                  "|---|---|" + "---|" * len(headline(t))]
        h = headline(t)
        for key, label, pv in (
            ("max_compression", "largest per-layer compression after entropy coding", f"{P.HEADLINE['max_compression']:.0f}x (LeNet5 DNS FC-0)"),
            ("max_improvement_entropy", "largest improvement over Deep Compression after entropy coding", f"{P.HEADLINE['max_improvement_entropy']}x (LeNet-300-100 DNS FC-1)"),
            ("max_improvement_raw", "largest improvement over CSR before entropy coding", f"{P.HEADLINE['max_improvement_raw']}x (LeNet5 DNS FC-0)"),
        ):
            lines.append(f"| {label} | {pv} | " + " | ".join(
                f"{fmt_factor(v[key][0])} ({v[key][1]})" for v in h.values()) + " |")
        lines.append("| iso-accuracy (decoded test error <= simplified) | all | " + " | ".join(
            ", ".join(f"{n}: {'yes' if ok else 'NO'}" for n, ok in v["iso_accuracy"]) for v in h.values()) + " |")
        lines.append("")
        misses = []
        for e in t["recipes"]:
            for con, c in e["constructions"].items():
                for r in c.get("layers", []):
                    p = r["paper"]
                    if (r["factor"]["weightless_entropy"] < p["weightless_entropy_factor"]
                            or r["improvement_entropy"] < p["improvement_entropy"]
                            or r["factor"]["weightless_raw"] < p["weightless_raw_factor"]
                            or r["improvement_raw"] < p["improvement_raw"]):
                        misses.append(
                            f"- {e['model']} {e['pruning']} {r['paper_name']} ({con}): entropy-coded "
                            f"{fmt_factor(r['factor']['weightless_entropy'])} vs paper {fmt_factor(p['weightless_entropy_factor'])}, "
                            f"improvement {r['improvement_entropy']:.2f}x vs {p['improvement_entropy']:.2f}x "
                            f"(raw {fmt_factor(r['factor']['weightless_raw'])} vs {fmt_factor(p['weightless_raw_factor'])}, "
                            f"{r['improvement_raw']:.2f}x vs {p['improvement_raw']:.2f}x); nonzero "
                            f"{r['nonzero_percent']:.2f}% vs {p['nonzero_percent']}%, k {r['k']} vs {p['k']}, "
                            f"t {r['t']} vs {p['t']}, m/n {r['m_over_n']:.3f}; Deep Compression here "
                            f"{fmt_factor(dense_over(r, 'csr_huffman'))} / best width {fmt_factor(dense_over(r, 'csr_huffman_best'))} "
                            f"vs paper {fmt_factor(p['csr_huffman_factor'])}"
                        )
        shapes = []
        for e in t["recipes"]:
            for l in e["simplified_layers"].values():
                pl = P.TABLE1[(e["model"], e["pruning"])]["layers"].get(l["paper_name"], {})
                ours_kb = 4 * _prod(l["shape"]) / P.KB
                if pl and abs(ours_kb - pl["size_kb"]) > 0.05 * pl["size_kb"]:
                    shapes.append(f"{e['model']} {e['pruning']} {l['paper_name']}: ours {ours_kb:.0f} KB dense "
                                  f"({'x'.join(map(str, l['shape']))}), paper {pl['size_kb']} KB")
        if shapes:
            lines += ["### Layers whose dense size differs from the paper's", "",
                      "Compare compression factors, not KB, for these (the paper's model had other layer shapes):", ""]
            lines += [f"- {x}" for x in shapes] + [""]
        if misses:
            lines += ["### Where a figure falls short of the paper's", "",
                      "Layers where a Weightless factor or improvement is below the paper's, with what "
                      "differs (sparsity reached, k, t, and how strong our Deep Compression baseline is):", ""]
            lines += misses + [""]
    for n in _ORDER:
        r = present.get(n)
        if r is None:
            continue
        mod = importlib.import_module(f"{__package__}.{n}")
        lines += [_demote(_demote(mod.markdown(r))), ""]
    return "\n".join(lines)


def dense_over(row: dict[str, Any], key: str) -> float:
    """Compression factor of format ``key`` in a table row."""
    return row["bytes"]["dense"] / row["bytes"][key]


def write_readme_results(out_dir: str | os.PathLike, total_seconds: float | None = None) -> Path:
    """Write ``<out_dir>/README_results.md`` (atomically) from the JSON results; return its path."""
    path = Path(out_dir) / "README_results.md"
    write_atomic(path, readme_results(out_dir, total_seconds))
    return path
