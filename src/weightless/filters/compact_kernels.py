"""Numba kernels of the compact (sharded Ribbon) construction; see :mod:`.compact`.

Imported by :mod:`.compact` only when numba is available. Every kernel computes exactly the
function documented in :mod:`.compact`; the numpy paths there give identical results. The LLVM
intrinsics the kernels use are in :mod:`.kernel_intrinsics`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._compat import njit
from .hashing import hash64_scalar
from .kernel_intrinsics import _ctpop64, _cttz64, _par8, _prefetch

_M32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_CK = np.uint64(0xC28F82822B650BED)


@njit(inline="always")
def coeff(h, sw):
    """64 coefficient bits of a key with hash ``h`` in a shard with seed word ``sw``."""
    a = (h ^ sw) * _CK
    return (a ^ (a >> np.uint64(32))) | _ONE


@njit(inline="always")
def shard_word(shard, ms, tr, ssw):
    """Seed word of one shard's hashing for its cell count ``ms`` and try ``tr``."""
    return hash64_scalar(hash64_scalar(np.uint64(shard), ssw) ^ (np.uint64(ms) | (np.uint64(tr) << np.uint64(48))), ssw)


@njit
def _try_shard(hs, vals, ms, sw, t, C, R, order, cnt, out):
    """One elimination attempt for one shard: ``hs`` key hashes, ``vals`` masked values.

    Returns True and writes the ``ms`` solved cells into ``out`` on success."""
    n = hs.shape[0]
    wid = 64 if ms >= 64 else ms
    nst = np.uint64(ms - wid + 1)
    cmask = np.uint64(0xFFFFFFFFFFFFFFFF) if wid == 64 else (_ONE << np.uint64(wid)) - _ONE
    mul = (sw >> np.uint64(32)) | _ONE
    # counting sort of the keys by start slot
    for i in range(ms + 1):
        cnt[i] = 0
    for i in range(n):
        u = ((hs[i] & _M32) * mul) & _M32
        st = np.int64((u * nst) >> np.uint64(32))
        cnt[st + 1] += 1
    for i in range(ms):
        cnt[i + 1] += cnt[i]
    for i in range(n):
        u = ((hs[i] & _M32) * mul) & _M32
        st = np.int64((u * nst) >> np.uint64(32))
        order[cnt[st]] = i
        cnt[st] += 1
    for i in range(ms):
        C[i] = 0
        R[i] = 0
    # banded on-the-fly Gaussian elimination (Ribbon)
    for q in range(n):
        i = order[q]
        h = hs[i]
        u = ((h & _M32) * mul) & _M32
        s = np.int64((u * nst) >> np.uint64(32))
        c = coeff(h, sw) & cmask
        r = vals[i]
        while True:
            if C[s] == 0:
                C[s] = c
                R[s] = r
                break
            c ^= C[s]
            r ^= R[s]
            if c == 0:
                if r == 0:
                    break  # implied by earlier equations
                return False
            tz = _cttz64(c)
            c >>= tz
            s += np.int64(tz)
    # back substitution, one sliding 64-slot window per result bit
    win = np.zeros(16, np.uint64)
    for i in range(ms - 1, -1, -1):
        c = C[i]
        z = np.uint16(0)
        for j in range(t):
            w = win[j] << _ONE
            if c != 0:
                bit = (np.uint64(R[i] >> j) ^ _ctpop64(c & w)) & _ONE
                w |= bit
                z |= np.uint16(bit << np.uint64(j))
            win[j] = w
        out[i] = z
    return True


@njit
def _solve_one_shard(s, hs, vals, starts, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out):
    """Adaptive solve of shard ``s`` (not the last) into its own region of ``tmp``."""
    a = starts[s]
    b = starts[s + 1]
    ns = b - a
    o = tmp_off[s]
    if ns == 0:
        ms_out[s] = 1
        tmp[o] = 0
        return
    base = ns + int(np.ceil(ns * f0))
    step = max(1, int(ns * fstep))
    cap = tmp_off[s + 1] - o
    C = np.empty(cap, np.uint64)
    R = np.empty(cap, np.uint16)
    cnt = np.empty(cap + 1, np.int64)
    order = np.empty(ns, np.int64)
    ms_out[s] = -1
    for tr in range(max_tries):
        ms = base + tr * step
        sw = shard_word(s, ms, 0, ssw)
        if _try_shard(hs[a:b], vals[a:b], ms, sw, t, C, R, order, cnt, tmp[o : o + ms]):
            ms_out[s] = ms
            return


@njit(parallel=True, cache=False)  # a cached parallel kernel was seen to crash on reload
def _solve_shards_par(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out):
    """Shards 0..S-2 on numba's thread pool (each writes only its own region)."""
    for s in prange(nshards - 1):
        _solve_one_shard(s, hs, vals, starts, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out)


