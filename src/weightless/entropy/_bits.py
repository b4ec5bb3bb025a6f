"""Bounds-checked byte reading and LEB128 varints (from :mod:`weightless._bytes`) and fixed-width
bit packing.

Bit order everywhere in ``weightless.entropy`` and ``weightless.baselines``: fields are packed
most-significant bit first into bytes, and a packed stream is padded with zero bits to a whole
byte (``numpy.packbits`` order). Padding bits must be zero; readers check it.
"""

from __future__ import annotations

import numpy as np

from .._bytes import ByteReader, write_varint
from ..errors import FieldError, TruncatedError

__all__ = ["Reader", "write_varint", "pack_fixed", "unpack_fixed", "packed_size"]


class Reader(ByteReader):
    """:class:`~weightless._bytes.ByteReader` over a copy of ``data``: TruncatedError past the
    end, FieldError for a bad varint, a value over its limit or trailing bytes."""

    def __init__(self, data: bytes, what: str) -> None:
        super().__init__(memoryview(bytes(data)), what)

    def view(self, n: int, field: str) -> memoryview:
        """The next ``n`` bytes as a view of the data (no copy: for large streams)."""
        start = self.pos
        if n < 0 or n > self.remaining:
            raise self.short(f"{self.what}: {field} needs {n} bytes but only {self.remaining} remain")
        self.pos += n
        return memoryview(self.data)[start : start + n]


def packed_size(count: int, width: int) -> int:
    """Bytes taken by ``count`` fields of ``width`` bits packed by :func:`pack_fixed`."""
    return (int(count) * int(width) + 7) // 8


def pack_fixed(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers (each below ``2**width``) into ``width``-bit fields, MSB first.

    ``width`` may be 0 (returns b""). Values are not range-checked here: callers validate.
    """
    values = np.asarray(values).reshape(-1)
    if width == 0 or values.size == 0:
        return b""
    v = values.astype(np.uint32, copy=False)
    # Process in blocks to bound the temporary bit matrix (block * width bytes).
    block = max(8, (1 << 22) // width // 8 * 8)
    parts = []
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint32)
    for start in range(0, v.size, block):
        chunk = v[start : start + block]
        bits = ((chunk[:, None] >> shifts) & 1).astype(np.uint8)
        parts.append(bits.reshape(-1))
    return np.packbits(np.concatenate(parts)).tobytes()


def unpack_fixed(data: bytes, count: int, width: int, what: str) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: return ``count`` fields as a uint32 array.

    Raises:
        TruncatedError / FieldError: ``data`` is not exactly ``packed_size(count, width)`` bytes,
            or its padding bits are not zero.
    """
    need = packed_size(count, width)
    if len(data) != need:
        cls = TruncatedError if len(data) < need else FieldError
        raise cls(f"{what}: expected {need} bytes for {count} fields of {width} bits, got {len(data)}")
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint32)
    raw = np.frombuffer(data, dtype=np.uint8)
    nbits = count * width
    if nbits % 8 and int(raw[-1]) & ((1 << (8 - nbits % 8)) - 1):
        raise FieldError(f"{what}: non-zero padding bits at the end of a packed stream")
    out = np.empty(count, dtype=np.uint32)
    block = max(8, (1 << 22) // width // 8 * 8)  # multiple of 8 fields => whole bytes per block
    for start in range(0, count, block):
        stop = min(count, start + block)
        b0 = start * width // 8
        b1 = (stop * width + 7) // 8
        bits = np.unpackbits(raw[b0:b1])[: (stop - start) * width].reshape(-1, width)
        acc = np.zeros(stop - start, dtype=np.uint32)
        for j in range(width):
            acc = (acc << np.uint32(1)) | bits[:, j]
        out[start:stop] = acc
    return out
