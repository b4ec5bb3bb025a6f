"""``weightless evaluate IN.wl --model lenet300|lenet5``: test error of the decoded model.

Example::

    weightless evaluate lenet300.wl --model lenet300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import InputError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="test error of the model decoded from a .wl file on the MNIST test split",
        description="Decode IN.wl into a state_dict, load it into a fresh MODEL and print its error "
        "(%) on the 10,000-image MNIST test split as JSON on stdout.",
    )
    p.add_argument("input", metavar="IN.wl")
    # no argparse choices: an unknown model is reported like every other error, in one line
    p.add_argument("--model", required=True, help="lenet300 or lenet5")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: WEIGHTLESS_THREADS or 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless evaluate``; return the exit code."""
    from ..models import MODEL_NAMES

    if args.model not in MODEL_NAMES:
        raise InputError(f"unknown model {args.model!r}; expected one of {', '.join(MODEL_NAMES)}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    from ..api import load
    from ..data.mnist import load_mnist
    from ..models import get_model
    from ..training import evaluate, set_threads

    set_threads(args.threads)
    t0 = time.perf_counter()
    state = load(args.input)
    t_load = time.perf_counter() - t0
    model = get_model(args.model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in set(expected) & set(state) if tuple(expected[n].shape) != tuple(state[n].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append(f"wrong shapes {wrong}")
        raise InputError(f"{args.input} does not hold a {args.model} state_dict: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    data = load_mnist()
    t1 = time.perf_counter()
    err = evaluate(model, data.test)
    report = {
        "input": str(args.input),
        "model": args.model,
        "split": "test",
        "images": len(data.test),
        "test_error": err,
        "seconds": {"load": round(t_load, 4), "evaluate": round(time.perf_counter() - t1, 3)},
    }
    print(f"{args.model} decoded from {args.input}: test error {err:.2f}%", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0
