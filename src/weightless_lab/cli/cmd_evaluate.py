"""``weightless evaluate IN.wl``: error of the decoded model on a test split.

Examples::

    weightless evaluate lenet300.wl --model lenet300
    weightless evaluate cnn.wl --model-def examples.own_model:make_cnn --data fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from weightless.errors import InputError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="test error of the model decoded from a .wl file",
        description="Decode IN.wl into a state_dict, load it into a fresh model (a paper LeNet, or "
        "your own with --model-def) and print its error (%) on the test split of --data as JSON.",
    )
    p.add_argument("input", metavar="IN.wl")
    # no argparse choices: an unknown model is reported like every other error, in one line
    p.add_argument("--model", default=None, help="lenet300 or lenet5")
    p.add_argument("--model-def", default=None, metavar="MODULE:FACTORY", help="your model: import MODULE, call FACTORY()")
    p.add_argument("--data", default="mnist", help="mnist (default), fashion-mnist, or a .npz with x_test/y_test")
    p.add_argument("--normalize", default="library", metavar="HOW", help="bundled images' normalisation: library (MNIST standardised, Fashion-MNIST in [0, 1]; default), none ([0, 1]), or MEAN,STD (your model's own, on [0, 1] pixels). A model that does not take flat 784-pixel rows gets (1, 28, 28) images")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: WEIGHTLESS_THREADS, else the usable cores up to 2)")
    p.set_defaults(func=run)


def _shape_of(task) -> str:
    """The shape of one input of ``task``'s test split, for an error message."""
    try:
        x = task.source("test")[0][0]
        return str(tuple(getattr(x, "shape", ())))
    except Exception:  # noqa: BLE001 - only for a message
        return "unknown"


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless evaluate``; return the exit code."""
    from ..models import MODEL_NAMES

    if (args.model is None) == (args.model_def is None):
        raise InputError("give exactly one of --model (lenet300, lenet5) and --model-def MODULE:FACTORY")
    if args.model is not None and args.model not in MODEL_NAMES:
        raise InputError(f"unknown model {args.model!r}; expected one of {', '.join(MODEL_NAMES)}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    from weightless.io.files import load
    from ..apps.user import check_state_dict, fit_shape, load_model_def, load_task
    from ..models import get_model
    from weightless.training import evaluate, set_threads

    set_threads(args.threads)
    model = get_model(args.model) if args.model is not None else load_model_def(args.model_def)
    task = fit_shape(model, load_task(args.data, normalize=args.normalize))
    if task.test is None:
        raise InputError(f"data {args.data} has no test split (x_test, y_test)")
    t0 = time.perf_counter()
    state = load(args.input)
    t_load = time.perf_counter() - t0
    check_state_dict(model, state, str(args.input))
    model.load_state_dict(state)
    t1 = time.perf_counter()
    try:
        err = evaluate(model, task, split="test")
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the model cannot take the data {args.data!r} (its images have shape "
                         f"{_shape_of(task)}): {type(exc).__name__}: {first}") from None
    name = args.model or args.model_def
    report = {
        "input": str(args.input),
        "model": name,
        "data": args.data,
        "split": "test",
        "images": len(task.source("test")),
        "test_error": err,
        "seconds": {"load": round(t_load, 4), "evaluate": round(time.perf_counter() - t1, 3)},
    }
    print(f"{name} decoded from {args.input}: test error {err:.2f}%", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0
