"""``weightless simplify``: train (or load a cached) dense model, simplify it, print JSON.

Example::

    weightless simplify --model lenet300 --pruning dns --out runs/lenet300-dns
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``simplify`` sub-command."""
    p = subparsers.add_parser(
        "simplify",
        help="train + prune + cluster a LeNet on MNIST with a Table 1 recipe",
        description="Train (or load a cached) dense model, then prune (magnitude or DNS) and "
        "cluster it with the paper's Table 1 recipe; print a JSON summary on stdout.",
    )
    p.add_argument("--model", choices=("lenet300", "lenet5"), required=True)
    p.add_argument("--pruning", choices=("magnitude", "dns"), required=True)
    p.add_argument("--quick", action="store_true", help="smoke run: 5k training / 5k test images, ~1/8 of the epochs")
    p.add_argument("--out", default=None, help="folder for model.safetensors, layers.npz, summary.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: WEIGHTLESS_THREADS, else the usable cores up to 2)")
    p.add_argument("--cache-dir", default="checkpoints", help="dense checkpoint cache (default ./checkpoints)")
    p.add_argument("--no-cache", action="store_true", help="always train the dense model from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless simplify``; return the exit code."""
    from ..data.mnist import load_mnist
    from weightless.errors import InputError
    from ..apps.mnist import DENSE_TRAINING, PAPER_RECIPES, PAPER_TABLE1
    from weightless.simplify import simplify
    from weightless.simplify.io import save_simplified
    from weightless.training import evaluate, set_threads
    from ..apps.checkpoint import train_dense

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    set_threads(args.threads)
    progress = not args.no_progress
    data = load_mnist()
    dense_cfg = replace(DENSE_TRAINING[args.model], seed=args.seed, progress=progress, desc="dense")
    recipe = replace(PAPER_RECIPES[(args.model, args.pruning)], seed=args.seed)
    if args.quick:
        data = data.subset(5_000, 5_000)
        dense_cfg = replace(dense_cfg, epochs=max(1.0, dense_cfg.epochs / 8))
        recipe = recipe.scaled(1 / 8)
    t0 = time.perf_counter()
    model, dense_seconds, cached = train_dense(
        args.model, data, dense_cfg, seed=args.seed, cache_dir=None if args.no_cache else args.cache_dir
    )
    print(
        f"dense {args.model}: test error {evaluate(model, data.test):.2f}% "
        f"({'cached' if cached else f'trained in {dense_seconds:.1f}s'})",
        file=sys.stderr,
    )
    result = simplify(model, data, recipe, progress=progress)
    summary = result.summary()
    summary["seconds"]["dense"] = round(dense_seconds, 2)
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 2)
    summary["dense_from_cache"] = cached
    summary["quick"] = bool(args.quick)
    summary["paper_error"] = PAPER_TABLE1[(args.model, args.pruning)][0]
    if args.out:
        paths = save_simplified(result, args.out)
        summary["files"] = {k: str(v) for k, v in paths.items()}
    for layer in summary["layers"].values():
        layer.pop("codebook", None)
    print(json.dumps(summary, indent=2))
    return 0
