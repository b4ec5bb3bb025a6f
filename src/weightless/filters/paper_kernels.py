"""Numba kernels of the paper construction (see :mod:`.paper` for the exact function).

Building: the edges of every key (:func:`nb_edges`), round-synchronous peeling
(:func:`nb_peel`) and the assignment in reverse round order (:func:`nb_assign`).
Decoding: whole blocks of positions (:func:`nb_decode_blocks`, :func:`nb_count_blocks`) and
arbitrary keys (:func:`nb_lookup`). Every kernel releases the GIL, so the filter runs pieces of
one decode in several threads.
"""

from __future__ import annotations

import numpy as np

from .._compat import HAVE_NUMBA, njit
from .hashing import hash64_scalar

if HAVE_NUMBA:  # pragma: no branch
    from .kernel_intrinsics import _prefetch
else:  # pragma: no cover

    def _prefetch(arr, idx):  # type: ignore[no-redef,misc]
        """No-op without numba."""

#: Positions hashed per step of the decode kernels (index buffers stay in L1).
DECODE_STEP = 1024
#: Degree-one cells handled per batch of the peeling and assignment kernels: the loads of a
#: batch are independent, so the CPU overlaps their cache misses.
PEEL_BATCH = 64


@njit
def nb_edges(keys, values, sw, q, q2, tmask, E):
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


@njit
def _nb_peel_init(E, st, shift, max_degree):
    """Fill the packed cell states: degree (bits >= shift) and XOR of incident edge numbers
    (bits < shift). False if a degree exceeds ``max_degree`` (the packing would overflow)."""
    one = np.int64(1) << shift
    n = E.shape[0]
    for i in range(n):
        if i + 16 < n:  # the cells of a later edge, so their misses overlap
            _prefetch(st, E[i + 16, 0])
            _prefetch(st, E[i + 16, 1])
            _prefetch(st, E[i + 16, 2])
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
def _nb_peel_rounds(E, q, st, shift, cand, nxt, counts, prow, order_v, ends):
    """The peeling rounds (see :func:`nb_peel`); returns (n_rounds, n_peeled). ``prow`` gets
    the edges' rows in peel order, so the assignment reads them sequentially."""
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
                        order_v[npeeled + cnt] = v
                        _prefetch(E, e * 4)
                        cnt += 1
                for x in range(cnt):  # 2: their edges
                    e = eb[x]
                    rows[x, 0] = E[e, 0]
                    rows[x, 1] = E[e, 1]
                    rows[x, 2] = E[e, 2]
                    prow[npeeled + x, 0] = rows[x, 0]
                    prow[npeeled + x, 1] = rows[x, 1]
                    prow[npeeled + x, 2] = rows[x, 2]
                    prow[npeeled + x, 3] = E[e, 3]
                    _prefetch(st, rows[x, 0])
                    _prefetch(st, rows[x, 1])
                    _prefetch(st, rows[x, 2])
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


