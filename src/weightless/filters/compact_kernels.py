"""Numba kernels of the compact (sharded Ribbon) construction; see :mod:`.compact`.

Imported by :mod:`.compact` only when numba is available. Every kernel computes exactly the
function documented in :mod:`.compact`; the numpy paths there give identical results.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .._compat import njit
from .hashing import hash64_scalar

_M32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_CK = np.uint64(0xC28F82822B650BED)


@intrinsic
def _ctpop64(typingctx, x):  # pragma: no cover - compiled
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


@intrinsic
def _cttz64(typingctx, x):  # pragma: no cover - compiled
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.cttz", [ir.IntType(64), ir.IntType(1)])
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

    return sig, codegen


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


@njit(parallel=True)
def _solve_shards(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out):
    """Adaptive solve of shards 0..S-2 in parallel, each into its own region of ``tmp``."""
    for s in prange(nshards - 1):
        a = starts[s]
        b = starts[s + 1]
        ns = b - a
        o = tmp_off[s]
        if ns == 0:
            ms_out[s] = 1
            tmp[o] = 0
            continue
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
                break


@njit
def solve_all(hs, vals, starts, nshards, ssw, m, t, f0, fstep, max_tries, cells, ms_out):
    """Solve every shard; ``hs``/``vals`` grouped by shard (``starts``: S+1 boundaries).

    Shards 0..S-2 take the fewest cells that solve (tried in parallel, deterministic); the last
    shard takes the remaining cells. Returns the last shard's try index, or -1 on failure."""
    tmp_off = np.zeros(nshards, np.int64)
    for s in range(nshards - 1):
        ns = starts[s + 1] - starts[s]
        tmp_off[s + 1] = tmp_off[s] + max(1, ns + int(np.ceil(ns * f0)) + (max_tries - 1) * max(1, int(ns * fstep)))
    tmp = np.empty(max(1, tmp_off[nshards - 1]), np.uint16)
    if nshards > 1:
        _solve_shards(hs, vals, starts, nshards, ssw, t, f0, fstep, max_tries, tmp_off, tmp, ms_out)
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
    """Bit-sliced copy of the cells: bit (g % 64) of ``zi[(g // 64) * tp + j]`` is bit j of cell g
    (``tp`` >= t columns per block; columns t..tp-1 stay zero)."""
    for i in range(zi.shape[0]):
        zi[i] = 0
    for g in range(cells.shape[0]):
        v = np.uint64(cells[g])
        base = (g >> 6) * tp
        b = np.uint64(g & 63)
        for j in range(t):
            zi[base + j] |= ((v >> np.uint64(j)) & _ONE) << b


def _make_decode(tp):
    @njit(parallel=True)
    def decode(zi, offs, nst, cmask, sws, muls, nshards, sw0, tmask, start, lut, out):
        """``out[i] = lut[raw(start + i)]`` using the bit-sliced table ``zi``."""
        n = out.shape[0]
        nblk = 1 << 14
        nb = (n + nblk - 1) // nblk
        for bi in prange(nb):
            lo = bi * nblk
            hi = min(n, lo + nblk)
            for i in range(lo, hi):
                h = hash64_scalar(np.uint64(start + i), sw0)
                s = np.int64(((h >> np.uint64(32)) * np.uint64(nshards)) >> np.uint64(32))
                u = ((h & _M32) * muls[s]) & _M32
                g = offs[s] + np.int64((u * nst[s]) >> np.uint64(32))
                c = coeff(h, sws[s]) & cmask[s]
                o = np.uint64(g & 63)
                clo = c << o
                chi = (c >> (np.uint64(63) - o)) >> _ONE
                base = (g >> 6) * tp
                r = h & tmask
                for j in range(tp):
                    x = (zi[base + j] & clo) ^ (zi[base + tp + j] & chi)
                    r ^= (_ctpop64(x) & _ONE) << np.uint64(j)
                out[i] = lut[r]

    return decode


decode8 = _make_decode(8)
decode16 = _make_decode(16)


_ = numba  # keep the import explicit: this module needs numba
