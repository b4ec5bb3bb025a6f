"""Run the paper's four Table 1 simplification recipes from scratch and time them.

For each model the dense network is trained from scratch once (timed) and each of its two
recipes (magnitude, DNS) simplifies a copy of it (timed). Prints a table; writes JSON and a
Markdown table (rewritten after every recipe, so partial results survive an interruption).

    .venv/bin/python benchmarks/run_recipes.py [--quick] [--threads N] [--only lenet5:dns]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from weightless_lab.data.mnist import load_mnist
from weightless_lab.apps.mnist import DENSE_TRAINING, PAPER_RECIPES, PAPER_TABLE1
from weightless.simplify import simplify
from weightless.simplify.io import save_simplified
from weightless.training import evaluate, set_threads
from weightless_lab.apps.checkpoint import checkpoint_path, train_dense

TARGET_DENSE = {"lenet300": 1.8, "lenet5": 0.9}


def _md(results: dict) -> str:
    lines = [
        "# Table 1 recipes (real MNIST test set, 10,000 images)",
        "",
        f"threads={results['threads']}, seed={results['seed']}, quick={results['quick']}, "
        f"torch {results['versions']['torch']}, numpy {results['versions']['numpy']}",
        "",
        "| model | pruning | layer | nonzero % (paper) | k (paper) | error % | paper error % | pruned-only error % | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["recipes"]:
        paper_err, paper_layers = PAPER_TABLE1[(r["model"], r["pruning"])]
        for i, (name, l) in enumerate(r["layers"].items()):
            pct, k = paper_layers[name]
            first = i == 0
            lines.append(
                f"| {r['model'] if first else ''} | {r['pruning'] if first else ''} | {l['paper_name']} ({name}) "
                f"| {l['nonzero_percent']:.3f} ({pct}) | {l['k']} ({k}) "
                f"| {r['test_error']:.2f} | {paper_err:.2f} | {r['pruned_test_error']:.2f} | "
                f"{r['seconds']['recipe_total']:.0f} |"
                if first
                else f"| | | {l['paper_name']} ({name}) | {l['nonzero_percent']:.3f} ({pct}) | {l['k']} ({k}) | | | | |"
            )
    lines += ["", "| model | dense error % | target % | dense training s |", "|---|---|---|---|"]
    for m, d in results["dense"].items():
        lines.append(f"| {m} | {d['test_error']:.2f} | {TARGET_DENSE[m]} | {d['seconds']:.0f} |")
    lines += [
        "",
        f"Total training + simplification time: {results['total_seconds']:.0f} s (budget 2400 s); "
        f"load average at start/end of the run: {results['loadavg_start']} / {results.get('loadavg_end')} "
        f"on {results['cpu_count']} cores.",
    ]
    return "\n".join(lines) + "\n"


def combine(base_path: Path, newer_path: Path, out: Path) -> int:
    """Merge two result files: every model in ``newer`` (dense + its recipes) replaces ``base``'s."""
    base = json.loads(base_path.read_text())
    newer = json.loads(newer_path.read_text())
    models = set(newer["dense"])
    res = dict(base)
    res["dense"] = {m: d for m, d in base["dense"].items() if m not in models}
    for d in res["dense"].values():
        d.setdefault("run", {k: base.get(k) for k in ("loadavg_start", "loadavg_end", "threads")})
    for m in models:
        res["dense"][m] = dict(newer["dense"][m])
        res["dense"][m].setdefault("run", {k: newer.get(k) for k in ("loadavg_start", "loadavg_end", "threads")})
    res["recipes"] = [r for r in base["recipes"] if r["model"] not in models] + [
        r for r in newer["recipes"] if r["model"] in models
    ]
    order = {key: i for i, key in enumerate(PAPER_RECIPES)}
    res["recipes"].sort(key=lambda r: order.get((r["model"], r["pruning"]), 99))
    res["total_seconds"] = round(
        sum(d["seconds"] for d in res["dense"].values()) + sum(r["seconds"]["recipe_total"] for r in res["recipes"]), 2
    )
    res["combined_from"] = [str(base_path), str(newer_path)]
    res["loadavg_end"] = newer.get("loadavg_end")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(_md(res))
    print(_md(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5k training / 5k test images, 1/8 of the epochs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=None, help="model:pruning (repeatable)")
    ap.add_argument("--out", default="results/paper/simplify.json")
    ap.add_argument("--save-dir", default="runs/simplified", help="simplified models (git-ignored)")
    ap.add_argument("--cache-dir", default="checkpoints", help="where the dense models are saved")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the entries of --out for models not re-run here (each model's dense training "
        "and recipes always come from one run)",
    )
    ap.add_argument(
        "--combine",
        nargs=2,
        metavar=("BASE", "NEWER"),
        help="no training: write --out from BASE with the models present in NEWER taken from NEWER",
    )
    args = ap.parse_args(argv)
    if args.combine:
        return combine(Path(args.combine[0]), Path(args.combine[1]), Path(args.out))

    threads = set_threads(args.threads)
    data = load_mnist()
    if args.quick:
        data = data.subset(5_000, 5_000)
    keys = list(PAPER_RECIPES)
    if args.only:
        keys = [tuple(o.split(":")) for o in args.only]  # type: ignore[misc]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "benchmark": "run_recipes",
        "quick": args.quick,
        "threads": threads,
        "seed": args.seed,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "dense": {},
        "recipes": [],
        "total_seconds": 0.0,
    }
    kept: dict = {"dense": {}, "recipes": []}
    rerun = {m for m, _ in keys}
    if args.merge and out.is_file():
        old = json.loads(out.read_text())
        kept["dense"] = {m: d for m, d in old.get("dense", {}).items() if m not in rerun}
        kept["recipes"] = [r for r in old.get("recipes", []) if r["model"] not in rerun]
        for m in kept["dense"]:
            kept["dense"][m].setdefault("run", {k: old.get(k) for k in ("loadavg_start", "loadavg_end", "threads")})
    t_all = time.perf_counter()
    models: dict = {}

    def flush() -> None:
        results["dense"] = {**kept["dense"], **{m: d for m, d in results["dense"].items() if m in rerun}}
        results["recipes"] = kept["recipes"] + [r for r in results["recipes"] if r["model"] in rerun]
        # total = dense training + every recipe (per model: dense once, then its recipes)
        results["total_seconds"] = round(
            sum(d["seconds"] for d in results["dense"].values())
            + sum(r["seconds"]["recipe_total"] for r in results["recipes"]),
            2,
        )
        results["wall_seconds_this_run"] = round(time.perf_counter() - t_all, 2)
        results["loadavg_end"] = list(os.getloadavg())
        out.write_text(json.dumps(results, indent=2) + "\n")
        out.with_suffix(".md").write_text(_md(results))

    for model_name, pruning in keys:
        if model_name not in models:
            cfg = replace(DENSE_TRAINING[model_name], seed=args.seed, progress=args.progress, desc=f"dense {model_name}")
            if args.quick:
                cfg = replace(cfg, epochs=max(1.0, cfg.epochs / 8))
            model, secs, _ = train_dense(model_name, data, cfg, seed=args.seed, cache_dir=None)
            # keep the freshly trained model in the cache for the CLI / pipeline
            if not args.quick:
                from safetensors.torch import save_file

                path = checkpoint_path(args.cache_dir, model_name, args.seed, cfg, len(data.train))
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
            err = evaluate(model, data.test)
            models[model_name] = model
            results["dense"][model_name] = {"test_error": err, "val_error": evaluate(model, data.val), "seconds": round(secs, 2)}
            print(f"dense {model_name}: test error {err:.2f}% in {secs:.0f}s", file=sys.stderr, flush=True)
            flush()
        recipe = replace(PAPER_RECIPES[(model_name, pruning)], seed=args.seed)
        if args.quick:
            recipe = recipe.scaled(1 / 8)
        t0 = time.perf_counter()
        res = simplify(models[model_name], data, recipe, progress=args.progress)
        secs = time.perf_counter() - t0
        summary = res.summary()
        summary["seconds"]["recipe_total"] = round(secs, 2)
        summary["seconds"]["with_dense_training"] = round(secs + results["dense"][model_name]["seconds"], 2)
        paper_err, paper_layers = PAPER_TABLE1[(model_name, pruning)]
        summary["paper"] = {"error": paper_err, "layers": {n: {"nonzero_percent": p, "k": k} for n, (p, k) in paper_layers.items()}}
        summary["meets_paper_error"] = res.test_error <= paper_err
        results["recipes"].append(summary)
        if args.save_dir and not args.quick:
            save_simplified(res, Path(args.save_dir) / f"{model_name}-{pruning}")
        nz = ", ".join(f"{l['paper_name']} {l['nonzero_percent']:.2f}% k={l['k']}" for l in summary["layers"].values())
        print(
            f"{model_name} {pruning}: error {res.test_error:.2f}% (paper {paper_err}) [{nz}] in {secs:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        flush()
    flush()
    print(_md(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
