"""The public Bloomier filter: validation, sharding, seed retries, decoding, serialization.

A filter stores a map from ``n`` distinct flat positions (keys in ``[0, size)``) to cluster
indices in ``[0, k)``, in tables of ``t``-bit cells. Querying any position returns its value
if it is a key, and for a non-key "empty" except with probability ``k / 2**t`` (a false
positive, a uniformly random index in ``[0, k)``).

Sharding
    Positions are cut into blocks of ``2**block_bits`` (4096) consecutive positions; block ``b``
    goes to shard ``reduce32(hash64(b, seed ^ SHARD_SALT), S)``. Each shard is an independent
    table with its own seed (the first of ``derive_seed(shard_base, 0, 1, ...)`` that peels), so
    shards can be built in parallel processes and the result does not depend on the number of
    workers. Hashing whole blocks (instead of single keys) lets the decoder visit one shard's
    blocks together: with ``S`` chosen so a shard's table (``m / S`` bytes when ``t <= 8``) fits
    in the L2 cache (:func:`recommended_shards`; 10 for VGG-16 FC-0, the paper's choice),
    every table lookup of the decode is a cache hit, and building is faster too. With S = 1
    (the default) the single table (3.8 MB for VGG-16 FC-0) is looked up at random, which on
    this project's 2-core machine roughly halves the decode speed. Each shard costs a 20-byte
    record and the rounding of its own ``ceil(c n_s)``.

Decoding (``reconstruct``, ``reconstruct_indices``, ``count_false_positives``) with the paper
construction runs fused numba kernels (hash, three lookups, codebook) straight into the output;
the numpy fallback evaluates the same arithmetic in place on steps of 16384 positions, one
shard's blocks at a time. Other constructions are driven through the
:class:`~weightless.filters.base.Construction` protocol.

Serialization (little-endian), ``to_bytes()``::

    header, 44 bytes:
      magic b"WLBF" | version u8 = 1 | construction code u8 | t u8 | block_bits u8
      k u32 | shards u32 | size u64 | n u64 | seed u64
      crc32 u32 (of the 40 header bytes before it, then every byte after it)
    per shard, 20 bytes:  n u32 | m u32 | seed u64 | aux length u32
    per shard: cells, ceil(m t / 8) bytes (see :mod:`weightless.filters.packing`), then aux.

So one shard costs a 64-byte header plus exactly ``ceil(m t / 8)`` bytes of cells.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .._compat import njit
from .._compat import use_numba as _use_numba
from ..errors import (
    BadMagicError,
    ChecksumError,
    ConstructionError,
    FieldError,
    FormatError,
    InputError,
    TruncatedError,
    UnsupportedVersionError,
)
from . import paper as _paper
from .base import Construction, get_construction
from .hashing import derive_seed, hash64, reduce32, seed_word
from .packing import pack_cells, packed_size, unpack_cells

__all__ = [
    "BloomierFilter",
    "Shard",
    "build",
    "recommended_shards",
    "MAGIC",
    "VERSION",
    "BLOCK_BITS",
    "shard_of_positions",
]

MAGIC = b"WLBF"
VERSION = 1
#: log2 of the number of consecutive positions that share a shard.
BLOCK_BITS = 12
#: XORed into the base seed for the block -> shard hash.
SHARD_SALT = 0x3C6EF372FE94F82B
#: XORed into the base seed (with the shard number) for each shard's first seed.
SHARD_SEED_SALT = 0xA54FF53A5F1D36F1
_MASK64 = (1 << 64) - 1
_HEAD = struct.Struct("<4sBBBBIIQQQI")
_SHARD = struct.Struct("<IIQI")
HEADER_SIZE = _HEAD.size  # 44
SHARD_RECORD_SIZE = _SHARD.size  # 20
#: Caps checked before anything is allocated when parsing.
MAX_SHARDS = 1 << 16
MAX_CELLS = (1 << 32) - 1
MAX_SIZE = 1 << 62
_CHUNK = 1 << 16  # positions per step of the numpy decode paths
#: With ``workers=None``, layers with fewer keys are built in-process.
PARALLEL_MIN_KEYS = 1 << 18


def _frozen(a: Any, dtype: Any) -> np.ndarray:
    """A read-only C-contiguous copy of ``a`` with ``dtype`` (filters never change)."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Shard:
    """One table: ``n`` keys, ``m`` cells (``uint16``, each ``< 2**t``), the ``seed`` that
    solved it, and the construction's ``aux`` bytes (``uint8``). The arrays are read-only."""

    n: int
    m: int
    seed: int
    cells: np.ndarray
    aux: np.ndarray


