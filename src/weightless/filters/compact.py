"""The compact construction: sharded Ribbon retrieval with adaptive shard sizes.

Name ``"compact"``, file code 2. The table of ``m`` cells is solved as a banded linear system
over GF(2) (Ribbon retrieval, Dillinger & Walzer 2021): every key owns one equation whose
coefficients are a 64-bit random row starting at a hashed slot, and the cells are the solution
(one t-bit cell per slot, so the table costs exactly ``m * t`` bits). Keys are hashed into
shards of about :data:`SHARD_KEYS` keys; each shard gets exactly as many cells as it needs:
the solver tries ``n_s (1 + F0) + i * step`` cells (i = 0, 1, ...) until the band solves, and
the shard's cell count, stored in ``aux``, also selects its hash functions. The last shard takes
the remaining cells and retries up to 256 recorded tries. This reaches m/n ~ 1.01-1.02 with
only 64-bit bands; ``aux`` costs 16 bits per shard (0.2% of ``n * t`` at t = 8).

Exact function (so files stay decodable by any implementation), for a key ``x`` and ``seed``:

- ``h = hash64(x, seed)``; shard ``s = reduce32(h, S)`` (top 32 bits of h);
- shard ``s`` has ``ms`` cells at offset ``off_s`` (sum of earlier shards' cells);
  ``w = min(64, ms)``; its seed word ``sw = fmix(fmix(s + ssw) ^ (ms | tr << 48) + ssw)`` with
  ``ssw = seed_word(seed)`` and ``tr`` the stored try (0 except for the last shard);
- start ``st = ((((h mod 2^32) * ((sw >> 32) | 1)) mod 2^32) * (ms - w + 1)) >> 32``;
- coefficients ``a = ((h ^ sw) * 0xC28F82822B650BED) mod 2^64``,
  ``c = (a ^ (a >> 32) | 1) & (2^w - 1)``;
- raw word ``r = (XOR of cells[off_s + st + b] for each set bit b of c) ^ (h mod 2^t)``.

The trailing mask ``h mod 2^t`` makes the raw word of a non-key uniform over ``[0, 2^t)``
whatever the stored values, so the false-positive rate with the range check is ``k / 2^t``.

``aux`` layout (little endian): ``u8 version = 1 | u32 S | u8 width (2 or 4) | u8 last try |
(S - 1) cell counts of `width` bytes`` (the last shard's count is ``m`` minus the others).

A query costs one hash, one 64-slot window of the table and ``t`` parities. The numba paths
for decodes and large lookups keep a bit-sliced copy of the cells in memory (64 slots x 8 or 16
result bits per 64-byte block, built once per table and cached; the file still holds m t-bit
cells), so a window is two adjacent cache lines, prefetched ahead (16 positions in a decode,
batches of 32 in a lookup), and its parities take one 8-lane vector popcount (AVX-512 where
the CPU has it). A decode hashes a step of positions and their shards in a vectorised loop,
then reads each shard's parameters from one 32-byte row (prefetched 8 positions ahead).
Large decodes run in up to ``threads`` threads (the kernel releases the GIL; same result).

Solving needs numba (the pure-Python elimination would be impractically slow): without it
:meth:`CompactConstruction.solve` raises ConstructionError. Lookups and decodes have a numpy
path that gives identical results.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from .._compat import HAVE_NUMBA
from .._compat import use_numba as _use_numba
from ..errors import ConstructionError, FieldError, InputError, TruncatedError, UnsupportedVersionError
from .base import ConstructionBase, Solution, register
from .hashing import hash64, seed_word
from .parallel import run_pieces

if HAVE_NUMBA:  # pragma: no branch
    from . import compact_kernels as _k
else:  # pragma: no cover
    _k = None  # type: ignore[assignment]

__all__ = ["CompactConstruction", "COMPACT", "SHARD_KEYS", "num_cells", "parse_aux"]

SHARD_KEYS = 1024
"""Target number of keys per internal shard (S = max(1, round(n / SHARD_KEYS)))."""

F0 = 0.008
"""First try of a shard: ``ceil(n_s * F0)`` spare cells."""

FSTEP = 0.001
"""Spare cells added per failed try (fraction of the shard's keys, at least one cell)."""

MAX_TRIES = 400
"""Tries per (non-last) shard before the whole solve reports failure for this seed."""

PARALLEL_SOLVE_MIN = 1 << 19
"""Solves of at least this many keys run the shards on numba's thread pool (same result)."""

_MIN_PER_THREAD = 1 << 18
_SLICED_LOOKUP_MIN = 4096  # lookups of at least this many keys use the cached bit-sliced table


AUX_VERSION = 1
_HEADER = 7
_M64 = (1 << 64) - 1
_CK = np.uint64(0xC28F82822B650BED)


def num_shards(n: int) -> int:
    """Number of internal shards for ``n`` keys."""
    return max(1, int(round(n / SHARD_KEYS)))


def num_cells(n: int, c: float | None = None) -> int:
    """Cells for ``n`` keys: ``ceil(c * n)`` if ``c`` is given, else the tuned default.

    The default leaves enough spare cells that a seed fails only rarely (a few percent).

    Raises:
        InputError: ``n`` is negative or ``c`` is below 1.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    if c is not None:
        c = float(c)
        if not c >= 1.0 or c != c or c == float("inf"):
            raise InputError(f"compact construction: c (cells per key) must be a finite number >= 1, got {c}")
        return int(np.ceil(c * n))
    if n == 0:
        return 0
    s = num_shards(n)
    # measured: shards 0..S-2 take 1.20% spare cells on average (std 0.28% of a shard's keys,
    # about 2.9 cells); the last shard (256 tries at a fixed size) needs about 1% of its keys
    spare = 0.0121 * (n - n / s) + 4.0 * 3.0 * np.sqrt(s - 1) + 0.012 * n / s + 8
    return int(n + np.ceil(spare))


def _encode_aux(ms: np.ndarray, last_try: int) -> np.ndarray:
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


def _fmix_np(x: np.ndarray) -> np.ndarray:
    z = x ^ (x >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _shard_params(ms: np.ndarray, last_try: int, seed: int) -> tuple[np.ndarray, ...]:
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
        sws = _fmix_np((inner ^ (ms.astype(np.uint64) | (tr << np.uint64(48)))) + ssw)
    muls = (sws >> np.uint64(32)) | np.uint64(1)
    return offs, nst, cmask, sws, muls


def _np_raw(cells: np.ndarray, params: tuple, nshards: int, t: int, h: np.ndarray) -> np.ndarray:
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


def _param_rows(params: tuple) -> np.ndarray:
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


class _TableCache:
    """Bit-sliced copies and shard parameters of recently queried tables (queries and decodes
    come in chunks). Entries are keyed by the identity of the ``cells``/``aux`` arrays (held by
    weak reference), so tables must not be modified in place once queried; at most
    :data:`CACHE_BYTES` of bit-sliced copies are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple] = {}

    def get(self, cells: np.ndarray, aux: np.ndarray, t: int, seed: int) -> tuple[np.ndarray, int, np.ndarray]:
        key = (id(cells), cells.__array_interface__["data"][0], cells.shape[0], id(aux), int(t), int(seed))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0]() is cells and hit[1]() is aux:
                self._entries[key] = self._entries.pop(key)  # most recent last
                return hit[2], hit[3], hit[4]
        ms, last_try = parse_aux(aux, int(cells.shape[0]))
        params = _shard_params(ms, last_try, seed)
        prm = _param_rows(params)
        tp = 8 if t <= 8 else 16
        nw = (cells.shape[0] // 64 + 2) * tp
        raw = np.zeros(nw + 8, np.uint64)  # aligned so that each block is one 64-byte line
        a = (-raw.ctypes.data % 64) // 8
        zi = raw[a : a + nw]
        _k.interleave(np.ascontiguousarray(cells, dtype=np.uint16), t, tp, zi)
        entry = (weakref.ref(cells), weakref.ref(aux), zi, int(ms.shape[0]), prm)
        with self._lock:
            self._entries[key] = entry
            live = {k: v for k, v in self._entries.items() if v[0]() is not None and v[1]() is not None}
            total = sum(v[2].nbytes for v in live.values())
            for k in list(live):
                if total <= CACHE_BYTES or k == key:
                    break
                total -= live.pop(k)[2].nbytes
            self._entries = live
        return zi, entry[3], prm


CACHE_BYTES = 1 << 28
"""Upper bound on the memory held by cached bit-sliced tables (the newest is always kept)."""

_TC = _TableCache()


class CompactConstruction(ConstructionBase):
    """Sharded Ribbon retrieval (name ``"compact"``, file code 2). See the module docstring."""

    name = "compact"
    code = 2
    solve_needs_numba = True

    def num_cells(self, n: int, c: float | None) -> int:
        """Cells for ``n`` keys; see :func:`num_cells`."""
        return num_cells(n, c)

    def solve(
        self,
        keys: np.ndarray,
        values: np.ndarray,
        t: int,
        m: int,
        seed: int,
        *,
        use_numba: bool | None = None,
    ) -> Solution | None:
        """Solve the table for ``seed``; return it, or None if ``m`` cells are too few for this seed.

        Raises:
            InputError: mismatched lengths, ``t`` outside 1..16, values not below ``2**t``.
            ConstructionError: numba is not available (the solver needs it).
        """
        keys = np.asarray(keys).astype(np.uint64, copy=False).reshape(-1)
        values = np.asarray(values).reshape(-1)
        n = int(keys.shape[0])
        if values.shape[0] != n:
            raise InputError(f"compact solve: {n} keys but {values.shape[0]} values")
        if not 1 <= int(t) <= 16:
            raise InputError(f"compact solve: t must be in 1..16, got {t}")
        t = int(t)
        m = int(m)
        if n and (values.min() < 0 or int(values.max()) >= (1 << t)):
            raise InputError(f"compact solve: values must lie in [0, 2**t) = [0, {1 << t})")
        if n == 0:
            if m == 0:
                return Solution(np.zeros(0, np.uint16), np.zeros(0, np.uint8))
            return Solution(np.zeros(m, np.uint16), _encode_aux(np.array([m], np.int64), 0))
        if m < n:
            return None
        if not _use_numba(use_numba) or _k is None:
            raise ConstructionError(
                "the compact construction's solver needs numba (pip install numba); "
                "use construction='paper' without numba"
            )
        s = num_shards(n)
        h = hash64(keys, seed)
        sid = ((h >> np.uint64(32)) * np.uint64(s)) >> np.uint64(32)
        sid = sid.astype(np.uint16 if s <= 0xFFFF else np.uint32)
        order = np.argsort(sid, kind="stable")  # radix sort for 16-bit shard ids
        hs = h[order]
        vals = (values.astype(np.uint64)[order] ^ (hs & np.uint64((1 << t) - 1))).astype(np.uint16)
        starts = np.zeros(s + 1, np.int64)
        np.cumsum(np.bincount(sid.astype(np.int64), minlength=s), out=starts[1:])
        ratio = m / n
        f0 = max(F0, ratio - 1.0 - 0.02) if ratio >= 1.05 else F0
        cells = np.zeros(m, np.uint16)
        ms = np.zeros(s, np.int64)
        par = n >= PARALLEL_SOLVE_MIN
        tr = _k.solve_all(hs, vals, starts, s, seed_word(seed), m, t, f0, FSTEP, MAX_TRIES, par, cells, ms)
        if tr < 0:
            return None
        return Solution(cells, _encode_aux(ms, int(tr)))

    def _prepare(self, cells: np.ndarray, aux: np.ndarray, seed: int) -> tuple[int, tuple]:
        ms, last_try = parse_aux(aux, int(cells.shape[0]))
        return int(ms.shape[0]), _shard_params(ms, last_try, seed)

    def lookup(
        self,
        cells: np.ndarray,
        aux: np.ndarray,
        t: int,
        seed: int,
        keys: np.ndarray,
        *,
        use_numba: bool | None = None,
    ) -> np.ndarray:
        """Raw t-bit words (uint16) for arbitrary ``keys``.

        Raises:
            FormatError: ``aux`` is malformed or inconsistent with ``len(cells)``.
        """
        keys = np.asarray(keys).astype(np.uint64, copy=False).reshape(-1)
        tmask = (1 << int(t)) - 1
        if cells.shape[0] == 0:
            return np.full(keys.shape[0], tmask, dtype=np.uint16)
        h = hash64(keys, seed)
        if _use_numba(use_numba) and _k is not None and keys.shape[0] >= _SLICED_LOOKUP_MIN:
            zi, nsh, prm = _TC.get(cells, aux, int(t), seed)
            out = np.empty(keys.shape[0], np.uint16)
            (_k.lookup8 if t <= 8 else _k.lookup16)(zi, prm, nsh, int(t), h, out)
            return out
        nsh, params = self._prepare(cells, aux, seed)
        if _use_numba(use_numba) and _k is not None:
            out = np.empty(keys.shape[0], np.uint16)
            _k.lookup(np.ascontiguousarray(cells, dtype=np.uint16), *params, nsh, np.uint64(tmask), h, out)
            return out
        return _np_raw(cells, params, nsh, int(t), h)

    def validate(self, cells: np.ndarray, aux: np.ndarray, t: int, n: int, m: int) -> None:
        """Check ``aux`` against the table (see :func:`parse_aux`); an empty table needs no aux.

        Raises:
            FormatError: ``aux`` is malformed or inconsistent with ``m``.
        """
        if m or aux.shape[0]:
            parse_aux(aux, m)

    def decode_lut(
        self,
        cells: np.ndarray,
        aux: np.ndarray,
        t: int,
        seed: int,
        start: int,
        lut: np.ndarray,
        out: np.ndarray,
        *,
        use_numba: bool | None = None,
        threads: int = 1,
    ) -> None:
        """``out[i] = lut[raw(start + i)]``; large numba decodes run in up to ``threads``
        threads (same result).

        Raises:
            FormatError: ``aux`` is malformed or inconsistent with ``len(cells)``.
        """
        t = int(t)
        n = int(out.shape[0])
        if cells.shape[0] == 0:
            out[:] = lut[(1 << t) - 1]
            return
        if _use_numba(use_numba) and _k is not None:
            zi, nsh, prm = _TC.get(cells, aux, t, seed)
            dec = _k.decode8 if t <= 8 else _k.decode16
            sw0 = seed_word(seed)
            nthreads = max(1, min(threads, n // _MIN_PER_THREAD))
            cuts = [n * i // nthreads for i in range(nthreads + 1)]
            run_pieces(dec, [(zi, prm, nsh, sw0, t, int(start) + a, lut, out[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
            return
        nsh, params = self._prepare(cells, aux, seed)
        step = 1 << 16
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            h = hash64(np.arange(start + lo, start + hi, dtype=np.uint64), seed)
            out[lo:hi] = lut[_np_raw(cells, params, nsh, t, h)]


COMPACT = register(CompactConstruction())
