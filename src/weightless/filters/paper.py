"""The paper's construction: a 3-hypergraph solved by peeling (Chazelle et al. 2004; the
linear-time variant of Charles & Chellapilla 2008), ``m = ceil(c n)`` cells, ``c = 1.25``.

Hashing (all through :mod:`weightless.filters.hashing`), for a key ``v`` and shard seed ``s``::

    z  = hash64(v, s)                  y = hash64(z, s ^ SALT)
    q  = m // 3                        (three segments [0,q), [q,2q), [2q,m))
    h0 = reduce32(z >> 32, q)          h1 = q + reduce32(z & 0xFFFFFFFF, q)
    h2 = 2q + reduce32(y >> 32, m - 2q)
    hM = y & (2**t - 1)
    raw(v) = X[h0] ^ X[h1] ^ X[h2] ^ hM

(``reduce32(w, n) = (w * n) >> 32`` for a 32-bit ``w``). One cell per segment makes the three
cells of a key distinct. The second hash ``y`` keeps ``h2`` and the mask independent of ``h0``
and ``h1``.

Peeling is *round-synchronous*: in each round every cell of degree one is taken at once; a
key reachable from several such cells is peeled through the lowest-numbered one. Cells are then
assigned in reverse round order. The result does not depend on the order inside a round, so the
numba kernel (candidate lists, O(n + m) in total) and the numpy fallback (one vectorised pass per
round) produce identical tables; cells that no key peels stay zero.

Decoding: the numba kernels hash a block of 1024 positions into index buffers (this loop is
vectorised with AVX-512/AVX2), then gather from a ``uint8`` working copy of the cells (when
``t <= 8``), so the gathers touch a table of ``m`` bytes. Keeping that table in the CPU's L2
cache is the job of sharding (see :mod:`weightless.filters.filter`): shards are assigned per
block of positions, and a shard's blocks are decoded together.
"""

from __future__ import annotations

import math

import numpy as np

from .._compat import njit
from .._compat import use_numba as _use_numba
from ..errors import InputError
from .base import Solution, register
from .hashing import hash64, hash64_scalar, seed_word

__all__ = ["PaperConstruction", "PAPER", "num_cells", "cell_indices", "SALT"]

#: XORed into the shard seed for the second hash ``y``.
SALT = 0x6A09E667F3BCC909
_MASK64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
#: Positions hashed per step of the decode kernels (index buffers stay in L1).
DECODE_STEP = 1024
#: Extra cells for tiny tables, where m = ceil(c n) cannot be peeled (e.g. n = 3, m = 4).
SMALL_N = 32


def num_cells(n: int, c: float | None = None) -> int:
    """Return the number of cells for ``n`` keys: 0 for n = 0, else ``ceil(c n)`` (c = 1.25 by
    default), raised for n < 32 to ``n + 8`` at least so that tiny tables can be peeled.

    Raises:
        InputError: ``c`` is not a finite number > 1, or n < 0.
    """
    if n < 0:
        raise InputError(f"number of keys must be >= 0, got {n}")
    if c is None:
        c = 1.25
    if not isinstance(c, (int, float, np.floating, np.integer)) or not math.isfinite(c) or c <= 1.0:
        raise InputError(f"paper construction needs a table factor c > 1 (m = ceil(c n)); got {c!r}")
    if n == 0:
        return 0
    m = math.ceil(float(c) * n)
    if n < SMALL_N:
        m = max(m, n + 8)
    return max(m, 3)


def _seed_words(seed: int) -> tuple[np.uint64, np.uint64]:
    seed = int(seed) & _MASK64
    return seed_word(seed), seed_word(seed ^ SALT)