def _shard_base_seed(seed: int, s: int) -> int:
    if s == 0:
        return int(seed) & _MASK64
    return derive_seed(int(seed) ^ SHARD_SEED_SALT, s)


def shard_of_blocks(blocks: np.ndarray, shards: int, seed: int) -> np.ndarray:
    """Return the shard (int32) of each block index for a filter with base ``seed``."""
    blocks = np.asarray(blocks)
    if shards == 1:
        return np.zeros(blocks.shape, dtype=np.int32)
    h = hash64(blocks.astype(np.uint64, copy=False), (int(seed) ^ SHARD_SALT) & _MASK64)
    return reduce32(h, shards).astype(np.int32)


def shard_of_positions(positions: np.ndarray, shards: int, seed: int, block_bits: int = BLOCK_BITS) -> np.ndarray:
    """Return the shard (int32) of each position for a filter with base ``seed``."""
    pos = np.asarray(positions).astype(np.uint64, copy=False)
    return shard_of_blocks(pos >> np.uint64(block_bits), shards, seed)


def recommended_shards(n: int, t: int, c: float = 1.25, cache_bytes: int = 384 * 1024) -> int:
    """Return a shard count S that keeps each shard's decode table (``c n / S`` cells of one
    byte for t <= 8, two bytes otherwise) within ``cache_bytes`` (default: well inside a 1 MiB
    L2 cache), so that decoding hits the cache; 1 for small layers. Costs 20 bytes per shard.

    Raises:
        InputError: n < 0, t not in [1, 16] or cache_bytes < 1.
    """
    n = _check_int("n", n, 0, 1 << 62)
    t = _check_int("t", t, 1, 16)
    cache_bytes = _check_int("cache_bytes", cache_bytes, 1, 1 << 40)
    table = math.ceil(c * n) * (1 if t <= 8 else 2)
    return max(1, min(MAX_SHARDS, math.ceil(table / cache_bytes)))


# --------------------------------------------------------------------------- validation


def _as_int_array(name: str, a: Any) -> np.ndarray:
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


