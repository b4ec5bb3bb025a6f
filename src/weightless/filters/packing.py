"""Bit-packing of t-bit table cells.

A table of ``m`` cells of ``t`` bits (1 <= t <= 16) is stored as exactly ``ceil(m * t / 8)``
bytes: cell 0 first, each cell most-significant bit first, the last byte padded with zero bits.
:func:`unpack_cells` checks the length and that the padding bits are zero, so a corrupt or
truncated buffer is reported instead of decoded into garbage.
"""

from __future__ import annotations

import numpy as np

from .._compat import HAVE_NUMBA, njit
from ..errors import FieldError, InputError, TruncatedError

__all__ = ["packed_size", "pack_cells", "unpack_cells", "scatter_packed"]

_CHUNK = 1 << 18  # cells per step: bounds the temporary bit matrix to 4 MiB


def packed_size(m: int, t: int) -> int:
    """Return the number of bytes that ``m`` cells of ``t`` bits take: ``ceil(m * t / 8)``."""
    return (int(m) * int(t) + 7) // 8


def _check_t(t: int) -> None:
    if not isinstance(t, (int, np.integer)) or not 1 <= int(t) <= 16:
        raise InputError(f"cell width t must be an integer in [1, 16], got {t!r}")


def pack_cells(cells: np.ndarray, t: int) -> bytes:
    """Pack ``cells`` (integers below ``2**t``) into ``ceil(len(cells) * t / 8)`` bytes.

    Returns:
        The packed bytes (MSB first, zero padding in the last byte).
    Raises:
        InputError: ``t`` is not in [1, 16], ``cells`` is not 1-D, or a cell is ``>= 2**t``.
    """
    _check_t(t)
    t = int(t)
    arr = np.asarray(cells)
    if arr.ndim != 1:
        raise InputError(f"cells must be a 1-D array, got shape {arr.shape}")
    m = arr.shape[0]
    if m == 0:
        return b""
    if arr.dtype.kind not in "iu":
        raise InputError(f"cells must be integers, got dtype {arr.dtype}")
    if int(arr.min()) < 0 or int(arr.max()) >= (1 << t):
        raise InputError(f"cells must lie in [0, 2**{t}); got values in [{arr.min()}, {arr.max()}]")
    if HAVE_NUMBA:
        out = np.empty(packed_size(m, t), np.uint8)
        _nb_pack(np.ascontiguousarray(arr, dtype=np.uint16), t, out)
        return out.tobytes()
    words = arr.astype(">u2")
    if t == 8:
        return arr.astype(np.uint8).tobytes()
    if t == 16:
        return words.tobytes()
    pieces = []
    # Chunks are multiples of 8 cells, so every chunk ends on a byte boundary.
    for lo in range(0, m, _CHUNK):
        w = words[lo : lo + _CHUNK]
        bits = np.unpackbits(w.view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - t :]
        pieces.append(np.packbits(bits.reshape(-1)))
    return b"".join(p.tobytes() for p in pieces)


def unpack_cells(data: bytes | bytearray | memoryview | np.ndarray, m: int, t: int) -> np.ndarray:
    """Unpack ``m`` cells of ``t`` bits from exactly ``ceil(m * t / 8)`` bytes.

    Returns:
        A new ``uint16`` array of length ``m``.
    Raises:
        InputError: ``t`` not in [1, 16] or ``m`` negative.
        TruncatedError: ``data`` is shorter than ``ceil(m * t / 8)`` bytes.
        FieldError: ``data`` is longer than that, or the padding bits are not zero.
    """
    _check_t(t)
    t = int(t)
    m = int(m)
    if m < 0:
        raise InputError(f"number of cells must be >= 0, got {m}")
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    need = packed_size(m, t)
    if buf.shape[0] < need:
        raise TruncatedError(f"packed cells: expected {need} bytes for {m} cells of {t} bits, got {buf.shape[0]}")
    if buf.shape[0] > need:
        raise FieldError(f"packed cells: expected {need} bytes for {m} cells of {t} bits, got {buf.shape[0]}")
    if m == 0:
        return np.zeros(0, dtype=np.uint16)
    if t == 8:
        return buf.astype(np.uint16)
    if t == 16:
        return buf.view(">u2").astype(np.uint16)
    pad = need * 8 - m * t
    if pad and int(buf[-1]) & ((1 << pad) - 1):
        raise FieldError("packed cells: padding bits of the last byte are not zero")
    if HAVE_NUMBA:
        out = np.empty(m, dtype=np.uint16)
        _nb_unpack(_slack(buf), t, out)
        return out
    # cell i starts at bit i t: read the 24 bits at byte (i t) >> 3 (t + 7 <= 23) and shift
    b32 = np.zeros(need + 2, dtype=np.uint32)
    b32[:need] = buf
    out = np.empty(m, dtype=np.uint16)
    mask = np.uint32((1 << t) - 1)
    for lo in range(0, m, _CHUNK):
        hi = min(m, lo + _CHUNK)
        bitpos = np.arange(lo, hi, dtype=np.int64) * t
        j = bitpos >> 3
        w = (b32[j] << np.uint32(16)) | (b32[j + 1] << np.uint32(8)) | b32[j + 2]
        sh = (24 - t - (bitpos & 7)).astype(np.uint32)
        out[lo:hi] = (w >> sh) & mask
    return out


