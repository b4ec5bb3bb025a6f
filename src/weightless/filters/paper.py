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
cache is the job of sharding (see :mod:`weightless.filters.filter`): shards are assigned per
block of positions, and a shard's blocks are decoded together. The numpy fallback does the same
arithmetic in place on steps of 16384 positions (its buffers stay in L2).
"""

from __future__ import annotations

import math

import numpy as np

from .._compat import njit
from .._compat import use_numba as _use_numba
from ..errors import FieldError, InputError
from .base import Solution, register
from .hashing import hash64, hash64_scalar, seed_word

__all__ = ["PaperConstruction", "PAPER", "num_cells", "cell_indices", "MIX"]

#: Odd multiplier giving the third cell: h2 comes from the high half of z * MIX.
MIX = 0xD6E8FEB86659FD93
_MIX = np.uint64(MIX)
_MASK64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: Positions hashed per step of the numba decode kernels (index buffers stay in L1).
DECODE_STEP = 1024
#: Positions per step of the numpy decode (buffers stay in L2).
NP_STEP = 16384
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


# --------------------------------------------------------------------------- numba kernels


@njit
def _nb_edges(keys, values, sw, q, q2, tmask, E):
    """E[i] = (h0, h1, h2, value ^ hM) of key i."""
    qq = np.uint64(q)
    qq2 = np.uint64(q2)
    for i in range(keys.shape[0]):
        z = hash64_scalar(np.uint64(keys[i]), sw)
        E[i, 0] = np.int32(((z >> np.uint64(32)) * qq) >> np.uint64(32))
        E[i, 1] = np.int32(((z & np.uint64(0xFFFFFFFF)) * qq) >> np.uint64(32)) + np.int32(q)
        E[i, 2] = np.int32((((z * np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(32)) * qq2) >> np.uint64(32)) + np.int32(
            2 * q
        )
        E[i, 3] = np.int32(values[i]) ^ np.int32(z & np.uint64(tmask))


#: Degree-one cells handled per batch of the peeling and assignment kernels: the loads of a
#: batch are independent, so the CPU overlaps their cache misses.
PEEL_BATCH = 64


@njit
def _nb_peel_init(E, st, shift, max_degree):
    """Fill the packed cell states: degree (bits >= shift) and XOR of incident edge numbers
    (bits < shift). False if a degree exceeds ``max_degree`` (the packing would overflow)."""
    one = np.int64(1) << shift
    for i in range(E.shape[0]):
        for j in range(3):
            a = E[i, j]
            sa = (np.int64(st[a]) + one) ^ i
            if (sa >> shift) > max_degree:
                return False
            st[a] = sa
    return True


@njit
def _nb_peel_scan(st, shift, m, q, cand, counts):
    """Degree-one cells of segment j into cand[j q :], their number into counts[j]."""
    n0 = 0
    n1 = 0
    n2 = 0
    for v in range(m):
        if (np.int64(st[v]) >> shift) == 1:
            if v < q:
                cand[n0] = v
                n0 += 1
            elif v < 2 * q:
                cand[q + n1] = v
                n1 += 1
            else:
                cand[2 * q + n2] = v
                n2 += 1
    counts[0] = n0
    counts[1] = n1
    counts[2] = n2


@njit
def _nb_peel_rounds(E, q, st, shift, cand, nxt, counts, order_e, order_v, ends):
    """The peeling rounds (see :func:`_nb_peel`); returns (n_rounds, n_peeled)."""
    one = np.int64(1) << shift
    low = one - 1
    nrounds = 0
    eb = np.empty(PEEL_BATCH, np.int64)
    rows = np.empty((PEEL_BATCH, 3), np.int32)
    npeeled = 0
    while counts[0] + counts[1] + counts[2] > 0:
        n0 = 0
        n1 = 0
        n2 = 0
        for seg in range(3):
            b0 = seg * q
            for j0 in range(0, counts[seg], PEEL_BATCH):
                j1 = min(j0 + PEEL_BATCH, counts[seg])
                cnt = 0
                for jv in range(j0, j1):  # 1: the cells
                    v = cand[b0 + jv]
                    sv = np.int64(st[v])
                    if (sv >> shift) == 1:
                        e = sv & low
                        eb[cnt] = e
                        order_e[npeeled + cnt] = e
                        order_v[npeeled + cnt] = v
                        cnt += 1
                for x in range(cnt):  # 2: their edges
                    e = eb[x]
                    rows[x, 0] = E[e, 0]
                    rows[x, 1] = E[e, 1]
                    rows[x, 2] = E[e, 2]
                for x in range(cnt):  # 3: remove the edges from their cells
                    e = eb[x]
                    a = rows[x, 0]
                    sa = (np.int64(st[a]) - one) ^ e
                    st[a] = sa
                    if (sa >> shift) == 1:
                        nxt[n0] = a
                        n0 += 1
                    a = rows[x, 1]
                    sa = (np.int64(st[a]) - one) ^ e
                    st[a] = sa
                    if (sa >> shift) == 1:
                        nxt[q + n1] = a
                        n1 += 1
                    a = rows[x, 2]
                    sa = (np.int64(st[a]) - one) ^ e
                    st[a] = sa
                    if (sa >> shift) == 1:
                        nxt[2 * q + n2] = a
                        n2 += 1
                npeeled += cnt
        ends[nrounds] = npeeled
        nrounds += 1
        tmp = cand
        cand = nxt
        nxt = tmp
        counts[0] = n0
        counts[1] = n1
        counts[2] = n2
    return nrounds, npeeled


def _nb_peel(E: np.ndarray, m: int, q: int, st: np.ndarray, shift: int, max_degree: int) -> tuple:
    """Round-synchronous peeling. Returns (order_e, order_v, round_ends, n_peeled): the edges in
    peel order (rounds concatenated), the cell each was peeled through, and where each round
    ends in that order; n_peeled = -1 if a cell degree exceeds ``max_degree`` (the packed
    state would overflow: call again with an int64 ``st``, shift 32).

    ``st`` (zeros, length m) packs a cell's degree (bits >= shift) and the XOR of its incident
    edge numbers (bits < shift) in one word: one cache miss per cell visit. Each round visits
    the degree-one cells of segment 0, then 1, then 2: an edge has one cell per segment, so the
    first visit that finds it is through its lowest degree-one cell, as in the numpy version.
    Within one segment's visit the degree-one cells are independent (each one's only edge has
    no other cell in that segment), so they are processed in batches: read the cells, then the
    edges, then update the edges' cells. (Three small kernels: one big one takes LLVM ~10 s to
    compile.)
    """
    n = E.shape[0]
    if not _nb_peel_init(E, st, shift, max_degree):
        return None, None, None, -1
    cand = np.empty(m, np.int32)
    counts = np.zeros(3, np.int64)
    _nb_peel_scan(st, shift, m, q, cand, counts)
    order_e = np.empty(n, np.int32)
    order_v = np.empty(n, np.int32)
    ends = np.empty(n + 1, np.int64)
    nrounds, npeeled = _nb_peel_rounds(E, q, st, shift, cand, np.empty(m, np.int32), counts, order_e, order_v, ends)
    return order_e, order_v, ends[:nrounds], npeeled


@njit
def _nb_assign(order_e, order_v, ends, E, m):
    """Assign the cells in reverse round order. The edges of one round never read each
    other's peel cells, so each round is processed in batches of independent loads."""
    cells = np.zeros(m, np.uint16)
    acc = np.empty(PEEL_BATCH, np.uint16)
    for r in range(ends.shape[0] - 1, -1, -1):
        lo = ends[r - 1] if r > 0 else 0
        hi = ends[r]
        for j0 in range(lo, hi, PEEL_BATCH):
            cnt = min(PEEL_BATCH, hi - j0)
            for x in range(cnt):
                e = order_e[j0 + x]
                acc[x] = np.uint16(E[e, 3]) ^ cells[E[e, 0]] ^ cells[E[e, 1]] ^ cells[E[e, 2]]
            for x in range(cnt):
                cells[order_v[j0 + x]] = acc[x]
    return cells


