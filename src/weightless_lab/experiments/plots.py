"""Figures 2 and 4, drawn only from the JSON results (``figure2.json``, ``figure4.json``).

Uses matplotlib's non-interactive Agg backend; each PNG is written to a temp file and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from weightless._atomic import atomic_target
from weightless.errors import InputError
from .common import read_result

__all__ = ["plot_figure2", "plot_figure4", "plot_frontier", "plot_all"]


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as (tmp, _):
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def _finish(plt: Any, fig: Any, path: str | os.PathLike) -> Path:
    """Lay out, write (atomically) and close ``fig``; return the PNG path."""
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_figure2(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw Figure 2 (false positives on a log axis, test accuracy before/after retraining vs t)
    from a ``figure2`` result; return the PNG path.

    Raises:
        InputError: the result has no usable points.
    """
    pts = [p for p in result.get("points", []) if "skipped" not in p]
    if not pts:
        raise InputError("figure2 result has no points to plot")
    plt = _plt()
    ts = [p["t"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(ts, [max(p["false_positives"], 0.5) for p in pts], "o-", color="tab:red", label="false positives")
    ax.set_xlabel("t (bits per cell)")
    ax.set_ylabel("false positives", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(ts, [p["test_accuracy_before_retraining"] for p in pts], "s--", color="tab:blue", label="before retraining")
    ax2.plot(ts, [p["test_accuracy_after_retraining"] for p in pts], "s-", color="tab:blue", label="after retraining")
    ax2.axhline(result["simplified_test_accuracy"], color="gray", lw=0.8, ls=":", label="simplified model")
    ax2.set_ylabel("test accuracy %", color="tab:blue")
    lo = min(min(p["test_accuracy_before_retraining"] for p in pts), result["simplified_test_accuracy"])
    ax2.set_ylim(max(0.0, lo - 1.0), 100.0)
    ax2.legend(loc="center right", fontsize=8)
    ax.set_title(f"LeNet-300-100 {result['paper_layer']}: false positives and accuracy vs t")
    return _finish(plt, fig, path)


def plot_figure4(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw Figure 4 (compression factor vs nonzero %, Weightless per construction vs Deep
    Compression) from a ``figure4`` result; return the PNG path.

    Raises:
        InputError: the result has no points.
    """
    pts = result.get("points", [])
    if not pts:
        raise InputError("figure4 result has no points to plot")
    plt = _plt()
    xs = [100 * p["nonzero_fraction"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p["deep_compression_factor"] for p in pts], "o-", color="tab:gray", label="Deep Compression (CSR + Huffman)")
    colors = {"paper": "tab:red", "compact": "tab:green"}
    for con in pts[0]["weightless"]:
        ok = [(x, p["weightless"][con]) for x, p in zip(xs, pts) if "error" not in p["weightless"].get(con, {"error": 1})]
        if ok:
            ax.plot([x for x, _ in ok], [w["factor_entropy"] for _, w in ok], "s-", color=colors.get(con),
                    label=f"Weightless ({con} construction)")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("nonzero weights (%)")
    ax.set_ylabel("compression factor (vs float32)")
    ax.set_title("LeNet5 FC-0: compression vs sparsity (iso-accuracy)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _finish(plt, fig, path)


def plot_frontier(model: dict[str, Any], path: str | os.PathLike, note: str | None = None) -> Path:
    """Draw one model's frontier (test error against FC-0 bytes and whole-file bytes: the two
    lossless curves over the sparsity sweep, Weightless at each sparsity with t swept) from an
    entry of a ``frontier`` result's ``models``, with ``note`` under the plots; return the PNG path.

    Raises:
        InputError: the entry has no points.
    """
    pts = model.get("points", [])
    if not pts:
        raise InputError("frontier result has no points to plot")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("viridis")
    for ax, (scope, wl, dc) in zip(axes, (("FC-0 record", "layer_bytes", "dc_layer_bytes"),
                                          ("whole file", "file_bytes", "dc_whole_bytes"))):
        lossless = sorted(pts, key=lambda p: p["t"][0][wl])
        ax.plot([p["t"][0][dc] for p in lossless], [p["t"][0]["test_error"] for p in lossless], "o--", color="tab:gray",
                label="Deep Compression (prune harder, CSR + Huffman)")
        ax.plot([p["t"][0][wl] for p in lossless], [p["t"][0]["test_error"] for p in lossless], "o-", color="black",
                label="best lossless record (prune harder)")
        for i, p in enumerate(pts):
            qs = p["t"][1:]
            c = cmap(i / max(1, len(pts) - 1))
            ax.plot([q[wl] for q in qs], [q["test_error"] for q in qs], "s-", color=c, ms=4, lw=1,
                    label=f"Weightless at {100 * p['nonzero_fraction']:.2g}% (t {qs[0]['t']}..{qs[-1]['t']})")
            auto = [q for q in qs if q["t"] == p.get("auto_t")]
            if auto:
                ax.plot([auto[0][wl]], [auto[0]["test_error"]], "*", color=c, ms=12, mec="black")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap
        ax.set_xlabel(f"{scope} bytes (log)")
        ax.set_ylabel("test error % (decoded file)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{model['model']}: {scope}")
    lo = min(min(q["test_error"] for q in p["t"]) for p in pts)
    hi = max(p["t"][0]["test_error"] for p in pts)
    for ax in axes:
        ax.set_ylim(max(0.0, lo - 0.2), hi + max(0.5, 0.5 * (hi - lo)))
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("Lossy (Weightless, star = automatic t) vs pruning harder and coding losslessly", fontsize=10)
    if note:
        fig.text(0.01, 0.0, note, fontsize=7.5, va="top", ha="left")
    return _finish(plt, fig, path)


def plot_all(out_dir: str | os.PathLike) -> list[Path]:
    """Draw every figure whose JSON exists in ``out_dir``; return the PNG paths written."""
    written = []
    for name, fn in (("figure2", plot_figure2), ("figure4", plot_figure4)):
        res = read_result(out_dir, name)
        if res is not None:
            written.append(fn(res, Path(out_dir) / f"{name}.png"))
    res = read_result(out_dir, "frontier")
    for m in (res or {}).get("models", []):
        written.append(plot_frontier(m, Path(out_dir) / f"frontier_{m['model']}.png"))
    res = read_result(out_dir, "vgg")
    if res is not None:
        from .vgg import verdict

        note = "\n".join(line[2:] for line in verdict(res))
        written.append(plot_frontier(res["frontier"], Path(out_dir) / "vgg_frontier.png", note))
    return written
