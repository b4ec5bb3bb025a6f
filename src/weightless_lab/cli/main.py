"""The ``weightless`` command: a parser builder and ``main(argv) -> int``.

Each sub-command lives in its own module ``weightless_lab.cli.cmd_<name>`` that defines
``register(subparsers) -> None``; the parser it adds sets ``func(args) -> int``. Results go to
stdout (JSON or a table), logs and progress to stderr. User mistakes (any
:class:`~weightless.errors.WeightlessError`, a missing file) print one line on stderr and
return a non-zero code, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from weightless import __version__
from weightless.errors import BudgetError, WeightlessError

__all__ = ["build_parser", "main", "entry", "COMMANDS"]

#: Sub-commands, in the order ``--help`` lists them (module ``weightless_lab.cli.cmd_<name>``).
COMMANDS = (
    "compress",
    "encode",
    "decompress",
    "inspect",
    "evaluate",
    "simplify",
    "reproduce",
    "demo",
)

EXIT_USER_ERROR = 2
EXIT_IO_ERROR = 1
EXIT_BROKEN_PIPE = 141  # like a shell's 128 + SIGPIPE
EXIT_OVER_BUDGET = 3  # no model within the accuracy budget (BudgetError): no file written


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="weightless",
        description="Compress neural network weights with Bloomier filters (Weightless).",
    )
    parser.add_argument("--version", action="version", version=f"weightless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modname = f"{__package__}.cmd_{name}"
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:  # command not built yet in this checkout
            if exc.name == modname:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    _setup_logging()
    if sys.stdout is None:  # started with stdout closed (``>&-``): writing to it is an error
        sys.stdout = _ClosedStream()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe is reported here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader of our output went away (``weightless inspect x.wl | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except BudgetError as exc:
        print(f"weightless: error: {_one_line(exc)}; no file written", file=sys.stderr)
        return EXIT_OVER_BUDGET
    except WeightlessError as exc:
        print(f"weightless: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"weightless: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_IO_ERROR
    except MemoryError:
        print("weightless: error: out of memory", file=sys.stderr)
        return EXIT_IO_ERROR
    except KeyboardInterrupt:
        print("weightless: interrupted", file=sys.stderr)
        return 130


class _ClosedStream:
    """Stands for a standard output that was closed before the start: every write raises
    ``OSError(EBADF)``, which :func:`main` reports in one line."""

    def write(self, _text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        import errno

        raise OSError(errno.EBADF, "standard output is closed")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
def _setup_logging() -> None:
    """Progress and stage lines of the "weightless" logger go to stderr, one per line."""
    import logging

    log = logging.getLogger("weightless")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
