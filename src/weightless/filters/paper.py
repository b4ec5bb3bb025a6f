"""The paper's construction: a 3-hypergraph solved by peeling (Chazelle et al. 2004; the
linear-time variant of Charles & Chellapilla 2008), ``m = ceil(c n)`` cells, ``c = 1.25``.

Hashing (through :mod:`weightless.filters.hashing`), for a key ``v`` and shard seed ``s``::

    z  = hash64(v, s)                  w = z * MIX   (mod 2**64)
    q  = m // 3                        (three segments [0,q), [q,2q), [2q,m))
    h0 = reduce32(z >> 32, q)          h1 = q + reduce32(z & 0xFFFFFFFF, q)
    h2 = 2q + reduce32(w >> 32, m - 2q)
    hM = z & (2**t - 1)
    raw(v) = X[h0] ^ X[h1] ^ X[h2] ^ hM

(``reduce32(u, n) = (u * n) >> 32`` for a 32-bit ``u``). One cell per segment makes the three
cells of a key distinct. ``h0`` and ``h1`` come from the top bits of the two halves of ``z``,
``h2`` from the high half of ``z * MIX`` (which depends on every bit of ``z``), and the mask
from the lowest bits of ``z``, which barely move ``h1``: one 64-bit hash per position.

Peeling is *round-synchronous*: in each round every cell of degree one is taken at once; a
key reachable from several such cells is peeled through the lowest-numbered one. Cells are then
assigned in reverse round order. The result does not depend on the order inside a round (nor on
the order of the keys), so the numba kernel (candidate lists, O(n + m) in total) and the numpy
fallback (one vectorised pass per round) produce identical tables; cells that no key peels
stay zero.

Decoding: the numba kernels hash a step of 1024 positions into index buffers (this loop is
vectorised with AVX-512/AVX2), then look up a ``uint8`` working copy of the cells (when
``t <= 8``), so the lookups touch a table of ``m`` bytes. Keeping that table in the CPU's L2
cache is the job of sharding (see :mod:`weightless.filters.sharding`): shards are assigned per
block of positions, and a shard's blocks are decoded together; a decode in several threads
gives each thread a contiguous piece of the blocks (grouped by shard). The kernels live in
:mod:`.paper_kernels`. Building peels in numba, recording each peeled edge's row in peel order
so that the assignment reads them sequentially, with software prefetches of the edges and
cells a batch will touch. The numpy fallback does the same arithmetic in place on steps of
16384 positions (its buffers stay in L2).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

from .._compat import use_numba as _use_numba
from ..errors import FieldError, InputError
from . import paper_kernels as _k
from .base import ConstructionBase, Solution, register
from .hashing import hash64, seed_word
from .paper_numpy import _M32, _MASK64, _MIX, _S32, MIX, NP_STEP, _NpDecoder
from .parallel import run_pieces

__all__ = ["PaperConstruction", "PAPER", "num_cells", "cell_indices", "MIX"]

#: Below this many keys, m = ceil(c n) + 8: small tables of ceil(1.25 n) cells fail to peel
#: for up to ~80% of seeds (n ~ 32); with 8 more cells at most ~30% fail (measured, 200 seeds).
SMALL_N = 256


def num_cells(n: int, c: float | None = None) -> int:
    """Return the number of cells for ``n`` keys: 0 for n = 0, else ``ceil(c n)`` (c = 1.25 by
    default), plus 8 for n < 256 so that small tables peel for most seeds.

    Raises:
        InputError: ``c`` is not a finite number > 1, or n < 0.
    """
    if n < 0:
        raise InputError(f"number of keys must be >= 0, got {n}")
    if c is None:
        c = 1.25
    if (
        isinstance(c, bool)
        or not isinstance(c, (int, float, np.floating, np.integer))
        or not math.isfinite(c)
        or c <= 1.0
    ):
        raise InputError(f"paper construction needs a table factor c > 1 (m = ceil(c n)); got {c!r}")
    if n == 0:
        return 0
    m = math.ceil(float(c) * n)
    if n < SMALL_N:
        m += 8
    return m


def cell_indices(keys: np.ndarray, t: int, m: int, seed: int) -> tuple[np.ndarray, ...]:
    """Return ``(h0, h1, h2, hM)`` for ``keys`` (numpy, int64 arrays); ``m`` must be >= 3."""
    z = hash64(np.asarray(keys).astype(np.uint64, copy=False), int(seed) & _MASK64)
    q = np.uint64(m // 3)
    q2 = np.uint64(m - 2 * (m // 3))
    h0 = ((z >> _S32) * q) >> _S32
    h1 = (((z & _M32) * q) >> _S32) + q
    h2 = ((((z * _MIX) >> _S32) * q2) >> _S32) + q + q
    hm = z & np.uint64((1 << t) - 1)
    return h0.astype(np.int64), h1.astype(np.int64), h2.astype(np.int64), hm.astype(np.int64)


# --------------------------------------------------------------------------- numpy fallback


def _np_peel(e0: np.ndarray, e1: np.ndarray, e2: np.ndarray, m: int) -> tuple[list, int]:
    """Round-synchronous peeling with numpy; returns ([(edges, cells) per round], n_peeled)."""
    n = e0.shape[0]
    allc = np.concatenate([e0, e1, e2])
    alle = np.tile(np.arange(n, dtype=np.int64), 3)
    deg = np.bincount(allc, minlength=m).astype(np.int64)
    xr = np.zeros(m, dtype=np.int64)
    np.bitwise_xor.at(xr, allc, alle)
    rounds = []
    npeeled = 0
    cand = np.flatnonzero(deg == 1)
    while cand.size:
        edges = xr[cand]
        # cand is ascending, so the first occurrence of an edge is its lowest cell
        uedges, first = np.unique(edges, return_index=True)
        pcells = cand[first]
        rounds.append((uedges, pcells))
        npeeled += uedges.size
        rc = np.concatenate([e0[uedges], e1[uedges], e2[uedges]])
        np.subtract.at(deg, rc, 1)
        np.bitwise_xor.at(xr, rc, np.tile(uedges, 3))
        touched = np.unique(rc)
        cand = touched[deg[touched] == 1]
    return rounds, npeeled


# --------------------------------------------------------------------------- construction


class _Tables:
    """Decode-ready tables of a paper filter: for numba, every shard's cells back to back
    (uint8 when t <= 8, else uint16) with offsets, sizes and seed words; for numpy, one
    :class:`_NpDecoder` per non-empty shard."""

    def __init__(self, shards: Sequence[Any], t: int, numba: bool) -> None:
        self.numba = numba
        self.tmask = (1 << t) - 1
        if numba:
            dt = np.uint8 if t <= 8 else np.uint16
            self.ms = np.array([s.m for s in shards], dtype=np.int64)
            self.offs = np.zeros(len(shards), np.int64)
            np.cumsum(self.ms[:-1], out=self.offs[1:])
            self.cells = np.empty(int(self.ms.sum()), dt)
            for s, o in zip(shards, self.offs):
                self.cells[o : o + s.m] = s.cells
            self.sws = np.array([seed_word(s.seed) for s in shards], dtype=np.uint64)
        else:
            # one set of step buffers for all shards (416 KiB; a filter may have 2**14 shards):
            # the shards are decoded one after the other, each result used before the next
            self.decoders = []
            first: _NpDecoder | None = None
            for sh in shards:
                dec = _NpDecoder(sh.cells, t, sh.seed, first) if sh.m else None
                first = first or dec
                self.decoders.append(dec)


def _pieces(plan: Any, threads: int) -> list[np.ndarray]:
    """Cut the blocks (grouped by shard) into ``threads`` contiguous pieces of equal length."""
    nb = plan.order.shape[0]
    threads = max(1, min(threads, nb // 16 or 1))
    cuts = [nb * i // threads for i in range(threads + 1)]
    return [plan.order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


class PaperConstruction(ConstructionBase):
    """The paper's construction (name ``"paper"``, file code 1). See the module docstring."""

    name = "paper"
    code = 1

    def num_cells(self, n: int, c: float | None) -> int:
        """Cells for ``n`` keys; see :func:`num_cells`."""
        return num_cells(n, c)

    def validate(self, cells: np.ndarray, aux: np.ndarray, t: int, n: int, m: int) -> None:
        """Reject shard tables this construction never writes: 1 or 2 cells (the three segments
        need m >= 3) and any aux bytes. Raises FieldError."""
        if 0 < m < 3:
            raise FieldError(f"paper construction: a table of {m} cells (expected 0 or at least 3)")
        if aux.shape[0]:
            raise FieldError(f"paper construction: {aux.shape[0]} aux bytes (expected none)")

    def solve(
        self, keys: np.ndarray, values: np.ndarray, t: int, m: int, seed: int, *, use_numba: bool | None = None
    ) -> Solution | None:
        """Peel the hypergraph of ``keys`` for ``seed``; return the table (uint16 cells, empty
        aux), or None if this seed leaves a non-empty 2-core (retry with another seed)."""
        n = int(keys.shape[0])
        if n == 0:
            return Solution(np.zeros(m, np.uint16), np.zeros(0, np.uint8))
        if m < 3 or n >= 1 << 31:
            return None
        if _use_numba(use_numba):
            cells = _k.solve(
                np.asarray(keys).astype(np.uint64, copy=False),
                np.asarray(values).astype(np.int32, copy=False),
                seed_word(int(seed) & _MASK64),
                m,
                (1 << t) - 1,
            )
            return None if cells is None else Solution(cells, np.zeros(0, np.uint8))
        h0, h1, h2, hm = cell_indices(keys, t, m, seed)
        rounds, npeeled = _np_peel(h0, h1, h2, m)
        if npeeled < n:
            return None
        cells = np.zeros(m, dtype=np.int64)
        vh = np.asarray(values).astype(np.int64) ^ hm
        for edges, pcells in reversed(rounds):
            cells[pcells] = vh[edges] ^ cells[h0[edges]] ^ cells[h1[edges]] ^ cells[h2[edges]]
        return Solution(cells.astype(np.uint16), np.zeros(0, np.uint8))

    def lookup(
        self, cells: np.ndarray, aux: np.ndarray, t: int, seed: int, keys: np.ndarray, *, use_numba: bool | None = None
    ) -> np.ndarray:
        """Raw t-bit words (uint16) for ``keys`` in a table of ``len(cells)`` cells."""
        keys = np.asarray(keys).astype(np.uint64, copy=False).reshape(-1)
        m = int(cells.shape[0])
        tmask = (1 << t) - 1
        if m == 0:
            return np.full(keys.shape[0], tmask, dtype=np.uint16)
        if _use_numba(use_numba):
            out = np.empty(keys.shape[0], np.uint16)
            _k.nb_lookup(np.ascontiguousarray(cells, dtype=np.uint16), m, seed_word(int(seed) & _MASK64), tmask, keys, out)
            return out
        h0, h1, h2, hm = cell_indices(keys, t, m, seed)
        c = cells.astype(np.int64, copy=False)
        return (c[h0] ^ c[h1] ^ c[h2] ^ hm).astype(np.uint16)

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
        """``out[i] = lut[raw(start + i)]`` (``lut`` has ``2**t`` entries), one table."""
        n = out.shape[0]
        m = int(cells.shape[0])
        if m == 0:
            out[:] = lut[(1 << t) - 1]
            return
        if _use_numba(use_numba):
            tab = cells.astype(np.uint8) if t <= 8 else np.ascontiguousarray(cells, dtype=np.uint16)
            _k.nb_decode_window(tab, m, seed_word(int(seed) & _MASK64), (1 << t) - 1, int(start), n, lut, out)
            return
        dec = _NpDecoder(cells, t, seed)
        for lo in range(0, n, NP_STEP):
            hi = min(n, lo + NP_STEP)
            np.take(lut, dec.raw(start + lo, hi - lo), out=out[lo:hi], mode="wrap")

    def prepare(self, shards: Sequence[Any], t: int, *, use_numba: bool | None = None) -> _Tables:
        """Decode-ready tables (see :class:`_Tables`)."""
        return _Tables(shards, t, _use_numba(use_numba))

    def decode_layer(
        self, tables: _Tables, t: int, plan: Any, lut: np.ndarray, out: np.ndarray, *, use_numba: bool | None = None, threads: int = 1
    ) -> None:
        """``out[p] = lut[raw(p)]`` for every position: numba kernels over each piece of the
        blocks (grouped by shard, so each shard's table stays in cache) in up to ``threads``
        threads, or the numpy path in steps of :data:`NP_STEP` positions."""
        if tables.numba:
            run_pieces(
                _k.nb_decode_blocks,
                [
                    (tables.cells, tables.offs, tables.ms, tables.sws, tables.tmask, plan.block_bits, blocks, plan.block_shard, plan.size, lut, out)
                    for blocks in _pieces(plan, threads)
                ],
            )
            return
        for where, raw in _np_batches(tables, plan):
            if isinstance(where, slice):
                np.take(lut, raw, out=out[where], mode="wrap")
            else:
                out[where] = np.take(lut, raw, mode="wrap")

    def count_below(
        self, tables: _Tables, t: int, plan: Any, k: int, *, use_numba: bool | None = None, threads: int = 1
    ) -> int:
        """Number of positions whose raw word is below ``k``."""
        if tables.numba:
            counts = run_pieces(
                _k.nb_count_blocks,
                [
                    (tables.cells, tables.offs, tables.ms, tables.sws, tables.tmask, plan.block_bits, blocks, plan.block_shard, plan.size, k)
                    for blocks in _pieces(plan, threads)
                ],
            )
            return int(sum(counts))
        return sum(int(np.count_nonzero(raw < k)) for _, raw in _np_batches(tables, plan))


