"""The numpy decode of the paper construction's tables: the hash of :mod:`weightless.filters.paper`
evaluated in place over buffers that stay in L2 (used when numba is absent or disabled)."""

from __future__ import annotations

import numpy as np

from .hashing import seed_word

__all__ = ["MIX", "NP_STEP"]

#: Odd multiplier giving the third cell: h2 comes from the high half of z * MIX.
MIX = 0xD6E8FEB86659FD93
_MIX = np.uint64(MIX)
_MASK64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: Positions per step of the numpy decode (buffers stay in L2).
NP_STEP = 16384


class _NpDecoder:
    """In-place numpy evaluation of raw words for consecutive positions (one table).

    About 28 passes over L2-resident buffers per step; each segment of the table is its own
    view, so no offsets are added.
    """

    ar: np.ndarray
    z: np.ndarray
    u: np.ndarray
    r: np.ndarray
    g: np.ndarray

    def __init__(self, cells: np.ndarray, t: int, seed: int, scratch: "_NpDecoder | None" = None) -> None:
        m = int(cells.shape[0])
        q = m // 3
        tab = cells.astype(np.uint8 if t <= 8 else np.uint16)
        self.t0, self.t1, self.t2 = tab[:q], tab[q : 2 * q], tab[2 * q :]
        self.q = np.uint64(q)
        self.q2 = np.uint64(m - 2 * q)
        self.sw = int(seed_word(int(seed) & _MASK64))
        self.tmask = np.uint64((1 << t) - 1)
        if scratch is not None:  # the buffers of another decoder of the same t (used one at a time)
            self.ar, self.z, self.u, self.r, self.g = scratch.ar, scratch.z, scratch.u, scratch.r, scratch.g
            return
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
