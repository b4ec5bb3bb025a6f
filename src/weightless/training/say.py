"""Where progress lines go when the caller names no place: the "weightless" logger when logging
is set up to show its INFO lines, else standard error (so a plain ``python script.py`` shows
progress without any logging set-up)."""

from __future__ import annotations

import logging
import sys

__all__ = ["say"]

_log = logging.getLogger("weightless")


def say(line: str) -> None:
    """Emit one progress line."""
    if _log.hasHandlers() and _log.isEnabledFor(logging.INFO):
        _log.info(line)
    else:
        print(line, file=sys.stderr, flush=True)
