"""Option checks that ``encode`` and ``decompress`` run before they start working.

Output files: a missing parent folder is created, and the folder must be writable; a directory
given as an output file is an error (``compress`` does the same in its own module). Numeric
options are checked against the ranges the library enforces.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from weightless.errors import InputError

__all__ = ["output_file", "check_seed", "check_c", "check_numeric_options"]


def output_file(path: str | os.PathLike[str], option: str) -> Path:
    """Return ``path`` as a Path after making sure it can be written: not a directory, parent
    folder created if missing and writable.

    Raises:
        InputError: the path is a directory, or its folder cannot be created or written.
    """
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{option} {out} is a directory; give a file name such as {out / 'model.wl'}")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {out}: cannot create the folder {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {out}: the folder {folder} is not writable")
    if out.exists() and not os.access(out, os.W_OK) and not os.access(folder, os.W_OK):
        raise InputError(f"{option} {out} is not writable")  # pragma: no cover
    return out


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed in [0, 2**64)."""
    if not 0 <= seed < 2**64:
        raise InputError(f"{option} must be in [0, 2**64), got {seed}")
    return seed


def check_c(c: float | None, construction: str) -> None:
    """``--c``: None, or a finite cells-per-key factor (> 1 for paper, >= 1 for compact)."""
    if c is None:
        return
    if construction == "compact":
        if not (math.isfinite(c) and c >= 1.0):
            raise InputError(f"--c (cells per key) must be a finite number >= 1 for the compact construction, got {c}")
    elif not (math.isfinite(c) and c > 1.0):
        raise InputError(f"--c (cells per key) must be a finite number > 1 for the {construction} construction, got {c}")


def check_numeric_options(args: argparse.Namespace) -> None:
    """Check ``--seed``, ``--c`` and ``--shards`` where a command defines them.

    Raises:
        InputError: an option is out of range.
    """
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    check_c(getattr(args, "c", None), getattr(args, "construction", "paper"))
    shards = getattr(args, "shards", None)
    if shards is not None and not 1 <= shards <= 1 << 16:
        raise InputError(f"--shards must be in [1, 65536], got {shards}")