def _np_batches(tables: _Tables, plan: Any) -> Iterator[tuple[slice | np.ndarray, np.ndarray]]:
    """Numpy path: yield (index, raw words) covering every position once; index is a slice or
    an int64 position array. A shard's blocks are batched into steps of NP_STEP positions, so
    each shard's table stays in cache."""
    step = NP_STEP
    empty = np.full(step, tables.tmask, np.uint16)
    if plan.shards == 1:
        dec = tables.decoders[0]
        for lo in range(0, plan.size, step):
            hi = min(plan.size, lo + step)
            yield slice(lo, hi), (empty[: hi - lo] if dec is None else dec.raw(lo, hi - lo))
        return
    bb = plan.block_bits
    per = max(1, step >> bb)
    inner = np.arange(1 << bb, dtype=np.uint64)
    for s, dec in enumerate(tables.decoders):
        blocks = plan.order[plan.bounds[s] : plan.bounds[s + 1]]  # ascending
        for j in range(0, blocks.size, per):
            pos = ((blocks[j : j + per].astype(np.uint64) << np.uint64(bb))[:, None] + inner).reshape(-1)
            if int(pos[-1]) >= plan.size:
                pos = pos[pos < np.uint64(plan.size)]
            raw = np.full(pos.shape[0], tables.tmask, np.uint16) if dec is None else dec.raw(0, 0, positions=pos)
            yield pos.view(np.int64), raw


PAPER = register(PaperConstruction())
