"""Argument checks shared by building, loading and querying filters, and the caps on sizes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["MAX_SHARDS", "MAX_CELLS", "MAX_SIZE", "MASK64", "check_int", "check_kt", "as_int_array"]

#: Caps checked before anything is allocated when parsing.
MAX_SHARDS = 1 << 16
MAX_CELLS = (1 << 32) - 1
MAX_SIZE = 1 << 62
MASK64 = (1 << 64) - 1


def check_int(name: str, v: Any, lo: int, hi: int) -> int:
    """Return ``v`` as an int; InputError unless it is an integer (not bool) in ``[lo, hi]``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if not lo <= v <= hi:
        raise InputError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def check_kt(k: Any, t: Any) -> tuple[int, int]:
    """Return ``(k, t)``; InputError unless ``1 <= k <= 2**15`` and ``ceil(log2 k) < t <= 16``."""
    k = check_int("k (number of clusters)", k, 1, 1 << 15)
    t = check_int("t (bits per cell)", t, 1, 16)
    need = max(1, math.ceil(math.log2(k))) if k > 1 else 0
    if t <= need:
        raise InputError(
            f"t (bits per cell) must be > ceil(log2 k) = {need} for k = {k}, got t = {t}; "
            f"use t >= {need + 1} (false positive rate k / 2**t)"
        )
    return k, t


def as_int_array(name: str, a: Any) -> np.ndarray:
    """Return ``a`` as a 1-D int64 array; InputError if it is not 1-D integers below 2**63."""
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{name} must be an integer array, got dtype {arr.dtype}; cast with .astype(np.int64)")
    if arr.dtype == np.uint64 and int(arr.max()) > np.iinfo(np.int64).max:
        raise InputError(f"{name} has values above 2**63 - 1")
    return arr.astype(np.int64, copy=False)
