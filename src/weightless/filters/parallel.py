"""Threads for decoding: the default count and one shared pool.

Decode kernels are numba functions compiled with ``nogil=True``; the filter splits a layer's
work into independent pieces (each writes its own positions) and runs them on this pool, so
the output never depends on the number of threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from .params import check_int

__all__ = ["default_threads", "resolve_threads", "run_pieces"]

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_LOCK = threading.Lock()


def default_threads() -> int:
    """Return the number of cores this process may run on (``os.sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Return ``threads``, or :func:`default_threads` for None.

    Raises:
        InputError: ``threads`` is not an integer in [1, 1024].
    """
    if threads is None:
        return default_threads()
    return check_int("threads", threads, 1, 1024)


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _LOCK:
        if _POOL is None or _POOL_SIZE < n:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="wl-decode")
            _POOL_SIZE = n
        return _POOL


def run_pieces(fn: Callable[..., Any], pieces: Sequence[tuple]) -> list[Any]:
    """Return ``[fn(*p) for p in pieces]``, the pieces run on the shared pool (the first in
    the calling thread); exceptions propagate."""
    if len(pieces) <= 1:
        return [fn(*p) for p in pieces]
    pool = _pool(len(pieces) - 1)
    futs = [pool.submit(fn, *p) for p in pieces[1:]]
    first = fn(*pieces[0])
    return [first] + [f.result() for f in futs]