@njit
def _nb_pack(cells, t, out):
    """Pack ``cells`` into ``out`` (exactly packed_size bytes), MSB first, zero padding. Groups
    of 8 cells fill exactly ``t`` bytes."""
    m = cells.shape[0]
    full = m // 8
    if t <= 8:
        for g in range(full):
            acc = np.uint64(0)
            for j in range(8):
                acc = (acc << np.uint64(t)) | np.uint64(cells[8 * g + j])
            for b in range(t):
                out[g * t + b] = np.uint8((acc >> np.uint64(8 * (t - 1 - b))) & np.uint64(0xFF))
        start = full * 8
        j = full * t
    else:
        start = 0
        j = 0
    acc = np.uint64(0)
    nbits = 0
    for i in range(start, m):
        acc = (acc << np.uint64(t)) | np.uint64(cells[i])
        nbits += t
        while nbits >= 8:
            nbits -= 8
            out[j] = np.uint8((acc >> np.uint64(nbits)) & np.uint64(0xFF))
            j += 1
    if nbits:
        out[j] = np.uint8((acc << np.uint64(8 - nbits)) & np.uint64(0xFF))


@njit(inline="always")
def _field(buf, bitpos, t, mask):
    """The ``t`` bits (t <= 16) at bit ``bitpos`` of ``buf`` (MSB first; 2 bytes of slack)."""
    j = bitpos >> 3
    w = (np.uint32(buf[j]) << np.uint32(16)) | (np.uint32(buf[j + 1]) << np.uint32(8)) | np.uint32(buf[j + 2])
    return (w >> np.uint32(24 - t - (bitpos & 7))) & mask


@njit
def _nb_unpack(buf, t, out):
    """Unpack ``len(out)`` cells of ``t`` bits from ``buf`` (MSB first; 2 bytes of slack)."""
    mask = np.uint32((1 << t) - 1)
    for i in range(out.shape[0]):
        out[i] = np.uint16(_field(buf, i * t, t, mask))


@njit
def _nb_scatter(flags, buf, t, out):
    """out[i] = next packed cell of ``buf`` (8 bytes of slack) where bit i of ``flags`` (MSB
    first) is set, else 0. Branch-free. For t <= 8, the cells of one flag byte (at most 8 t
    bits from a bit offset below 8: at most 71 bits, of which the 64 read are enough because
    the offset is 0 when t = 8) come from one big-endian 64-bit word read once; the field of a
    cell is the word's top t bits, and the word shifts by t after each set flag."""
    m = out.shape[0]
    bitpos = np.int64(0)
    start = 0
    if t <= 8:
        ut = np.uint64(t)
        top = np.uint64(64 - t)
        for b in range(m >> 3):
            f = np.uint64(flags[b])
            j = bitpos >> 3
            w = np.uint64(0)
            for x in range(8):
                w = (w << np.uint64(8)) | np.uint64(buf[j + x])
            w <<= np.uint64(bitpos & 7)
            cnt = np.uint64(0)
            base = b * 8
            for k in range(8):
                bit = (f >> np.uint64(7 - k)) & np.uint64(1)
                out[base + k] = np.uint16((w >> top) * bit)
                w <<= ut * bit
                cnt += bit
            bitpos += np.int64(cnt) * t
        start = (m >> 3) << 3
    mask = np.uint32((1 << t) - 1)
    for i in range(start, m):
        bit = np.int64((flags[i >> 3] >> (7 - (i & 7))) & 1)
        out[i] = np.uint16(_field(buf, bitpos, t, mask) * np.uint32(bit))
        bitpos += t * bit


def _slack(buf: np.ndarray) -> np.ndarray:
    """``buf`` followed by 8 zero bytes (the kernels read up to 2 bytes past a field, the
    scatter kernel up to 7 past the byte it starts a word at)."""
    out = np.zeros(buf.shape[0] + 8, np.uint8)
    out[: buf.shape[0]] = buf
    return out


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _count_set_bits(flags: np.ndarray) -> int:
    """Number of set bits of a uint8 array (``np.bitwise_count`` where numpy has it)."""
    if hasattr(np, "bitwise_count"):
        return int(np.bitwise_count(flags).sum(dtype=np.int64))
    return int(_POPCOUNT[flags].sum())  # pragma: no cover - numpy < 2.0


def scatter_packed(flags: np.ndarray, data: bytes | memoryview, m: int, t: int) -> np.ndarray:
    """Return ``m`` uint16 cells: zero where the bit of ``flags`` (uint8, MSB first, ``ceil(m / 8)``
    bytes) is clear, else the next of the ``t``-bit cells packed in ``data`` (:func:`pack_cells`
    layout).

    Raises:
        FieldError / TruncatedError: ``flags`` is not ``ceil(m / 8)`` bytes or has padding bits
            set, or ``data`` does not hold exactly one cell per set flag (padding bits zero).
    """
    _check_t(t)
    flags = np.ascontiguousarray(flags, dtype=np.uint8).reshape(-1)
    if flags.shape[0] != (m + 7) // 8:
        raise FieldError(f"cell flags: expected {(m + 7) // 8} bytes for {m} cells, got {flags.shape[0]}")
    if m % 8 and int(flags[-1]) & ((1 << (8 - m % 8)) - 1):
        raise FieldError("cell flags: padding bits of the last byte are not zero")
    count = _count_set_bits(flags)
    buf = np.frombuffer(data, dtype=np.uint8)
    if not HAVE_NUMBA:
        out = np.zeros(m, np.uint16)
        out[np.unpackbits(flags, count=m).astype(bool)] = unpack_cells(buf, count, t)
        return out
    need = packed_size(count, t)
    if buf.shape[0] != need:
        unpack_cells(buf, count, t)  # raises the length error
    pad = need * 8 - count * t
    if pad and int(buf[-1]) & ((1 << pad) - 1):
        raise FieldError("packed cells: padding bits of the last byte are not zero")
    out = np.empty(m, np.uint16)
    _nb_scatter(flags, _slack(buf), t, out)
    return out