def cell_indices(keys: np.ndarray, t: int, m: int, seed: int) -> tuple[np.ndarray, ...]:
    """Return ``(h0, h1, h2, hM)`` for ``keys`` (numpy; int64 cell indices, int64 masks).

    ``m`` must be >= 3.
    """
    seed = int(seed) & _MASK64
    z = hash64(np.asarray(keys).astype(np.uint64, copy=False), seed)
    y = hash64(z, seed ^ SALT)
    q = np.uint64(m // 3)
    q2 = np.uint64(m - 2 * (m // 3))
    h0 = ((z >> _S32) * q) >> _S32
    h1 = (((z & _M32) * q) >> _S32) + q
    h2 = (((y >> _S32) * q2) >> _S32) + q + q
    hm = y & np.uint64((1 << t) - 1)
    return h0.astype(np.int64), h1.astype(np.int64), h2.astype(np.int64), hm.astype(np.int64)


# --------------------------------------------------------------------------- numba kernels


@njit
def _nb_edges(keys, sw, sw2, q, q2, tmask, e0, e1, e2, hm):
    qq = np.uint64(q)
    qq2 = np.uint64(q2)
    for i in range(keys.shape[0]):
        z = hash64_scalar(np.uint64(keys[i]), sw)
        y = hash64_scalar(z, sw2)
        e0[i] = np.int32(((z >> np.uint64(32)) * qq) >> np.uint64(32))
        e1[i] = np.int32(((z & np.uint64(0xFFFFFFFF)) * qq) >> np.uint64(32)) + np.int32(q)
        e2[i] = np.int32(((y >> np.uint64(32)) * qq2) >> np.uint64(32)) + np.int32(2 * q)
        hm[i] = np.uint16(y & np.uint64(tmask))


@njit
def _nb_peel(e0, e1, e2, m):
    """Round-synchronous peeling. Returns (order, peel_cell, n_peeled): edges in peel order
    (rounds concatenated) and the cell each edge was peeled through."""
    n = e0.shape[0]
    deg = np.zeros(m, np.int32)
    xr = np.zeros(m, np.int32)
    for i in range(n):
        deg[e0[i]] += 1
        deg[e1[i]] += 1
        deg[e2[i]] += 1
        xr[e0[i]] ^= i
        xr[e1[i]] ^= i
        xr[e2[i]] ^= i
    cand = np.empty(m, np.int32)
    nc = 0
    for v in range(m):
        if deg[v] == 1:
            cand[nc] = v
            nc += 1
    nxt = np.empty(m, np.int32)
    peel_cell = np.full(n, -1, np.int32)
    order = np.empty(n, np.int32)
    npeeled = 0
    while nc > 0:
        # phase 1: every degree-one cell proposes its edge; the lowest cell wins
        for j in range(nc):
            v = cand[j]
            if deg[v] == 1:
                e = xr[v]
                pc = peel_cell[e]
                if pc < 0 or v < pc:
                    peel_cell[e] = v
        # phase 2: remove the winning edges
        nn = 0
        for j in range(nc):
            v = cand[j]
            if deg[v] == 1:
                e = xr[v]
                if peel_cell[e] == v:
                    order[npeeled] = e
                    npeeled += 1
                    a = e0[e]
                    deg[a] -= 1
                    xr[a] ^= e
                    if deg[a] == 1:
                        nxt[nn] = a
                        nn += 1
                    a = e1[e]
                    deg[a] -= 1
                    xr[a] ^= e
                    if deg[a] == 1:
                        nxt[nn] = a
                        nn += 1
                    a = e2[e]
                    deg[a] -= 1
                    xr[a] ^= e
                    if deg[a] == 1:
                        nxt[nn] = a
                        nn += 1
        tmp = cand
        cand = nxt
        nxt = tmp
        nc = nn
    return order, peel_cell, npeeled


@njit
def _nb_assign(order, peel_cell, e0, e1, e2, hm, values, m):
    cells = np.zeros(m, np.uint16)
    for j in range(order.shape[0] - 1, -1, -1):
        e = order[j]
        v = peel_cell[e]
        cells[v] = np.uint16(values[e]) ^ hm[e] ^ cells[e0[e]] ^ cells[e1[e]] ^ cells[e2[e]]
    return cells


@njit
def _nb_hash_step(base, n, sw, sw2, q, q2, tmask, ia, ib, ic, im):
    qq = np.uint64(q)
    qq2 = np.uint64(q2)
    iq = np.int32(q)
    for j in range(n):
        x = np.uint64(base + j) + sw
        z = x ^ (x >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        x = z + sw2
        y = x ^ (x >> np.uint64(30))
        y = y * np.uint64(0xBF58476D1CE4E5B9)
        y = y ^ (y >> np.uint64(27))
        y = y * np.uint64(0x94D049BB133111EB)
        y = y ^ (y >> np.uint64(31))
        ia[j] = np.int32(((z >> np.uint64(32)) * qq) >> np.uint64(32))
        ib[j] = np.int32(((z & np.uint64(0xFFFFFFFF)) * qq) >> np.uint64(32)) + iq
        ic[j] = np.int32(((y >> np.uint64(32)) * qq2) >> np.uint64(32)) + iq + iq
        im[j] = np.int32(y & np.uint64(tmask))


@njit
def _nb_decode_blocks(cells, offs, ms, sws, sw2s, tmask, block_bits, blocks, block_shard, size, lut, out):
    """For each block index in ``blocks`` (positions [b << block_bits, ...) clipped to size),
    write ``lut[raw]`` into ``out`` at the same positions. ``cells`` holds every shard's table
    back to back (shard s at offs[s], ms[s] cells); a shard with m = 0 answers ``lut[tmask]``."""
    ia = np.empty(DECODE_STEP, np.int32)
    ib = np.empty(DECODE_STEP, np.int32)
    ic = np.empty(DECODE_STEP, np.int32)
    im = np.empty(DECODE_STEP, np.int32)
    bsize = np.int64(1) << block_bits
    for bi in range(blocks.shape[0]):
        b = blocks[bi]
        lo = np.int64(b) * bsize
        hi = min(lo + bsize, size)
        s = block_shard[b]
        m = ms[s]
        if m == 0:
            empty = lut[tmask]
            for p in range(lo, hi):
                out[p] = empty
            continue
        q = m // 3
        tab = cells[offs[s] : offs[s] + m]
        sw = sws[s]
        sw2 = sw2s[s]
        for p0 in range(lo, hi, DECODE_STEP):
            L = min(DECODE_STEP, hi - p0)
            _nb_hash_step(p0, L, sw, sw2, q, m - 2 * q, tmask, ia, ib, ic, im)
            for j in range(L):
                r = np.int32(tab[ia[j]]) ^ np.int32(tab[ib[j]]) ^ np.int32(tab[ic[j]]) ^ im[j]
                out[p0 + j] = lut[r]


@njit
def _nb_count_blocks(cells, offs, ms, sws, sw2s, tmask, block_bits, blocks, block_shard, size, k):
    """Number of positions in the given blocks whose raw word is < k."""
    ia = np.empty(DECODE_STEP, np.int32)
    ib = np.empty(DECODE_STEP, np.int32)
    ic = np.empty(DECODE_STEP, np.int32)
    im = np.empty(DECODE_STEP, np.int32)
    bsize = np.int64(1) << block_bits
    total = 0
    for bi in range(blocks.shape[0]):
        b = blocks[bi]
        lo = np.int64(b) * bsize
        hi = min(lo + bsize, size)
        s = block_shard[b]
        m = ms[s]
        if m == 0:
            continue
        q = m // 3
        tab = cells[offs[s] : offs[s] + m]
        sw = sws[s]
        sw2 = sw2s[s]
        for p0 in range(lo, hi, DECODE_STEP):
            L = min(DECODE_STEP, hi - p0)
            _nb_hash_step(p0, L, sw, sw2, q, m - 2 * q, tmask, ia, ib, ic, im)
            cnt = 0
            for j in range(L):
                r = np.int32(tab[ia[j]]) ^ np.int32(tab[ib[j]]) ^ np.int32(tab[ic[j]]) ^ im[j]
                cnt += np.int64(r < k)
            total += cnt
    return total


@njit
def _nb_lookup(cells, offs, ms, sws, sw2s, tmask, shard_of, keys, out):
    """Raw words for arbitrary keys; ``shard_of[i]`` is the shard of ``keys[i]``."""
    for i in range(keys.shape[0]):
        s = shard_of[i]
        m = ms[s]
        if m == 0:
            out[i] = np.uint16(tmask)
            continue
        q = m // 3
        o = offs[s]
        z = hash64_scalar(np.uint64(keys[i]), sws[s])
        y = hash64_scalar(z, sw2s[s])
        a = np.int64(((z >> np.uint64(32)) * np.uint64(q)) >> np.uint64(32))
        b = np.int64(((z & np.uint64(0xFFFFFFFF)) * np.uint64(q)) >> np.uint64(32)) + q
        c = np.int64(((y >> np.uint64(32)) * np.uint64(m - 2 * q)) >> np.uint64(32)) + 2 * q
        out[i] = np.uint16(cells[o + a] ^ cells[o + b] ^ cells[o + c] ^ np.uint16(y & np.uint64(tmask)))


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
        re_ = np.tile(uedges, 3)
        np.subtract.at(deg, rc, 1)
        np.bitwise_xor.at(xr, rc, re_)
        touched = np.unique(rc)
        cand = touched[deg[touched] == 1]
    return rounds, npeeled


# --------------------------------------------------------------------------- construction


class PaperConstruction:
    """The paper's construction (name ``"paper"``, file code 1). See the module docstring."""

    name = "paper"
    code = 1
    supports_use_numba = True
    supports_block_decode = True

    def num_cells(self, n: int, c: float | None) -> int:
        """Cells for ``n`` keys; see :func:`num_cells`."""
        return num_cells(n, c)

    # ---- construction
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
        """Peel the hypergraph of ``keys`` for ``seed``; return the table, or None if this seed
        leaves a non-empty 2-core (retry with another seed)."""
        n = int(keys.shape[0])
        if n == 0:
            return Solution(np.zeros(m, np.uint16), np.zeros(0, np.uint8))
        if m < 3:
            return None
        tmask = (1 << t) - 1
        q = m // 3
        if _use_numba(use_numba):
            sw, sw2 = _seed_words(seed)
            e0 = np.empty(n, np.int32)
            e1 = np.empty(n, np.int32)
            e2 = np.empty(n, np.int32)
            hm = np.empty(n, np.uint16)
            _nb_edges(keys.astype(np.uint64, copy=False), sw, sw2, q, m - 2 * q, tmask, e0, e1, e2, hm)
            order, peel_cell, npeeled = _nb_peel(e0, e1, e2, m)
            if npeeled < n:
                return None
            cells = _nb_assign(order, peel_cell, e0, e1, e2, hm, values.astype(np.uint16), m)
            return Solution(cells, np.zeros(0, np.uint8))
        h0, h1, h2, hm = cell_indices(keys, t, m, seed)
        rounds, npeeled = _np_peel(h0, h1, h2, m)
        if npeeled < n:
            return None
        cells = np.zeros(m, dtype=np.int64)
        vals = values.astype(np.int64)
        for edges, pcells in reversed(rounds):
            cells[pcells] = vals[edges] ^ hm[edges] ^ cells[h0[edges]] ^ cells[h1[edges]] ^ cells[h2[edges]]
        return Solution(cells.astype(np.uint16), np.zeros(0, np.uint8))

    # ---- queries on one shard
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
        """Raw t-bit words (uint16) for ``keys`` in a table of ``len(cells)`` cells."""
        keys = np.asarray(keys).astype(np.uint64, copy=False)
        m = int(cells.shape[0])
        tmask = (1 << t) - 1
        if m == 0:
            return np.full(keys.shape[0], tmask, dtype=np.uint16)
        if _use_numba(use_numba):
            sw, sw2 = _seed_words(seed)
            out = np.empty(keys.shape[0], np.uint16)
            _nb_lookup(
                np.ascontiguousarray(cells, dtype=np.uint16),
                np.zeros(1, np.int64),
                np.array([m], np.int64),
                np.array([sw], np.uint64),
                np.array([sw2], np.uint64),
                tmask,
                np.zeros(keys.shape[0], np.int32),
                keys,
                out,
            )
            return out
        h0, h1, h2, hm = cell_indices(keys, t, m, seed)
        c = cells.astype(np.int64, copy=False)
        return (c[h0] ^ c[h1] ^ c[h2] ^ hm).astype(np.uint16)

    def decode_into(
        self,
        cells: np.ndarray,
        aux: np.ndarray,
        t: int,
        k: int,
        seed: int,
        start: int,
        codebook: np.ndarray,
        out: np.ndarray,
        *,
        use_numba: bool | None = None,
    ) -> None:
        """``out[i] = codebook[raw(start + i)]`` if the raw word is < k, else 0."""
        lut = np.zeros(1 << t, dtype=out.dtype)
        lut[:k] = np.asarray(codebook, dtype=out.dtype)[:k]
        n = out.shape[0]
        if _use_numba(use_numba):
            m = int(cells.shape[0])
            sw, sw2 = _seed_words(seed)
            if m == 0:
                out[:] = lut[(1 << t) - 1]
                return
            tab = cells.astype(np.uint8) if t <= 8 else np.ascontiguousarray(cells, dtype=np.uint16)
            _decode_window(tab, m, sw, sw2, (1 << t) - 1, int(start), n, lut, out)
            return
        self._np_decode(cells, t, k, seed, start, lut, out)

    def _np_decode(self, cells, t, k, seed, start, lut, out) -> None:
        n = out.shape[0]
        m = int(cells.shape[0])
        if m == 0:
            out[:] = lut[(1 << t) - 1]
            return
        c = cells.astype(np.int64, copy=False)
        step = 1 << 16
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            h0, h1, h2, hm = cell_indices(np.arange(start + lo, start + hi, dtype=np.uint64), t, m, seed)
            out[lo:hi] = lut[c[h0] ^ c[h1] ^ c[h2] ^ hm]


@njit
def _decode_window(tab, m, sw, sw2, tmask, start, n, lut, out):
    """``out[i] = lut[raw(start + i)]`` for i < n, one table (numba)."""
    ia = np.empty(DECODE_STEP, np.int32)
    ib = np.empty(DECODE_STEP, np.int32)
    ic = np.empty(DECODE_STEP, np.int32)
    im = np.empty(DECODE_STEP, np.int32)
    q = m // 3
    for i0 in range(0, n, DECODE_STEP):
        L = min(DECODE_STEP, n - i0)
        _nb_hash_step(start + i0, L, sw, sw2, q, m - 2 * q, tmask, ia, ib, ic, im)
        for j in range(L):
            r = np.int32(tab[ia[j]]) ^ np.int32(tab[ib[j]]) ^ np.int32(tab[ic[j]]) ^ im[j]
            out[i0 + j] = lut[r]


PAPER = register(PaperConstruction())
