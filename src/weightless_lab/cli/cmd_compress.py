"""``weightless compress``: simplify, encode with retraining, write a ``.wl``.

Examples::

    weightless compress --model lenet300 --pruning magnitude -o lenet300.wl
    weightless compress --model-def mypkg.nets:make_cnn --weights cnn.pt --data fashion-mnist \
        --nonzero 0.1 --k 16 --max-error-increase 0.3 -o cnn.wl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from weightless.errors import InputError
from ._checks import output_file


def parse_t(values: list[str] | None) -> str | dict[str, int]:
    """``--t auto`` / ``--t paper`` / ``--t fc1.weight=8 --t fc2.weight=9``."""
    if not values:
        return "auto"
    if len(values) == 1 and values[0] in ("auto", "paper"):
        return values[0]
    out: dict[str, int] = {}
    for v in values:
        name, sep, num = v.partition("=")
        if not sep or not num.strip().isdigit():
            raise InputError(f"--t expects 'auto', 'paper' or LAYER=BITS (e.g. fc1.weight=8), got {v!r}")
        out[name.strip()] = int(num)
    return out


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared by compress-like commands."""
    p.add_argument("--model", choices=("lenet300", "lenet5"), default="lenet300",
                   help="a paper LeNet trained here on MNIST (ignored with --model-def)")
    p.add_argument("--pruning", choices=("magnitude", "dns"), default="magnitude")
    p.add_argument("--t", action="append", metavar="T", help="'auto' (default: smallest t whose validation "
                   "error difference is within the budget at 95%% confidence), 'paper' (Table 1), or LAYER=BITS, repeatable")
    p.add_argument("--tolerance", type=float, default=None,
                   help="instead of a budget: the allowed error increase over the simplified model, in pct points "
                   "(the paper's setting, as in `reproduce`)")
    p.add_argument("--max-error-increase", type=float, default=None, metavar="PP",
                   help="accuracy budget: pct points of error over the model as given, for the whole pipeline, "
                   "checked on validation data no decision used (default 0.5)")
    p.add_argument("--max-error", type=float, default=None, metavar="PCT",
                   help="accuracy budget as the final error in percent (e.g. 1.0)")
    p.add_argument("--allow-over-budget", action="store_true",
                   help="write the least lossy model, flagged, when none fits the budget (default: exit 3, no file)")
    p.add_argument("--retrain-epochs", type=float, default=None,
                   help="epochs of retraining after each encoded layer (default: EncodeConfig's; 0: none)")
    p.add_argument("--construction", choices=("auto", "paper", "compact"), default="auto",
                   help="filter construction: paper (m = 1.25 n, peeling), compact (ribbon, ~1.02 n), "
                   "auto (compact for layers up to 16M positions, paper above; default)")
    p.add_argument("--seed-trials", type=int, default=None,
                   help="filters built per layer and t; the one whose false positives cost the least loss on 5,000 "
                   "training images is kept (the loss ranks, it never accepts; default 4)")
    p.add_argument("--smaller-k", default=None, metavar="K,K,...|none",
                   help="last stage: every weight stored losslessly is clustered again to these fewer shared values, "
                   "largest first, kept while the model passes the budget's rule as it is (default 8,6,4,3,2; none: off)")
    p.add_argument("--harder", default=None, metavar="F,F,...|none",
                   help="before each layer's t search, cut its nonzeros to these fractions in turn (retrained), kept "
                   "while the rule accepts within the layer's share of the budget (default 0.71,0.5,0.35; none: off)")
    p.add_argument("--c", type=float, default=None, help="cells per key m/n (default: the construction's)")
    p.add_argument("--shards", type=int, default=None, help="filter tables per layer (default 1)")
    p.add_argument("--no-entropy", action="store_true", help="store raw bit-packed tables")
    p.add_argument("--dense-dtype", choices=("float32", "float16"), default="float32",
                   help="storage of the layers not encoded with a filter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: WEIGHTLESS_THREADS, else the usable cores up to 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: 10k training images, 1/8 of the epochs")
    p.add_argument("--cache-dir", default="checkpoints", help="dense checkpoint cache (default ./checkpoints)")
    p.add_argument("--no-progress", action="store_true")