def nb_peel(E: np.ndarray, m: int, q: int, st: np.ndarray, shift: int, max_degree: int) -> tuple:
    """Round-synchronous peeling. Returns (prow, order_v, round_ends, n_peeled): the edges' rows
    in peel order (rounds concatenated), the cell each was peeled through, and where each round
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
    prow = np.empty((n, 4), np.int32)
    order_v = np.empty(n, np.int32)
    ends = np.empty(n + 1, np.int64)
    nrounds, npeeled = _nb_peel_rounds(E, q, st, shift, cand, np.empty(m, np.int32), counts, prow, order_v, ends)
    return prow, order_v, ends[:nrounds], npeeled


@njit
def nb_assign(prow, order_v, ends, m):
    """Assign the cells in reverse round order (``prow``: the edges' rows in peel order). The
    edges of one round never read each other's peel cells, so each round is processed in
    batches of independent loads."""
    cells = np.zeros(m, np.uint16)
    acc = np.empty(PEEL_BATCH, np.uint16)
    for r in range(ends.shape[0] - 1, -1, -1):
        lo = ends[r - 1] if r > 0 else 0
        hi = ends[r]
        for j0 in range(lo, hi, PEEL_BATCH):
            cnt = min(PEEL_BATCH, hi - j0)
            for x in range(cnt):
                j = j0 + x
                if j + PEEL_BATCH < hi:
                    _prefetch(cells, prow[j + PEEL_BATCH, 0])
                    _prefetch(cells, prow[j + PEEL_BATCH, 1])
                    _prefetch(cells, prow[j + PEEL_BATCH, 2])
                acc[x] = np.uint16(prow[j, 3]) ^ cells[prow[j, 0]] ^ cells[prow[j, 1]] ^ cells[prow[j, 2]]
            for x in range(cnt):
                cells[order_v[j0 + x]] = acc[x]
    return cells


@njit(inline="always")
def nb_hash_step(base, n, sw, q, q2, tmask, ia, ib, ic, im):
    """Cell indices (uint32 buffers: unsigned indices need no wrap-around checks) and masks
    (buffer of the table's dtype) of positions base .. base + n - 1. Vectorises.

    Every range reduction is written as a product of two zero-extended 32-bit words (``q``
    and ``q2`` are below 2**32: :data:`.params.MAX_CELLS`), so LLVM emits one 32x32->64
    multiply (``vpmuludq``) per reduction instead of a 64x64 emulation of three."""
    qq = np.uint64(np.uint32(q))
    qq2 = np.uint64(np.uint32(q2))
    iq = np.uint32(q)
    for j in range(n):
        x = np.uint64(base + j) + sw
        z = x ^ (x >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        ia[j] = np.uint32((np.uint64(np.uint32(z >> np.uint64(32))) * qq) >> np.uint64(32))
        ib[j] = np.uint32((np.uint64(np.uint32(z)) * qq) >> np.uint64(32)) + iq
        w = z * np.uint64(0xD6E8FEB86659FD93)
        ic[j] = np.uint32((np.uint64(np.uint32(w >> np.uint64(32))) * qq2) >> np.uint64(32)) + iq + iq
        im[j] = z & np.uint64(tmask)


@njit
def nb_decode_blocks(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, lut, out):
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
            nb_hash_step(p0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
            o = out[p0 : p0 + L]  # a view: its index j is known >= 0, no wrap-around fix-up
            for j in range(L):
                o[j] = lut[tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]]


@njit
def nb_count_blocks(cells, offs, ms, sws, tmask, block_bits, blocks, block_shard, size, k):
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
            nb_hash_step(p0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
            cnt = 0
            for j in range(L):
                r = tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]
                cnt += np.int64(r < k)
            total += cnt
    return total


@njit
def nb_lookup(cells, m, sw, tmask, keys, out):
    """Raw words for arbitrary keys in one table of ``m`` cells (seed word ``sw``)."""
    q = m // 3
    for i in range(keys.shape[0]):
        z = hash64_scalar(np.uint64(keys[i]), sw)
        a = np.int64(((z >> np.uint64(32)) * np.uint64(q)) >> np.uint64(32))
        b = np.int64(((z & np.uint64(0xFFFFFFFF)) * np.uint64(q)) >> np.uint64(32)) + q
        w = z * np.uint64(0xD6E8FEB86659FD93)
        c = np.int64(((w >> np.uint64(32)) * np.uint64(m - 2 * q)) >> np.uint64(32)) + 2 * q
        out[i] = np.uint16(np.uint16(cells[a]) ^ np.uint16(cells[b]) ^ np.uint16(cells[c])) ^ np.uint16(z & np.uint64(tmask))


@njit
def nb_decode_window(tab, m, sw, tmask, start, n, lut, out):
    """``out[i] = lut[raw(start + i)]`` for i < n, one table (numba)."""
    ia = np.empty(DECODE_STEP, np.uint32)
    ib = np.empty(DECODE_STEP, np.uint32)
    ic = np.empty(DECODE_STEP, np.uint32)
    im = np.empty(DECODE_STEP, tab.dtype)
    q = m // 3
    for i0 in range(0, n, DECODE_STEP):
        L = min(DECODE_STEP, n - i0)
        nb_hash_step(start + i0, L, sw, q, m - 2 * q, tmask, ia, ib, ic, im)
        o = out[i0 : i0 + L]
        for j in range(L):
            o[j] = lut[tab[ia[j]] ^ tab[ib[j]] ^ tab[ic[j]] ^ im[j]]


def solve(keys: np.ndarray, values: np.ndarray, sw: np.uint64, m: int, tmask: int) -> np.ndarray | None:
    """Cells (uint16, length m) of the table of ``keys`` (uint64) -> ``values`` (int32) for
    seed word ``sw``, or None if the hypergraph does not peel."""
    n = keys.shape[0]
    q = m // 3
    E = np.empty((n, 4), np.int32)
    nb_edges(keys, values, sw, q, m - 2 * q, tmask, E)
    npeeled = -1
    if n < 1 << 26:
        prow, order_v, ends, npeeled = nb_peel(E, m, q, np.zeros(m, np.uint32), 26, 63)
    if npeeled < 0:
        prow, order_v, ends, npeeled = nb_peel(E, m, q, np.zeros(m, np.int64), 32, 1 << 30)
    if npeeled < n:
        return None
    del E
    return nb_assign(prow, order_v, ends, m)
