"""``weightless reproduce``: regenerate the paper's Tables 1-3, Figures 2 and 4, the VGG-16
scale layers, the decode times, and (opt-in) the frontiers and the VGG-16 experiment with accuracy.

Examples::

    weightless reproduce --quick                 # smoke run, minutes, into results/quick
    weightless reproduce --full                  # the real thing, into results/paper
    weightless reproduce --full --only figure2   # one experiment
    weightless reproduce --full --only frontier  # the opt-in rate-accuracy frontier (~17 min)
    weightless reproduce --full --only vgg       # opt-in: the paper's VGG-16 rows on a VGG-style
                                                 # network trained on Fashion-MNIST (~35 min)

Writes ``<out>/<experiment>.json`` (with versions, git commit, machine, seeds) and ``.md``,
``figure2.png`` / ``figure4.png`` drawn from the JSON, and ``README_results.md``. Progress and
time estimates go to stderr; a JSON summary (with the measured time) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

from weightless.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` sub-command."""
    from ..experiments.runner import EXPERIMENTS, OPT_IN

    p = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables and figures (JSON + Markdown + PNG)",
        description="Run the paper's experiments and write results/paper/<experiment>.json and .md, "
        "figures drawn from the JSON, and README_results.md. --quick is a smoke run on MNIST "
        "subsets with tiny sweeps; --full is the real run (dense models come from the checkpoint "
        "cache when there).",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run (minutes): subsets, few epochs, tiny sweeps")
    mode.add_argument("--full", action="store_true", help="the full reproduction (default)")
    p.add_argument("--only", action="append", choices=EXPERIMENTS, metavar="NAME",
                   help=f"run only this experiment (repeatable): {', '.join(EXPERIMENTS)}; by default all but "
                   f"{', '.join(OPT_IN)} (opt-in: run it with --only)")
    p.add_argument("--recipe", action="append", metavar="MODEL:PRUNING",
                   help="Tables 1-3 / decode times on these settings only (repeatable), e.g. lenet300:magnitude")
    p.add_argument("--out", default=None, help="output folder (default results/quick with --quick, else results/paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: WEIGHTLESS_THREADS, else the usable cores up to 2)")
    p.add_argument("--cache-dir", default="checkpoints", help="dense and simplified model cache (default ./checkpoints)")
    p.add_argument("--no-cache", action="store_true", help="train and simplify from scratch, save nothing")
    p.add_argument("--simplify-scale", type=float, default=None,
                   help="factor on the recipes' simplification epochs (default 0.5 full, 0.125 quick)")
    p.add_argument("--retrain-epochs", type=float, default=None,
                   help="retraining epochs after each encoded layer (default 2.0 full, 0.1 quick)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="allowed validation-error increase (percentage points) when choosing t (default 0.05 full)")
    p.add_argument("--val-images", type=int, default=None,
                   help="validation images used to choose t (default all; 0 = all)")
    p.add_argument("--no-progress", action="store_true", help="no training progress bars")
    p.add_argument("--render-only", action="store_true",
                   help="run nothing: redraw the figures and README_results.md from the JSON in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the reproduction; return the exit code."""
    from ..apps.encode_options import override_encode
    from ..experiments.common import RECIPES, ReproConfig
    from ..experiments.runner import reproduce
    from weightless.training import set_threads

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    set_threads(args.threads)
    over: dict[str, Any] = {"seed": args.seed, "progress": not args.no_progress,
                            "cache_dir": None if args.no_cache else args.cache_dir}
    if args.simplify_scale is not None:
        over["simplify_scale"] = args.simplify_scale
    if args.val_images is not None:
        over["val_images"] = None if args.val_images == 0 else args.val_images
    if args.recipe:
        recipes = []
        for r in args.recipe:
            model, sep, pruning = r.partition(":")
            if not sep or (model, pruning) not in RECIPES:
                known = ", ".join(f"{m}:{p}" for m, p in RECIPES)
                raise InputError(f"--recipe expects one of {known}, got {r!r}")
            recipes.append((model, pruning))
        over["recipes"] = tuple(dict.fromkeys(recipes))
    cfg = ReproConfig.for_mode(args.quick, **over)
    cfg = replace(cfg, encode=override_encode(cfg.encode, retrain_epochs=args.retrain_epochs, tolerance=args.tolerance))
    cfg.validate()
    out = args.out or ("results/quick" if args.quick else "results/paper")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    if args.render_only:
        from ..experiments.plots import plot_all
        from ..experiments.readme import write_readme_results

        figures = [str(p) for p in plot_all(out)]
        readme = write_readme_results(out)
        print(json.dumps({"out": out, "figures": figures, "readme": str(readme)}, indent=1))
        return 0
    log(f"reproduce {'--quick' if args.quick else '--full'} into {out}: {', '.join(args.only or ['all experiments'])}")
    summary = reproduce(cfg, out, args.only, log)
    log(f"done in {summary['seconds']:.0f} s ({summary['seconds'] / 60:.1f} min); results in {out}")
    print(json.dumps(summary, indent=1))
    return 0