def register(subparsers: Any) -> None:
    """Add the ``compress`` sub-command."""
    p = subparsers.add_parser(
        "compress",
        help="compress a model end to end into a .wl file (a paper LeNet, or your own)",
        description="Simplify a trained model (prune, cluster), encode its selected layers with\n"
        "Bloomier filters one by one with retraining, write a .wl file and report the test error\n"
        "of the model decoded from it. With --model, a paper LeNet is trained (or loaded from the\n"
        "cache) on MNIST and simplified with the paper's Table 1 recipe; with --model-def, your\n"
        "own model and data are used. Progress goes to stderr, the JSON report to stdout.",
        epilog="examples:\n"
        "  weightless compress --model lenet5 --pruning dns -o runs/lenet5.wl\n"
        "  weightless compress --model-def examples.own_model:make_cnn --weights cnn.pt \\\n"
        "      --data fashion-mnist --nonzero 0.1 --k 16 --min-size 1000 --max-error-increase 0.5 -o cnn.wl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p)
    g = p.add_argument_group("your own model (instead of --model)")
    g.add_argument("--model-def", default=None, metavar="MODULE:FACTORY",
                   help="import MODULE and call FACTORY() for the torch.nn.Module, e.g. mypkg.nets:make_cnn")
    g.add_argument("--weights", default=None, metavar="FILE", help="trained weights: .pt/.pth state_dict "
                   "(loaded with weights_only=True) or .safetensors")
    g.add_argument("--data", default="mnist", metavar="DATA",
                   help="mnist, fashion-mnist, or a .npz with x_train y_train x_val y_val [x_test y_test]")
    g.add_argument("--normalize", default="library", metavar="HOW", help="bundled images' normalisation: library (MNIST standardised, Fashion-MNIST in [0, 1]; default), none ([0, 1]), or MEAN,STD (your model's own, on [0, 1] pixels). A model that does not take flat 784-pixel rows gets (1, 28, 28) images")
    g.add_argument("--types", default=None, help="comma-separated module types whose weights are compressed "
                   "(default Linear,Conv1d,Conv2d,Conv3d)")
    g.add_argument("--pattern", default=None, help="glob on weight names, e.g. 'features.*.weight'")
    g.add_argument("--largest-share", type=float, default=None,
                   help="only the largest selected layers holding this share of their weights")
    g.add_argument("--min-size", type=int, default=None, help="leave layers with fewer weights dense (default 1)")
    g.add_argument("--nonzero", type=float, default=None, help="fraction of weights kept per layer (default 0.1)")
    g.add_argument("--k", type=int, default=None, help="shared values per layer (default 16)")
    p.add_argument("--compare-lossless", action="store_true",
                   help="with --model: also encode every layer lossless under the same rule and report what the "
                   "filters saved (file bytes, paired 95%% CI of the test error)")
    p.add_argument("-o", "--output", default=None, help="output .wl file (default runs/MODEL-PRUNING.wl)")
    p.add_argument("--json", default=None, help="also write the JSON report to this file")
    p.set_defaults(func=run)


def parse_k_list(text: str | None) -> tuple[int, ...] | None:
    """``--smaller-k``: None (not given), ``none`` -> (), else comma-separated integers >= 1.

    Raises:
        InputError: anything else.
    """
    ks = _parse_list(text, "--smaller-k", int, "integers")
    if ks is not None and not all(k >= 1 for k in ks):
        raise InputError(f"--smaller-k values must be >= 1, got {text!r}")
    return ks


def parse_fractions(text: str | None) -> tuple[float, ...] | None:
    """``--harder``: None (not given), ``none`` -> (), else comma-separated decreasing fractions
    in (0, 1).

    Raises:
        InputError: anything else.
    """
    from weightless.pipeline.config import FilterSearch

    fs = _parse_list(text, "--harder", float, "fractions")
    try:
        FilterSearch(harder=fs or ()).validate()  # the one check of the fractions
    except InputError:
        raise InputError(f"--harder must be decreasing fractions in (0, 1), got {text!r}") from None
    return fs


def _parse_list(text: str | None, flag: str, kind: Any, what: str) -> tuple[Any, ...] | None:
    """A comma-separated list of ``kind`` (None when not given, () for ``none``)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} must be comma-separated {what} or 'none', got {text!r}") from None


def options_from_args(args: argparse.Namespace) -> Any:
    """Build :class:`~weightless_lab.apps.run.RunOptions` from parsed arguments."""
    from weightless.pipeline.config import EncodeConfig

    from ..apps.encode_options import override_encode
    from ..apps.run import RunOptions

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    t = parse_t(args.t)
    encode = override_encode(EncodeConfig(), t=t if isinstance(t, dict) else None, retrain_epochs=args.retrain_epochs,
                             construction=args.construction, seed_trials=args.seed_trials, c=args.c, shards=args.shards,
                             smaller_k=parse_k_list(args.smaller_k), harder=parse_fractions(args.harder))
    opts = RunOptions(
        model=args.model, pruning=args.pruning, encode=encode, paper_t=t == "paper", tolerance=args.tolerance,
        entropy=not args.no_entropy, dense_dtype=args.dense_dtype, seed=args.seed, quick=args.quick,
        cache_dir=args.cache_dir, progress=not args.no_progress, max_error_increase=args.max_error_increase,
        max_error=args.max_error, allow_over_budget=args.allow_over_budget, compare_lossless=args.compare_lossless,
    )
    opts.validate()
    return opts


def format_table(report: dict[str, Any]) -> str:
    """The per-layer table printed by ``compress``."""
    head = (f"{'layer':<14}{'paper':<7}{'shape':<14}{'nz %':>7}{'k':>4}{'t':>4}{'m/n':>7}{'false +':>9}"
            f"{'WL bytes':>10}{'WL x':>8}{'lossless':>10}{'saves':>7}{'DC bytes':>10}{'DC x':>8}{'vs DC':>7}")
    lines = [head, "-" * len(head)]
    for r in report["layers"]:
        dc = min(r["csr_huffman_bytes"], r["csr_huffman_best_bytes"])
        lines.append(
            f"{r['name']:<14}{r['paper_name']:<7}{'x'.join(map(str, r['shape'])):<14}{r['nonzero_percent']:>7.2f}"
            f"{r['k']:>4}{r['t']:>4}{r['cells_per_key']:>7.3f}{r['false_positives']:>9}{r['weightless_bytes']:>10}"
            f"{r['weightless_factor']:>7.1f}x{r['lossless_bytes']:>10}{1 - r['weightless_bytes'] / r['lossless_bytes']:>7.0%}"
            f"{dc:>10}{r['dense_bytes'] / dc:>7.1f}x"
            f"{r['improvement_vs_deep_compression']:>6.2f}x"
        )
    lines.append(
        f"file {report['output']}: {report['file_bytes']} bytes (dense fp32 {report['dense_model_bytes']} bytes, "
        f"{report['model_compression_factor']}x)"
    )
    lines.append(
        f"test error: dense {report['dense_test_error']:.2f}%, simplified {report['simplified_test_error']:.2f}%, "
        f"decoded from file {report['decoded_test_error']:.2f}%  ({report['seconds']['total']:.0f} s)"
    )
    lines.append("WL = Weightless (entropy-coded filter + codebook; t 0 = stored lossless); lossless = the layer's "
                 "lossless record, the alternative a filter must beat; DC = Deep Compression (CSR + Huffman, best of "
                 "published and tuned index width)")
    b = report.get("budget") or {}
    conf = b.get("confirmation") or {}
    if conf:
        lines.append(f"accuracy contract: {b['allowance']:.2f} pp over the {'dense' if b['reference'] == 'model' else 'simplified'}"
                     f" model; confirmation data {conf['difference']:+.2f} +- {conf['standard_error']:.2f} pp: "
                     f"{'within' if b['within_budget'] else 'OVER BUDGET'}"
                     + (f"; backed off: {', '.join(b['backed_off'])}" if b.get("backed_off") else ""))
    alt = report.get("every_layer_lossless")
    if alt:
        ci, saved = alt["filters_vs_lossless_test"], alt["file_bytes"] - report["file_bytes"]
        share = f"{abs(saved)} bytes ({abs(saved) / alt['file_bytes']:.1%})"
        if not any(r["t"] for r in report["layers"]):  # every t search ended on a record: no filter to credit
            what = (f"the file holds no filter (each t search ended on the lossless record), and its search path "
                    f"made it {share} {'smaller' if saved >= 0 else 'larger'}")
        else:
            what = (f"the filters save {share}" if saved >= 0 else f"THE LOSSLESS FILE IS SMALLER: the filters cost {share}")
        lines.append(f"same pipeline, every layer lossless ({alt['output']}): {alt['file_bytes']} bytes, "
                     f"test error {alt['decoded_test_error']:.2f}%;"
                     f" {what} at {ci['difference']:+.2f} pp [{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}] test error")
    if report.get("whole_model"):
        from ..apps.whole import format_whole

        lines += ["", format_whole(report["whole_model"])]
    return "\n".join(lines)


def user_config(args: argparse.Namespace, opts: Any) -> Any:
    """The :class:`~weightless.pipeline.CompressConfig` of a ``--model-def`` run."""
    from weightless.pipeline.config import CompressConfig
    from weightless.simplify import LayerSelect, Recipe

    given = {"pattern": args.pattern, "largest_share": args.largest_share, "nonzero": args.nonzero, "k": args.k,
             "method": args.pruning, "min_size": args.min_size}
    if args.types is not None:
        given["types"] = tuple(t.strip() for t in args.types.split(",") if t.strip())
    select = LayerSelect(**{k: v for k, v in given.items() if v is not None})
    recipe = Recipe(select=select, seed=args.seed)
    cfg = CompressConfig(recipe=recipe.scaled(1 / 8) if args.quick else recipe, encode=opts.encode_config(),
                         progress=not args.no_progress, **opts.budget())
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless compress``; return the exit code."""
    from ..apps.run import compress_run
    from weightless.training import set_threads

    opts = options_from_args(args)
    user = args.model_def is not None
    if user and opts.paper_t:
        raise InputError("--t paper names the paper's LeNet layers; with --model-def use auto or LAYER=BITS")
    cfg = user_config(args, opts) if user else None
    if args.weights is not None and not user:
        raise InputError("--weights needs --model-def (the model to load them into)")
    default = f"runs/{args.model_def.rpartition(':')[2]}.wl" if user else f"runs/{opts.model}-{opts.pruning}.wl"
    out = output_file(args.output or default, "-o")
    if args.json:
        output_file(args.json, "--json")
    set_threads(args.threads)
    say = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if user:
        from ..apps.user import compress_user

        report = compress_user(args.model_def, args.weights, args.data, cfg, out, say,
                               dense_dtype=opts.dense_dtype, entropy=opts.entropy, quick=opts.quick,
                               normalize=args.normalize)
        te = report["decoded_test_error"]
        from ..apps.whole import format_whole

        say(format_whole(report["whole_model"]))
        say(f"file {out}: {report['file_bytes']} bytes ({report['model_compression_factor']}x the model's "
            f"{report['dense_model_bytes']} bytes); test error from the file "
            + ("n/a (no test split)" if te is None else f"{te:.2f}%") + f" ({report['seconds']:.0f} s)")
    else:
        report = compress_run(opts, out, say)
        say(format_table(report))
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0