@njit
def _solve_shards_ser(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out):
    """Shards 0..S-2 one after the other."""
    for s in range(nshards - 1):
        _solve_one_shard(s, hs, vals, starts, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out)


@njit
def solve_all(hs, vals, starts, nshards, ssw, m, t, f0, fstep, max_tries, par, cells, ms_out):
    """Solve every shard; ``hs``/``vals`` grouped by shard (``starts``: S+1 boundaries).

    Shards 0..S-2 take the fewest cells that solve (in parallel if ``par``; same result); the last
    shard takes the remaining cells. Returns the last shard's try index, or -1 on failure."""
    tmp_off = np.zeros(nshards, np.int64)
    for s in range(nshards - 1):
        ns = starts[s + 1] - starts[s]
        tmp_off[s + 1] = tmp_off[s] + max(1, ns + int(np.ceil(ns * f0)) + (max_tries - 1) * max(1, int(ns * fstep)))
    tmp = np.empty(max(1, tmp_off[nshards - 1]), np.uint16)
    if nshards > 1 and par:
        _solve_shards_par(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out)
    elif nshards > 1:
        _solve_shards_ser(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out)
    off = 0
    for s in range(nshards - 1):
        ms = ms_out[s]
        if ms < 0 or off + ms > m - 1:
            return -1
        cells[off : off + ms] = tmp[tmp_off[s] : tmp_off[s] + ms]
        off += ms
    s = nshards - 1
    a = starts[s]
    b = starts[s + 1]
    ms = m - off
    if ms < max(1, b - a):
        return -1
    ms_out[s] = ms
    C = np.empty(ms, np.uint64)
    R = np.empty(ms, np.uint16)
    cnt = np.empty(ms + 1, np.int64)
    order = np.empty(max(1, b - a), np.int64)
    for tr in range(256):
        sw = shard_word(s, ms, tr, ssw)
        if _try_shard(hs[a:b], vals[a:b], ms, sw, t, C, R, order, cnt, cells[off : off + ms]):
            return tr
    return -1


@njit
def lookup(cells, offs, nst, cmask, sws, muls, nshards, tmask, keys_h, out):
    """Raw words for hashed keys (``keys_h`` = hash64(key, seed)) from row-major cells."""
    for i in range(keys_h.shape[0]):
        h = keys_h[i]
        s = np.int64(((h >> np.uint64(32)) * np.uint64(nshards)) >> np.uint64(32))
        u = ((h & _M32) * muls[s]) & _M32
        g = offs[s] + np.int64((u * nst[s]) >> np.uint64(32))
        c = coeff(h, sws[s]) & cmask[s]
        r = np.uint64(0)
        while c != 0:
            tz = _cttz64(c)
            r ^= np.uint64(cells[g + np.int64(tz)])
            c &= c - _ONE
        out[i] = np.uint16((r ^ h) & tmask)


@njit
def interleave(cells, t, tp, zi):
    """Bit-sliced copy of the cells, high bits first: bit (g % 64) of ``zi[(g // 64) * tp + jj]``
    is bit ``t - 1 - jj`` of cell g (``tp`` >= t columns per block; columns t..tp-1 stay zero)."""
    for i in range(zi.shape[0]):
        zi[i] = 0
    for g in range(cells.shape[0]):
        v = np.uint64(cells[g])
        base = (g >> 6) * tp
        b = np.uint64(g & 63)
        for j in range(t):
            zi[base + t - 1 - j] |= ((v >> np.uint64(j)) & _ONE) << b


@njit(inline="always")
def _band_s(h, s, params):
    """Start column ``g`` and masked coefficient row ``c`` of hashed key ``h`` in shard ``s``
    (uint64). ``params`` rows (uint64, 32-byte aligned, one cache line each): offset, start
    count, coefficient mask, seed word; the start multiplier is ``(sw >> 32) | 1`` and only
    its low 32 bits matter (``u`` is taken mod 2**32)."""
    sw = params[s, 3]
    u = (np.uint64(np.uint32(h)) * ((sw >> np.uint64(32)) | _ONE)) & _M32
    g = params[s, 0] + ((u * params[s, 1]) >> np.uint64(32))
    a = (h ^ sw) * _CK
    return g, ((a ^ (a >> np.uint64(32))) | _ONE) & params[s, 2]


@njit(inline="always")
def _shard_of(h, nsh):
    """Shard of hashed key ``h`` among ``nsh`` (uint64, < 2**32) shards: reduce32 of its top
    half, written as a 32x32-bit product so that it vectorises."""
    return np.uint32((np.uint64(np.uint32(h >> np.uint64(32))) * nsh) >> np.uint64(32))


