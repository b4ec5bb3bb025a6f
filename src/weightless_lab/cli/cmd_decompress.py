"""``weightless decompress IN.wl -o OUT.safetensors`` (or ``OUT.pt``): decode every tensor.

Example::

    weightless decompress lenet300.wl -o lenet300.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from weightless._atomic import atomic_target
from weightless.errors import InputError

__all__ = ["register", "run", "write_state"]

_SUFFIXES = (".safetensors", ".pt", ".pth")


def register(subparsers: Any) -> None:
    """Add the ``decompress`` sub-command."""
    p = subparsers.add_parser(
        "decompress",
        help="decode every tensor of a .wl file into .safetensors or a torch .pt state_dict",
        description="Read IN.wl (validating every offset and checksum), decode every tensor and write "
        "them to OUT: .safetensors (numpy only) or .pt/.pth (torch.save of a state_dict, loadable with "
        "torch.load(weights_only=True)). Prints a JSON summary on stdout.",
    )
    p.add_argument("input", metavar="IN.wl")
    p.add_argument("-o", "--output", required=True, help="OUT.safetensors or OUT.pt")
    p.set_defaults(func=run)


def write_state(path: str | os.PathLike, arrays: dict[str, Any]) -> int:
    """Write ``arrays`` (name -> numpy array) to ``path`` (.safetensors or .pt/.pth) atomically.

    Returns:
        The number of bytes written.

    Raises:
        InputError: an unsupported suffix or a directory as output.
        OSError: the file cannot be written (nothing is left behind).
    """
    out = Path(path)
    if out.suffix not in _SUFFIXES:
        raise InputError(f"output {out}: unknown suffix {out.suffix!r}; expected one of {', '.join(_SUFFIXES)}")
    if out.is_dir():
        raise InputError(f"output {out} is a directory; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(out) as (tmp, _):
        if out.suffix == ".safetensors":
            from safetensors.numpy import save_file

            save_file({k: v for k, v in arrays.items()}, tmp)
        else:
            import numpy as np
            import torch

            torch.save({k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}, tmp)
    return out.stat().st_size


def run(args: argparse.Namespace) -> int:
    """Execute ``weightless decompress``; return the exit code."""
    from weightless.io.files import load_arrays

    from ._checks import output_file

    out = Path(args.output)
    if out.suffix not in _SUFFIXES:  # fail before decoding
        raise InputError(f"output {out}: unknown suffix {out.suffix!r}; expected one of {', '.join(_SUFFIXES)}")
    output_file(out, "-o")
    t0 = time.perf_counter()
    arrays = load_arrays(args.input)
    t_load = time.perf_counter() - t0
    nbytes = write_state(out, arrays)
    report = {
        "input": str(args.input),
        "output": str(out),
        "output_bytes": nbytes,
        "tensors": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
        "seconds": {"load": round(t_load, 4), "total": round(time.perf_counter() - t0, 4)},
    }
    print(f"decoded {len(arrays)} tensors from {args.input} into {out} ({nbytes} bytes)", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0
