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

The ``aux`` record, the shard parameters and the numpy query are in :mod:`.compact_layout`, the
numba kernels in :mod:`.compact_kernels`.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from .._compat import HAVE_NUMBA
from .._compat import use_numba as _use_numba
from ..errors import ConstructionError, InputError
from .base import ConstructionBase, Solution, register
from .compact_layout import AUX_VERSION as AUX_VERSION  # re-exported
from .compact_layout import encode_aux, param_rows, parse_aux, raw_words, shard_params
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
        params = shard_params(ms, last_try, seed)
        prm = param_rows(params)
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
            return Solution(np.zeros(m, np.uint16), encode_aux(np.array([m], np.int64), 0))
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
        return Solution(cells, encode_aux(ms, int(tr)))

    def _prepare(self, cells: np.ndarray, aux: np.ndarray, seed: int) -> tuple[int, tuple]:
        ms, last_try = parse_aux(aux, int(cells.shape[0]))
        return int(ms.shape[0]), shard_params(ms, last_try, seed)

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
        return raw_words(cells, params, nsh, int(t), h)

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
            out[lo:hi] = lut[raw_words(cells, params, nsh, t, h)]


COMPACT = register(CompactConstruction())