@njit(inline="always")
def _band(h, params, nshards):
    """Start column ``g`` and masked coefficient row ``c`` of hashed key ``h`` in the
    bit-sliced layout (``params`` rows as in :func:`_band_s`)."""
    g, c = _band_s(h, np.uint64(_shard_of(h, np.uint64(nshards))), params)
    return np.int64(g), c


@njit(inline="always")
def _band_word(zi, g, c, tp):
    """The tp-bit word: parities of the band starting at column ``g`` with coefficients ``c``."""
    o = np.uint64(g & 63)
    clo = c << o
    chi = (c >> (np.uint64(63) - o)) >> _ONE
    base = (g >> 6) * tp
    rr = _par8(zi, base, tp, clo, chi)
    if tp == 16:
        rr = (rr << np.uint64(8)) | _par8(zi, base + 8, tp, clo, chi)
    return rr


#: Positions per step of the compact decode: hashes, shards, band starts and coefficients of
#: a step stay in L1.
DECODE_STEP = 512
#: Prefetch distances (positions ahead) of the shard parameters and of the band lines.
PF_PARAMS = 8
PF_BAND = 16


def _make_decode(tp):
    @njit
    def decode(zi, params, nshards, sw0, t, start, lut, out):
        """``out[i] = lut[raw(start + i)]`` using the bit-sliced table ``zi``.

        ``params`` rows as in :func:`_band_s`. Positions go in steps of :data:`DECODE_STEP`:
        their hashes and shards first (a loop that vectorises), then the band starts and
        coefficients (the shard parameters prefetched :data:`PF_PARAMS` positions ahead),
        then the parities of 8 columns at a time (the band's two lines prefetched
        :data:`PF_BAND` positions ahead)."""
        n = out.shape[0]
        nb = DECODE_STEP
        tmask = (_ONE << np.uint64(t)) - _ONE
        sh = np.uint64(tp - t)
        nsh = np.uint64(nshards)
        utp = np.uint64(tp)
        hb = np.empty(nb, np.uint64)
        sb = np.empty(nb, np.uint32)
        gs = np.empty(nb, np.uint64)
        cs = np.empty(nb, np.uint64)
        for lo0 in range(0, n, nb):
            L = min(n, lo0 + nb) - lo0
            base = np.uint64(start + lo0) + sw0
            for j in range(L):  # hash64 of start + lo0 + j (see hashing.hash64_scalar)
                x = base + np.uint64(j)
                z = x ^ (x >> np.uint64(30))
                z = z * np.uint64(0xBF58476D1CE4E5B9)
                z = z ^ (z >> np.uint64(27))
                z = z * np.uint64(0x94D049BB133111EB)
                z = z ^ (z >> np.uint64(31))
                hb[j] = z
                sb[j] = _shard_of(z, nsh)
            for q in range(L):
                if q + PF_PARAMS < L:
                    _prefetch(params, np.uint64(sb[q + PF_PARAMS]) << np.uint64(2))
                g, c = _band_s(hb[q], np.uint64(sb[q]), params)
                gs[q] = g
                cs[q] = c
            for q in range(min(PF_BAND, L)):
                _prefetch(zi, (gs[q] >> np.uint64(6)) * utp)
                _prefetch(zi, (gs[q] >> np.uint64(6)) * utp + utp)
            o = out[lo0 : lo0 + L]
            for q in range(L):
                if q + PF_BAND < L:
                    gg = gs[q + PF_BAND]
                    _prefetch(zi, (gg >> np.uint64(6)) * utp)
                    _prefetch(zi, (gg >> np.uint64(6)) * utp + utp)
                rr = _band_word(zi, np.int64(gs[q]), cs[q], tp)
                o[q] = lut[(rr >> sh) ^ (hb[q] & tmask)]

    return decode


def _make_lookup(tp):
    @njit
    def lookup_sliced(zi, params, nshards, t, keys_h, out):
        """Raw words (uint16) for hashed keys, from the bit-sliced table ``zi``."""
        n = keys_h.shape[0]
        tmask = (_ONE << np.uint64(t)) - _ONE
        sh = np.uint64(tp - t)
        gs = np.empty(32, np.int64)
        cs = np.empty(32, np.uint64)
        for lo in range(0, n, 32):
            nq = min(32, n - lo)
            for q in range(nq):
                h = keys_h[lo + q]
                g, c = _band(h, params, nshards)
                cs[q] = c
                gs[q] = g
                _prefetch(zi, (g >> 6) * tp)
                _prefetch(zi, (g >> 6) * tp + tp)
            for q in range(nq):
                rr = _band_word(zi, gs[q], cs[q], tp)
                out[lo + q] = np.uint16((rr >> sh) ^ (keys_h[lo + q] & tmask))

    return lookup_sliced


lookup8 = _make_lookup(8)
lookup16 = _make_lookup(16)
decode8 = _make_decode(8)
decode16 = _make_decode(16)


_ = numba  # keep the import explicit: this module needs numba