@njit
def _nb_hash_step(base, n, sw, q, q2, tmask, ia, ib, ic, im):
    """Cell indices (uint32 buffers: unsigned indices need no wrap-around checks) and masks
    (buffer of the table's dtype) of positions base .. base + n - 1. Vectorises."""
    qq = np.uint64(q)
    qq2 = np.uint64(q2)
    iq = np.uint32(q)
    for j in range(n):
        x = np.uint64(base + j) + sw
        z = x ^ (x >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        ia[j] = np.uint32(((z >> np.uint64(32)) * qq) >> np.uint64(32))
        ib[j] = np.uint32(((z & np.uint64(0xFFFFFFFF)) * qq) >> np.uint64(32)) + iq
        ic[j] = np.uint32((((z * np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(32)) * qq2) >> np.uint64(32)) + iq + iq
        im[j] = z & np.uint64(tmask)


@njit
def _nb_decode_blocks(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, lut, out):
    """For each block index in ``blocks`` (positions [b << block_bits, ...) clipped to size),
    write ``lut[raw]`` into ``out`` at the same positions. ``cells`` holds every shard's table
    back to back (shard s at offs[s], ms[s] cells); a shard with m = 0 answers ``lut[tmask]``."""
    ia = np.empty(DECODE_STEP, np.uint32)
    ib = np.empty(DECODE_STEP, np.uint32)
    ic = np.empty(DECODE_STEP, np.uint32)
    im = np.empty(DECODE_STEP, cells.dtype)
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
        for p0 in range(lo, hi, DECODE_STEP):
            L = min(DECODE_STEP, hi - p0)
            _nb_hash_step(p0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
            o = out[p0 : p0 + L]  # a view: its index j is known >= 0, no wrap-around fix-up
            for j in range(L):
                o[j] = lut[tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]]


@njit
def _nb_count_blocks(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, k):
    """Number of positions in the given blocks whose raw word is < k."""
    ia = np.empty(DECODE_STEP, np.uint32)
    ib = np.empty(DECODE_STEP, np.uint32)
    ic = np.empty(DECODE_STEP, np.uint32)
    im = np.empty(DECODE_STEP, cells.dtype)
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
        for p0 in range(lo, hi, DECODE_STEP):
            L = min(DECODE_STEP, hi - p0)
            _nb_hash_step(p0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
            cnt = 0
            for j in range(L):
                r = tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]
                cnt += np.int64(r < k)
            total += cnt
    return total


@njit
def _nb_lookup(cells, offs, ms, sws, tmask, shard_of, keys, out):
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
        a = np.int64(((z >> np.uint64(32)) * np.uint64(q)) >> np.uint64(32))
        b = np.int64(((z & np.uint64(0xFFFFFFFF)) * np.uint64(q)) >> np.uint64(32)) + q
        w = z * np.uint64(0xD6E8FEB86659FD93)
        c = np.int64(((w >> np.uint64(32)) * np.uint64(m - 2 * q)) >> np.uint64(32)) + 2 * q
        out[i] = np.uint16(np.uint16(cells[o + a]) ^ np.uint16(cells[o + b]) ^ np.uint16(cells[o + c])) ^ np.uint16(
            z & np.uint64(tmask)
        )


@njit
def _decode_window(tab, m, sw, tmask, start, n, lut, out):
    """``out[i] = lut[raw(start + i)]`` for i < n, one table (numba)."""
    ia = np.empty(DECODE_STEP, np.uint32)
    ib = np.empty(DECODE_STEP, np.uint32)
    ic = np.empty(DECODE_STEP, np.uint32)
    im = np.empty(DECODE_STEP, tab.dtype)
    q = m // 3
    for i0 in range(0, n, DECODE_STEP):
        L = min(DECODE_STEP, n - i0)
        _nb_hash_step(start + i0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
        o = out[i0 : i0 + L]
        for j in range(L):
            o[j] = lut[tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]]


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


class _NpDecoder:
    """In-place numpy evaluation of raw words for consecutive positions (one table).

    About 28 passes over L2-resident buffers per step; each segment of the table is its own
    view, so no offsets are added.
    """

    def __init__(self, cells: np.ndarray, t: int, seed: int) -> None:
        m = int(cells.shape[0])
        q = m // 3
        tab = cells.astype(np.uint8 if t <= 8 else np.uint16)
        self.t0, self.t1, self.t2 = tab[:q], tab[q : 2 * q], tab[2 * q :]
        self.q = np.uint64(q)
        self.q2 = np.uint64(m - 2 * q)
        self.sw = int(seed_word(int(seed) & _MASK64))
        self.tmask = np.uint64((1 << t) - 1)
        self.ar = np.arange(NP_STEP, dtype=np.uint64)
        self.z = np.empty(NP_STEP, np.uint64)
        self.u = np.empty(NP_STEP, np.uint64)
        self.r = np.empty(NP_STEP, tab.dtype)
        self.g = np.empty(NP_STEP, tab.dtype)

    def raw(self, start: int, n: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Raw words for positions [start, start + n), n <= NP_STEP, or for ``positions``
        (uint64, at most NP_STEP of them) when given; returns a view of a buffer."""
        if positions is not None:
            n = positions.shape[0]
        z, u, r, g = self.z[:n], self.u[:n], self.r[:n], self.g[:n]
        iu = u.view(np.int64)
        if positions is not None:
            np.add(positions, np.uint64(self.sw), out=z)
        else:
            np.add(self.ar[:n], np.uint64((int(start) + self.sw) & _MASK64), out=z)
        np.right_shift(z, np.uint64(30), out=u)
        np.bitwise_xor(z, u, out=z)
        np.multiply(z, _M1, out=z)
        np.right_shift(z, np.uint64(27), out=u)
        np.bitwise_xor(z, u, out=z)
        np.multiply(z, _M2, out=z)
        np.right_shift(z, np.uint64(31), out=u)
        np.bitwise_xor(z, u, out=z)
        np.right_shift(z, _S32, out=u)
        np.multiply(u, self.q, out=u)
        np.right_shift(u, _S32, out=u)
        np.take(self.t0, iu, out=r, mode="wrap")
        np.bitwise_and(z, _M32, out=u)
        np.multiply(u, self.q, out=u)
        np.right_shift(u, _S32, out=u)
        np.take(self.t1, iu, out=g, mode="wrap")
        np.bitwise_xor(r, g, out=r)
        np.multiply(z, _MIX, out=u)
        np.right_shift(u, _S32, out=u)
        np.multiply(u, self.q2, out=u)
        np.right_shift(u, _S32, out=u)
        np.take(self.t2, iu, out=g, mode="wrap")
        np.bitwise_xor(r, g, out=r)
        np.bitwise_and(z, self.tmask, out=u)
        np.copyto(g, u, casting="unsafe")
        np.bitwise_xor(r, g, out=r)
        return r


# --------------------------------------------------------------------------- construction


class PaperConstruction:
    """The paper's construction (name ``"paper"``, file code 1). See the module docstring.

    Besides the :class:`~weightless.filters.base.Construction` protocol, every method takes an
    optional ``use_numba`` keyword (``supports_use_numba``), and the filter may call the
    multi-shard kernels of this module directly (``supports_block_decode``).
    """

    name = "paper"
    code = 1
    supports_use_numba = True
    supports_block_decode = True

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
        self,
        keys: np.ndarray,
        values: np.ndarray,
        t: int,
        m: int,
        seed: int,
        *,
        use_numba: bool | None = None,
    ) -> Solution | None:
        """Peel the hypergraph of ``keys`` for ``seed``; return the table (uint16 cells, empty
        aux), or None if this seed leaves a non-empty 2-core (retry with another seed)."""
        n = int(keys.shape[0])
        if n == 0:
            return Solution(np.zeros(m, np.uint16), np.zeros(0, np.uint8))
        if m < 3 or n >= 1 << 31:
            return None
        tmask = (1 << t) - 1
        q = m // 3
        if _use_numba(use_numba):
            E = np.empty((n, 4), np.int32)
            _nb_edges(
                np.asarray(keys).astype(np.uint64, copy=False),
                np.asarray(values).astype(np.int32, copy=False),
                seed_word(int(seed) & _MASK64),
                q,
                m - 2 * q,
                tmask,
                E,
            )
            if n < 1 << 26:
                order_e, order_v, ends, npeeled = _nb_peel(E, m, q, np.zeros(m, np.uint32), 26, 63)
            else:
                npeeled = -1
            if npeeled < 0:
                order_e, order_v, ends, npeeled = _nb_peel(E, m, q, np.zeros(m, np.int64), 32, 1 << 30)
            if npeeled < n:
                return None
            return Solution(_nb_assign(order_e, order_v, ends, E, m), np.zeros(0, np.uint8))
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
        keys = np.asarray(keys).astype(np.uint64, copy=False).reshape(-1)
        m = int(cells.shape[0])
        tmask = (1 << t) - 1
        if m == 0:
            return np.full(keys.shape[0], tmask, dtype=np.uint16)
        if _use_numba(use_numba):
            out = np.empty(keys.shape[0], np.uint16)
            _nb_lookup(
                np.ascontiguousarray(cells, dtype=np.uint16),
                np.zeros(1, np.int64),
                np.array([m], np.int64),
                np.array([seed_word(int(seed) & _MASK64)], np.uint64),
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
        self.decode_lut(cells, t, seed, start, lut, out, use_numba=use_numba)

    def np_decoder(self, cells: np.ndarray, t: int, seed: int) -> "_NpDecoder":
        """Prepared numpy-path decoder for one table (see :meth:`decode_lut`)."""
        return _NpDecoder(cells, t, seed)

    def decode_lut(
        self,
        cells: np.ndarray,
        t: int,
        seed: int,
        start: int,
        lut: np.ndarray,
        out: np.ndarray,
        *,
        use_numba: bool | None = None,
        decoder: "_NpDecoder | None" = None,
    ) -> None:
        """``out[i] = lut[raw(start + i)]`` (``lut`` has ``2**t`` entries). ``decoder`` (from
        :meth:`np_decoder` for the same table) saves re-preparing the table on each call of
        the numpy path."""
        n = out.shape[0]
        m = int(cells.shape[0])
        if m == 0:
            out[:] = lut[(1 << t) - 1]
            return
        if _use_numba(use_numba):
            tab = cells.astype(np.uint8) if t <= 8 else np.ascontiguousarray(cells, dtype=np.uint16)
            _decode_window(tab, m, seed_word(int(seed) & _MASK64), (1 << t) - 1, int(start), n, lut, out)
            return
        dec = decoder if decoder is not None else _NpDecoder(cells, t, seed)
        for lo in range(0, n, NP_STEP):
            hi = min(n, lo + NP_STEP)
            np.take(lut, dec.raw(start + lo, hi - lo), out=out[lo:hi], mode="wrap")


PAPER = register(PaperConstruction())
