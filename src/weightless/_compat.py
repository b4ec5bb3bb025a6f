"""Optional acceleration: numba when available, a pure-numpy path otherwise.

Set the environment variable ``WEIGHTLESS_DISABLE_NUMBA=1`` to force the numpy paths (used by
the tests to check that both paths give identical results, and on devices without numba).
"""

from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["HAVE_NUMBA", "njit", "use_numba"]

_disabled = os.environ.get("WEIGHTLESS_DISABLE_NUMBA", "") not in ("", "0")

try:  # pragma: no cover - depends on the environment
    if _disabled:
        raise ImportError("disabled by WEIGHTLESS_DISABLE_NUMBA")
    import numba as _numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _numba = None
    HAVE_NUMBA = False


def njit(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``numba.njit`` (cached, no Python fallback) when numba is available, else a no-op decorator."""
    if HAVE_NUMBA:
        kwargs.setdefault("cache", True)
        kwargs.setdefault("nogil", True)
        return _numba.njit(*args, **kwargs)
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


def use_numba(requested: bool | None) -> bool:
    """Return whether to take the numba path: ``requested`` if given (False always allowed),
    else whether numba is available."""
    if requested is None:
        return HAVE_NUMBA
    return bool(requested) and HAVE_NUMBA
