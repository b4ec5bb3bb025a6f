"""The compact construction's table layout: the ``aux`` record (cells per shard and the last
shard's try), the per-shard hashing parameters derived from it, and the numpy reference query
of raw words. The exact function and the ``aux`` layout are documented in :mod:`.compact`; the
numba kernels (:mod:`.compact_kernels`) compute the same words.
"""

from __future__ import annotations

import numpy as np

from ..errors import FieldError, TruncatedError, UnsupportedVersionError
from .hashing import hash64, seed_word

__all__ = ["AUX_VERSION", "encode_aux", "parse_aux", "shard_params", "raw_words", "param_rows"]

AUX_VERSION = 1
_HEADER = 7
_M64 = (1 << 64) - 1
_CK = np.uint64(0xC28F82822B650BED)


def encode_aux(ms: np.ndarray, last_try: int) -> np.ndarray:
    """The ``aux`` record of a table with ``ms`` cells per shard (int64) and the last shard's try."""
    s = int(ms.shape[0])
    width = 2 if s <= 1 or int(ms[:-1].max()) < (1 << 16) else 4
    head = np.zeros(_HEADER, np.uint8)
    head[0] = AUX_VERSION
    head[1:5] = np.frombuffer(np.uint32(s).tobytes(), np.uint8)
    head[5] = width
    head[6] = last_try
    body = ms[:-1].astype("<u2" if width == 2 else "<u4").view(np.uint8)
    return np.concatenate([head, body])


def parse_aux(aux: np.ndarray, m: int) -> tuple[np.ndarray, int]:
    """Return (cells per shard as int64, last shard's try) from ``aux`` for a table of ``m`` cells.

    Raises:
        UnsupportedVersionError: unknown aux version.
        TruncatedError: ``aux`` is shorter than its declared content.
        FieldError: inconsistent fields (bad width, counts that do not fit in ``m``).
    """
    a = np.asarray(aux, dtype=np.uint8)
    if a.shape[0] < _HEADER:
        raise TruncatedError(f"compact aux: {a.shape[0]} bytes, expected at least {_HEADER}")
    if int(a[0]) != AUX_VERSION:
        raise UnsupportedVersionError(f"compact aux: version {int(a[0])}, this reader supports {AUX_VERSION}")
    s = int(a[1:5].view("<u4")[0])
    width = int(a[5])
    last_try = int(a[6])
    if s < 1:
        raise FieldError(f"compact aux: shard count {s}, expected >= 1")
    if width not in (2, 4):
        raise FieldError(f"compact aux: count width {width}, expected 2 or 4")
    need = _HEADER + (s - 1) * width
    if a.shape[0] != need:
        if a.shape[0] < need:
            raise TruncatedError(f"compact aux: {a.shape[0]} bytes, {s} shards need {need}")
        raise FieldError(f"compact aux: {a.shape[0]} bytes, {s} shards need exactly {need}")
    body = a[_HEADER:].view("<u2" if width == 2 else "<u4").astype(np.int64)
    used = int(body.sum())
    if (body < 1).any() or used > m - 1:
        raise FieldError(f"compact aux: shard cell counts (sum {used}) do not fit in a table of {m} cells")
    ms = np.empty(s, np.int64)
    ms[:-1] = body
    ms[-1] = m - used
    return ms, last_try


def _fmix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (as in :func:`.hashing.hash64`) on uint64 arrays, wrapping."""
    z = x ^ (x >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def shard_params(ms: np.ndarray, last_try: int, seed: int) -> tuple[np.ndarray, ...]:
    """Per-shard (offset, start count, coefficient mask, seed word, start multiplier)."""
    s = ms.shape[0]
    offs = np.zeros(s, np.int64)
    np.cumsum(ms[:-1], out=offs[1:])
    wid = np.minimum(ms, 64)
    nst = (ms - wid + 1).astype(np.uint64)
    cmask = np.where(wid >= 64, np.uint64(_M64), (np.uint64(1) << wid.astype(np.uint64)) - np.uint64(1))
    cmask = cmask.astype(np.uint64)
    tr = np.zeros(s, np.uint64)
    tr[-1] = last_try
    with np.errstate(over="ignore"):
        ssw = seed_word(seed)
        inner = hash64(np.arange(s, dtype=np.uint64), seed)
        sws = _fmix((inner ^ (ms.astype(np.uint64) | (tr << np.uint64(48)))) + ssw)
    muls = (sws >> np.uint64(32)) | np.uint64(1)
    return offs, nst, cmask, sws, muls


def raw_words(cells: np.ndarray, params: tuple, nshards: int, t: int, h: np.ndarray) -> np.ndarray:
    """Raw t-bit words (uint16) of hashed keys ``h`` (numpy path; ``params`` from :func:`shard_params`)."""
    offs, nst, cmask, sws, muls = params
    m32 = np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        s = (((h >> np.uint64(32)) * np.uint64(nshards)) >> np.uint64(32)).astype(np.int64)
        u = ((h & m32) * muls[s]) & m32
        g = offs[s] + ((u * nst[s]) >> np.uint64(32)).astype(np.int64)
        a = (h ^ sws[s]) * _CK
        c = (a ^ (a >> np.uint64(32)) | np.uint64(1)) & cmask[s]
    r = (h & np.uint64((1 << t) - 1)).astype(np.uint16)
    m = cells.shape[0]
    cz = np.concatenate([cells.astype(np.uint16), np.zeros(64, np.uint16)])
    for b in range(64):
        bit = ((c >> np.uint64(b)) & np.uint64(1)).astype(bool)
        if not bit.any():
            continue
        r ^= np.where(bit, cz[np.minimum(g + b, m + 63)], np.uint16(0))
    return r


def param_rows(params: tuple) -> np.ndarray:
    """The shard parameters as the numba kernels read them: one row of 4 uint64 (offset, start
    count, coefficient mask, seed word) per shard, 32-byte aligned so that a row is one cache
    line; the start multiplier is derived from the seed word."""
    offs, nst, cmask, sws, _muls = params
    s = offs.shape[0]
    raw = np.empty(4 * s + 4, np.uint64)
    a = (-raw.ctypes.data % 32) // 8
    prm = raw[a : a + 4 * s].reshape(s, 4)
    for j, p in enumerate((offs, nst, cmask, sws)):
        prm[:, j] = p.astype(np.uint64)
    return prm