def _check_int(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if not lo <= v <= hi:
        raise InputError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _check_kt(k: Any, t: Any) -> tuple[int, int]:
    k = _check_int("k (number of clusters)", k, 1, 1 << 15)
    t = _check_int("t (bits per cell)", t, 1, 16)
    need = max(1, math.ceil(math.log2(k))) if k > 1 else 0
    if t <= need:
        raise InputError(
            f"t (bits per cell) must be > ceil(log2 k) = {need} for k = {k}, got t = {t}; "
            f"use t >= {need + 1} (false positive rate k / 2**t)"
        )
    return k, t


# --------------------------------------------------------------------------- building


@njit
def _nb_first_duplicate(keys, bitmap):
    for i in range(keys.shape[0]):
        p = keys[i]
        w = p >> 3
        bit = np.uint8(1) << np.uint8(p & 7)
        if bitmap[w] & bit:
            return p
        bitmap[w] |= bit
    return -1


def _first_duplicate(keys: np.ndarray, size: int, use_numba: bool | None) -> int | None:
    """A key that appears twice in ``keys`` (int64 in [0, size)), or None."""
    if _use_numba(use_numba) and size <= max(64 * keys.shape[0], 1 << 27):  # bitmap <= 8 bytes per key
        d = _nb_first_duplicate(keys, np.zeros((size >> 3) + 1, np.uint8))
        return None if d < 0 else int(d)
    sk = np.sort(keys)
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    return int(sk[dup[0]]) if dup.size else None



def _solve_shard(args: tuple) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Worker: try seeds for one shard; returns (seed, cells, aux, attempts) or raises."""
    name, keys, values, t, m, base, max_attempts, use_numba = args
    con = get_construction(name)
    kw = {"use_numba": use_numba} if getattr(con, "supports_use_numba", False) else {}
    for attempt in range(max_attempts):
        seed = derive_seed(base, attempt)
        sol = con.solve(keys, values, t, m, seed, **kw)
        if sol is not None:
            return seed, sol.cells, sol.aux, attempt + 1
    raise ConstructionError(
        f"construction {name!r} failed for all {max_attempts} seeds on a shard of {keys.shape[0]} keys "
        f"with {m} cells; raise max_attempts, use a larger c, or change the seed"
    )


def build(
    keys: Any,
    values: Any,
    *,
    k: int,
    t: int,
    size: int,
    seed: int = 0,
    construction: str = "paper",
    c: float | None = None,
    shards: int = 1,
    workers: int | None = None,
    max_attempts: int = 64,
    use_numba: bool | None = None,
) -> "BloomierFilter":
    """Build a filter mapping each key (a flat position in ``[0, size)``) to its value.

    Args:
        keys: distinct integer positions in ``[0, size)``.
        values: integers in ``[0, k)``, one per key.
        k: number of clusters (values), >= 1.
        t: bits per cell, ``ceil(log2 k) < t <= 16``.
        size: number of positions of the layer (product of its shape).
        seed: base seed (0 <= seed < 2**64); retries use :func:`derive_seed`.
        construction: registered construction name ("paper", "compact", ...).
        c: cells per key (m/n) for the construction, None for its default.
        shards: number of shards S (tables), >= 1.
        workers: processes for a sharded build (None: min(S, CPU count) when there are at
            least 2**18 keys, else in-process); 1 builds in-process. The result does not
            depend on it.
        max_attempts: seeds tried per shard before giving up.
        use_numba: force (True) or forbid (False) the numba kernels; None: use them if present.

    Returns:
        The :class:`BloomierFilter`.
    Raises:
        InputError: any argument is invalid (duplicate keys, keys outside ``[0, size)``, values
            outside ``[0, k)``, bad ``k``/``t``, non-integer arrays, mismatched lengths, ...).
        ConstructionError: some shard failed for ``max_attempts`` seeds.
    """
    k, t = _check_kt(k, t)
    size = _check_int("size", size, 1, MAX_SIZE)
    seed = _check_int("seed", seed, 0, _MASK64)
    shards = _check_int("shards", shards, 1, MAX_SHARDS)
    max_attempts = _check_int("max_attempts", max_attempts, 1, 1 << 20)
    if workers is not None:
        workers = _check_int("workers", workers, 1, 1024)
    con = get_construction(construction)
    keys = _as_int_array("keys", keys)
    values = _as_int_array("values", values)
    if keys.shape[0] != values.shape[0]:
        raise InputError(f"keys and values must have the same length, got {keys.shape[0]} and {values.shape[0]}")
    n = int(keys.shape[0])
    if n:
        kmin, kmax = int(keys.min()), int(keys.max())
        if kmin < 0 or kmax >= size:
            raise InputError(f"keys must lie in [0, size) = [0, {size}); got keys in [{kmin}, {kmax}]")
        vmin, vmax = int(values.min()), int(values.max())
        if vmin < 0 or vmax >= k:
            raise InputError(f"values must lie in [0, k) = [0, {k}); got values in [{vmin}, {vmax}]")
        dup = _first_duplicate(keys, size, use_numba)
        if dup is not None:
            raise InputError(f"keys must be distinct; position {dup} appears more than once")
    # split by shard (the tables do not depend on the order of the keys)
    if shards == 1:
        parts = [(keys, values)]
    else:
        sid = shard_of_positions(keys, shards, seed)
        idx = np.argsort(sid, kind="stable")
        bounds = np.searchsorted(sid[idx], np.arange(shards + 1))
        parts = [(keys[idx[bounds[s] : bounds[s + 1]]], values[idx[bounds[s] : bounds[s + 1]]]) for s in range(shards)]
    tasks = []
    for s, (ks, vs) in enumerate(parts):
        m = int(con.num_cells(int(ks.shape[0]), c))
        if m > MAX_CELLS:
            raise InputError(f"a shard needs {m} cells, more than {MAX_CELLS}; use more shards")
        tasks.append((con.name, ks.astype(np.uint64), vs.astype(np.uint16), t, m, _shard_base_seed(seed, s), max_attempts, use_numba))
    if workers is None:  # processes pay off only for large layers
        nworkers = min(shards, os.cpu_count() or 1) if n >= PARALLEL_MIN_KEYS else 1
    else:
        nworkers = min(workers, shards)
    if nworkers <= 1 or shards == 1:
        results = [_solve_shard(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=nworkers) as pool:
            results = list(pool.map(_solve_shard, tasks))
    out = []
    for (ks, _), task, (sseed, cells, aux) in zip(parts, tasks, (r[:3] for r in results)):
        out.append(
            Shard(
                n=int(ks.shape[0]),
                m=task[4],
                seed=int(sseed),
                cells=_frozen(cells, np.uint16),
                aux=_frozen(aux, np.uint8),
            )
        )
    return BloomierFilter(k=k, t=t, size=size, seed=seed, construction=con.name, shards=tuple(out))


# --------------------------------------------------------------------------- the filter


class BloomierFilter:
    """An immutable Bloomier filter over positions ``[0, size)``; build with :func:`build`,
    load with :meth:`from_bytes` or :meth:`from_parts`.

    Attributes: ``n`` (keys), ``k``, ``t``, ``size``, ``seed`` (base seed), ``construction``
    (name), ``shards`` (tuple of :class:`Shard`), ``block_bits``.
    """

    def __init__(
        self,
        *,
        k: int,
        t: int,
        size: int,
        seed: int,
        construction: str,
        shards: Sequence[Shard],
        block_bits: int = BLOCK_BITS,
    ) -> None:
        self.k = int(k)
        self.t = int(t)
        self.size = int(size)
        self.seed = int(seed)
        self.block_bits = int(block_bits)
        self._con: Construction = get_construction(construction)
        self.construction: str = self._con.name
        self.shards: tuple[Shard, ...] = tuple(shards)
        self.n = int(sum(s.n for s in self.shards))
        self._packed: tuple | None = None
        self._np_decoders: dict[int, Any] = {}
        self._bytes: bytes | None = None

    def __repr__(self) -> str:
        m = sum(s.m for s in self.shards)
        return (
            f"BloomierFilter(n={self.n}, k={self.k}, t={self.t}, size={self.size}, m={m}, "
            f"shards={len(self.shards)}, construction={self.construction!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BloomierFilter):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    @property
    def m(self) -> int:
        """Total number of cells over all shards."""
        return int(sum(s.m for s in self.shards))

    # ---- internal helpers
    def _fast(self, use_numba: bool | None) -> bool:
        """Whether to use this module's multi-shard numba kernels (paper construction)."""
        return bool(getattr(self._con, "supports_block_decode", False)) and _use_numba(use_numba)

    def _kw(self, use_numba: bool | None) -> dict:
        return {"use_numba": use_numba} if getattr(self._con, "supports_use_numba", False) else {}

    def _tables(self) -> tuple:
        """(cells back to back as uint8 or uint16, offsets, ms, seed words) for the kernels."""
        if self._packed is None:
            dt = np.uint8 if self.t <= 8 else np.uint16
            cells = np.concatenate([s.cells.astype(dt) for s in self.shards])
            ms = np.array([s.m for s in self.shards], dtype=np.int64)
            offs = np.concatenate([[0], np.cumsum(ms)[:-1]]).astype(np.int64)
            sws = np.array([seed_word(s.seed) for s in self.shards], dtype=np.uint64)
            self._packed = (cells, offs, ms, sws)
        return self._packed

    def _block_plan(self) -> tuple[np.ndarray, np.ndarray]:
        """(shard of every block, blocks ordered by shard)."""
        nblocks = ((self.size - 1) >> self.block_bits) + 1
        bshard = shard_of_blocks(np.arange(nblocks, dtype=np.uint64), len(self.shards), self.seed)
        order = np.argsort(bshard, kind="stable").astype(np.int64)
        return bshard, order

    def _runs(self) -> list[tuple[int, int, int]]:
        """Maximal runs (lo, hi, shard) of consecutive positions in one shard, covering [0, size)."""
        if len(self.shards) == 1:
            return [(0, self.size, 0)]
        bshard, _ = self._block_plan()
        cut = np.flatnonzero(bshard[1:] != bshard[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [bshard.shape[0]]])
        bb = self.block_bits
        return [(int(a) << bb, min(int(b) << bb, self.size), int(bshard[a])) for a, b in zip(starts, ends)]

    def _raw(self, positions: np.ndarray, use_numba: bool | None) -> np.ndarray:
        """Raw t-bit words (uint16) for int64 positions already validated."""
        sid = shard_of_positions(positions, len(self.shards), self.seed, self.block_bits)
        out = np.empty(positions.shape[0], np.uint16)
        if self._fast(use_numba):
            cells, offs, ms, sws = self._tables()
            _paper._nb_lookup(cells, offs, ms, sws, (1 << self.t) - 1, sid, positions.astype(np.uint64), out)
            return out
        for s, sh in enumerate(self.shards):
            sel = np.flatnonzero(sid == s) if len(self.shards) > 1 else slice(None)
            out[sel] = self._con.lookup(sh.cells, sh.aux, self.t, sh.seed, positions[sel], **self._kw(use_numba))
        return out

    def _decode_run(self, sh: Shard, lo: int, lut: np.ndarray, out: np.ndarray, use_numba: bool | None) -> None:
        """out[i] = lut[raw(lo + i)] for positions of one shard (generic construction path)."""
        con = self._con
        if hasattr(con, "decode_lut"):
            kw = self._kw(use_numba)
            if hasattr(con, "np_decoder") and not _use_numba(use_numba) and sh.m:
                key = id(sh)
                if key not in self._np_decoders:
                    self._np_decoders[key] = con.np_decoder(sh.cells, self.t, sh.seed)
                kw["decoder"] = self._np_decoders[key]
            con.decode_lut(sh.cells, self.t, sh.seed, lo, lut, out, **kw)
        elif lut.dtype == np.float32:
            con.decode_into(sh.cells, sh.aux, self.t, self.k, sh.seed, lo, lut[: self.k], out, **self._kw(use_numba))
        else:
            for a in range(0, out.shape[0], _CHUNK):
                b = min(out.shape[0], a + _CHUNK)
                keys = np.arange(lo + a, lo + b, dtype=np.uint64)
                out[a:b] = lut[con.lookup(sh.cells, sh.aux, self.t, sh.seed, keys, **self._kw(use_numba))]

    def _decode_lut(self, lut: np.ndarray, out: np.ndarray, use_numba: bool | None) -> None:
        """out[p] = lut[raw(p)] for every position p (lut has 2**t entries)."""
        if self._fast(use_numba):
            cells, offs, ms, sws = self._tables()
            bshard, order = self._block_plan()
            _paper._nb_decode_blocks(
                cells, offs, ms, sws, (1 << self.t) - 1, self.block_bits, order, bshard, self.size, lut, out
            )
            return
        if hasattr(self._con, "np_decoder") and not _use_numba(use_numba):
            for where, raw in self._np_batches():
                if isinstance(where, slice):
                    np.take(lut, raw, out=out[where], mode="wrap")
                else:
                    out[where] = np.take(lut, raw, mode="wrap")
            return
        for lo, hi, s in self._runs():
            self._decode_run(self.shards[s], lo, lut, out[lo:hi], use_numba)

    def _np_batches(self) -> Iterator[tuple[slice | np.ndarray, np.ndarray]]:
        """Numpy path of constructions with ``np_decoder``: yield (index, raw words) covering
        every position once; index is a slice or an int64 position array. A shard's blocks are
        batched into steps of NP_STEP positions, so each shard's table stays in cache."""
        con = self._con
        step = _paper.NP_STEP
        if len(self.shards) == 1:
            sh = self.shards[0]
            if sh.m == 0:
                empty = np.full(step, (1 << self.t) - 1, np.uint16)
                for lo in range(0, self.size, step):
                    hi = min(self.size, lo + step)
                    yield slice(lo, hi), empty[: hi - lo]
                return
            dec = con.np_decoder(sh.cells, self.t, sh.seed)
            for lo in range(0, self.size, step):
                hi = min(self.size, lo + step)
                yield slice(lo, hi), dec.raw(lo, hi - lo)
            return
        bshard, order = self._block_plan()
        bb = self.block_bits
        per = max(1, step >> bb)
        inner = np.arange(1 << bb, dtype=np.uint64)
        bounds = np.searchsorted(bshard[order], np.arange(len(self.shards) + 1))
        for s, sh in enumerate(self.shards):
            blocks = order[bounds[s] : bounds[s + 1]]  # ascending
            dec = con.np_decoder(sh.cells, self.t, sh.seed) if sh.m else None
            for j in range(0, blocks.size, per):
                pos = ((blocks[j : j + per].astype(np.uint64) << np.uint64(bb))[:, None] + inner).reshape(-1)
                if int(pos[-1]) >= self.size:
                    pos = pos[pos < np.uint64(self.size)]
                if dec is None:
                    raw = np.full(pos.shape[0], (1 << self.t) - 1, np.uint16)
                else:
                    raw = dec.raw(0, 0, positions=pos)
                yield pos.view(np.int64), raw

    # ---- public queries
    def query(self, positions: Any, *, use_numba: bool | None = None) -> np.ndarray:
        """Return the stored value (int64) of each position, or -1 where the filter answers empty.

        Raises:
            InputError: ``positions`` is not an integer array or has values outside ``[0, size)``.
        """
        pos = np.asarray(positions)
        shape = pos.shape
        pos = _as_int_array("positions", pos.reshape(-1))
        if pos.size and (int(pos.min()) < 0 or int(pos.max()) >= self.size):
            raise InputError(f"positions must lie in [0, size) = [0, {self.size}); got [{pos.min()}, {pos.max()}]")
        raw = self._raw(pos, use_numba).astype(np.int64)
        raw[raw >= self.k] = -1
        return raw.reshape(shape)

    def _check_shape(self, shape: Any) -> tuple[int, ...]:
        try:
            shp = tuple(int(d) for d in shape)
        except TypeError:
            shp = (int(shape),)
        if any(d < 0 for d in shp) or math.prod(shp) != self.size:
            raise InputError(f"shape {shp} has {math.prod(shp)} positions, the filter has size {self.size}")
        return shp

    def reconstruct(
        self, shape: Any, codebook: Any, out: np.ndarray | None = None, *, use_numba: bool | None = None
    ) -> np.ndarray:
        """Decode the whole layer: ``codebook[value]`` where the filter answers, 0 elsewhere.

        Args:
            shape: the layer's shape; its product must equal ``size``.
            codebook: ``k`` centroids (cast to float32).
            out: optional C-contiguous float32 array of ``shape`` to write into.
        Returns:
            A float32 array of ``shape`` (``out`` if given). The numba path writes straight into
            it; the numpy path works in chunks of 65536 positions, so peak memory stays close
            to the output size.
        Raises:
            InputError: wrong shape, codebook length, or ``out``.
        """
        shp = self._check_shape(shape)
        cb = np.asarray(codebook, dtype=np.float32).reshape(-1)
        if cb.shape[0] != self.k:
            raise InputError(f"codebook must have k = {self.k} entries, got {cb.shape[0]}")
        if out is None:
            out = np.empty(shp, dtype=np.float32)
        elif (
            not isinstance(out, np.ndarray)
            or out.dtype != np.float32
            or out.shape != shp
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise InputError(f"out must be a writeable C-contiguous float32 array of shape {shp}")
        lut = np.zeros(1 << self.t, dtype=np.float32)
        lut[: self.k] = cb
        self._decode_lut(lut, out.reshape(-1), use_numba)
        return out

    def reconstruct_indices(self, shape: Any, *, use_numba: bool | None = None) -> np.ndarray:
        """Decode the whole layer as cluster indices: int16 array of ``shape``, -1 where empty.

        Raises:
            InputError: the product of ``shape`` differs from ``size``.
        """
        shp = self._check_shape(shape)
        out = np.empty(shp, dtype=np.int16)
        self._decode_lut(self._index_lut(), out.reshape(-1), use_numba)
        return out

    def _index_lut(self) -> np.ndarray:
        lut = np.full(1 << self.t, -1, dtype=np.int16)
        lut[: self.k] = np.arange(self.k, dtype=np.int16)
        return lut

    def count_false_positives(self, *, use_numba: bool | None = None) -> int:
        """Return the number of non-key positions the filter answers with a value
        (all positions answered with a value, minus ``n``)."""
        if self._fast(use_numba):
            cells, offs, ms, sws = self._tables()
            bshard, order = self._block_plan()
            total = _paper._nb_count_blocks(
                cells, offs, ms, sws, (1 << self.t) - 1, self.block_bits, order, bshard, self.size, self.k
            )
            return int(total) - self.n
        if hasattr(self._con, "np_decoder") and not _use_numba(use_numba):
            total = 0
            for _, raw in self._np_batches():
                total += int(np.count_nonzero(raw < self.k))
            return total - self.n
        lut = self._index_lut()
        buf = np.empty(_CHUNK * 16, np.int16)
        total = 0
        for lo, hi, s in self._runs():
            for a in range(lo, hi, buf.shape[0]):
                b = min(hi, a + buf.shape[0])
                self._decode_run(self.shards[s], a, lut, buf[: b - a], use_numba)
                total += int(np.count_nonzero(buf[: b - a] >= 0))
        return total - self.n

    # ---- serialization
    def params(self) -> dict[str, Any]:
        """Every parameter needed to decode, without the cells (JSON-able)."""
        return {
            "format": "weightless-bloomier",
            "version": VERSION,
            "construction": self.construction,
            "construction_code": int(self._con.code),
            "k": self.k,
            "t": self.t,
            "size": self.size,
            "n": self.n,
            "seed": self.seed,
            "block_bits": self.block_bits,
            "shards": [{"n": s.n, "m": s.m, "seed": s.seed, "aux_len": int(s.aux.shape[0])} for s in self.shards],
        }

    def header_bytes(self) -> bytes:
        """The serialized header and shard records (everything of :meth:`to_bytes` but the
        cells and aux); for S = 1 it is 64 bytes."""
        return self.to_bytes()[: HEADER_SIZE + SHARD_RECORD_SIZE * len(self.shards)]

    def to_bytes(self) -> bytes:
        """Serialize (see the module docstring). Same filter => identical bytes."""
        if self._bytes is None:
            recs = b"".join(_SHARD.pack(s.n, s.m, s.seed, int(s.aux.shape[0])) for s in self.shards)
            body = b"".join(pack_cells(s.cells, self.t) + s.aux.tobytes() for s in self.shards)
            head = _HEAD.pack(
                MAGIC,
                VERSION,
                self._con.code,
                self.t,
                self.block_bits,
                self.k,
                len(self.shards),
                self.size,
                self.n,
                self.seed,
                0,
            )
            crc = zlib.crc32(body, zlib.crc32(recs, zlib.crc32(head[: HEADER_SIZE - 4])))
            self._bytes = head[: HEADER_SIZE - 4] + struct.pack("<I", crc) + recs + body
        return self._bytes

    @property
    def nbytes(self) -> int:
        """``len(self.to_bytes())``."""
        return len(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "BloomierFilter":
        """Parse bytes written by :meth:`to_bytes`.

        Raises:
            FormatError (a subclass: BadMagicError, UnsupportedVersionError, TruncatedError,
            FieldError, ChecksumError): the bytes are not a valid filter. Every length is
            checked against the data before anything is allocated.
        """
        return cls._parse(data, None)

    @classmethod
    def _parse(cls, data: bytes | bytearray | memoryview, unpacked: Sequence[np.ndarray] | None) -> "BloomierFilter":
        """:meth:`from_bytes`; ``unpacked`` are the shards' cells when the caller packed these
        bytes from them itself (the entropy decoder), which saves unpacking them again."""
        try:
            mv = memoryview(data).cast("B")
        except TypeError as exc:
            raise FormatError(f"expected bytes, got {type(data).__name__}") from exc
        if len(mv) < HEADER_SIZE:
            raise TruncatedError(f"filter: {len(mv)} bytes, shorter than the {HEADER_SIZE}-byte header")
        magic, ver, code, t, bb, k, S, size, n, seed, crc = _HEAD.unpack_from(mv, 0)
        if magic != MAGIC:
            raise BadMagicError(f"filter: bad magic {bytes(magic)!r}, expected {MAGIC!r}")
        if ver != VERSION:
            raise UnsupportedVersionError(f"filter: format version {ver}, this reader supports {VERSION}")
        if not 1 <= S <= MAX_SHARDS:
            raise FieldError(f"filter: {S} shards, expected 1..{MAX_SHARDS}")
        rec_end = HEADER_SIZE + SHARD_RECORD_SIZE * S
        if len(mv) < rec_end:
            raise TruncatedError(f"filter: {len(mv)} bytes, shard records end at {rec_end}")
        recs = [_SHARD.unpack_from(mv, HEADER_SIZE + SHARD_RECORD_SIZE * i) for i in range(S)]
        shards_meta = [{"n": r[0], "m": r[1], "seed": r[2], "aux_len": r[3]} for r in recs]
        try:
            con = get_construction(int(code))
        except InputError as exc:
            raise FieldError(f"filter: unknown construction code {code}") from exc
        params = {
            "version": ver,
            "construction": con.name,
            "k": k,
            "t": t,
            "size": size,
            "n": n,
            "seed": seed,
            "block_bits": bb,
            "shards": shards_meta,
        }
        _validate_params(params)
        pos = rec_end
        spans = []
        for meta in shards_meta:
            cl = packed_size(meta["m"], t)
            spans.append((pos, pos + cl, pos + cl + meta["aux_len"]))
            pos += cl + meta["aux_len"]
        if len(mv) < pos:
            raise TruncatedError(f"filter: {len(mv)} bytes, the declared tables end at {pos}")
        if len(mv) > pos:
            raise FieldError(f"filter: {len(mv) - pos} trailing bytes after the tables")
        if zlib.crc32(mv[HEADER_SIZE:], zlib.crc32(mv[: HEADER_SIZE - 4])) != crc:
            raise ChecksumError("filter: CRC-32 of the header, shard records and tables does not match")
        if unpacked is None:
            cells = [unpack_cells(mv[a:b], meta["m"], t) for (a, b, _), meta in zip(spans, shards_meta)]
        else:
            cells = list(unpacked)
        aux = [np.frombuffer(mv[b:e], dtype=np.uint8).copy() for (_, b, e) in spans]
        f = cls.from_parts(params, cells, aux)
        f._bytes = bytes(mv)
        return f

    @classmethod
    def from_parts(cls, params: dict, cells: Sequence[np.ndarray], aux: Sequence[np.ndarray]) -> "BloomierFilter":
        """Rebuild a filter from :meth:`params` and each shard's ``cells`` and ``aux`` arrays.

        A construction may define ``validate(cells, aux, t, n, m)`` (raising FormatError or
        InputError) to check its ``aux``; it is called for every shard.

        Raises:
            FieldError: a parameter is missing, of the wrong type or inconsistent, or a cells /
                aux array has the wrong length, dtype or a cell ``>= 2**t``.
            FormatError: the construction's ``validate`` rejects a shard.
        """
        _validate_params(params)
        metas = params["shards"]
        if not isinstance(cells, (list, tuple)) or not isinstance(aux, (list, tuple)):
            raise FieldError("cells and aux must be lists of arrays, one per shard")
        if len(cells) != len(metas) or len(aux) != len(metas):
            raise FieldError(f"expected {len(metas)} cells and aux arrays, got {len(cells)} and {len(aux)}")
        t = int(params["t"])
        validate = getattr(get_construction(params["construction"]), "validate", None)
        shards = []
        for i, (meta, c, a) in enumerate(zip(metas, cells, aux)):
            c = np.asarray(c)
            a = np.asarray(a)
            if c.ndim != 1 or c.shape[0] != meta["m"] or (c.size and c.dtype.kind not in "iu"):
                raise FieldError(f"shard {i}: cells must be {meta['m']} integers, got {c.dtype} array of shape {c.shape}")
            if c.size and (int(c.min()) < 0 or int(c.max()) >= (1 << t)):
                raise FieldError(f"shard {i}: cells must lie in [0, 2**{t})")
            if a.ndim != 1 or a.shape[0] != meta["aux_len"] or (a.size and a.dtype != np.uint8):
                raise FieldError(f"shard {i}: aux must be {meta['aux_len']} uint8, got {a.dtype} array of shape {a.shape}")
            sh = Shard(
                n=int(meta["n"]),
                m=int(meta["m"]),
                seed=int(meta["seed"]),
                cells=_frozen(c, np.uint16),
                aux=_frozen(a, np.uint8),
            )
            if validate is not None:  # the construction checks its own aux (optional hook)
                try:
                    validate(sh.cells, sh.aux, t, sh.n, sh.m)
                except FormatError:
                    raise
                except (InputError, ValueError) as exc:
                    raise FieldError(f"shard {i}: {exc}") from exc
            shards.append(sh)
        return cls(
            k=int(params["k"]),
            t=t,
            size=int(params["size"]),
            seed=int(params["seed"]),
            construction=str(params["construction"]),
            shards=shards,
            block_bits=int(params.get("block_bits", BLOCK_BITS)),
        )


def _validate_params(params: Any) -> None:
    """Check a params dict (from :meth:`BloomierFilter.params` or a header); FieldError if bad."""
    if not isinstance(params, dict):
        raise FieldError(f"filter params must be a dict, got {type(params).__name__}")

    def need(name: str, lo: int, hi: int) -> int:
        v = params.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
            raise FieldError(f"filter params: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        return int(v)

    if "version" in params and params["version"] != VERSION:
        raise UnsupportedVersionError(f"filter params: version {params['version']!r}, expected {VERSION}")
    name = params.get("construction")
    try:
        con = get_construction(name if isinstance(name, str) else -1)
    except InputError as exc:
        raise FieldError(f"filter params: unknown construction {name!r}") from exc
    if "construction_code" in params and params["construction_code"] != con.code:
        raise FieldError(f"filter params: construction code {params['construction_code']!r} != {con.code}")
    k = need("k", 1, 1 << 15)
    t = need("t", 1, 16)
    try:
        _check_kt(k, t)
    except InputError as exc:
        raise FieldError(f"filter params: {exc}") from exc
    size = need("size", 1, MAX_SIZE)
    n = need("n", 0, size)
    need("seed", 0, _MASK64)
    bb = need("block_bits", 0, 62) if "block_bits" in params else BLOCK_BITS
    if bb != BLOCK_BITS:
        raise FieldError(f"filter params: block_bits {bb}, this version uses {BLOCK_BITS}")
    metas = params.get("shards")
    if not isinstance(metas, (list, tuple)) or not 1 <= len(metas) <= MAX_SHARDS:
        raise FieldError(f"filter params: shards must be a list of 1..{MAX_SHARDS} records")
    total = 0
    for i, meta in enumerate(metas):
        if not isinstance(meta, dict):
            raise FieldError(f"filter params: shard {i} must be a dict")
        for f, hi in (("n", MAX_CELLS), ("m", MAX_CELLS), ("seed", _MASK64), ("aux_len", 1 << 40)):
            v = meta.get(f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= hi:
                raise FieldError(f"filter params: shard {i} field {f} must be an integer in [0, {hi}], got {v!r}")
        if meta["n"] > meta["m"] or (meta["n"] > 0 and meta["m"] < 3):
            raise FieldError(f"filter params: shard {i} has n = {meta['n']} keys but m = {meta['m']} cells")
        total += int(meta["n"])
    if total != n:
        raise FieldError(f"filter params: shard key counts sum to {total}, header says n = {n}")
