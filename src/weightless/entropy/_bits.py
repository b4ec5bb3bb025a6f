"""Bounds-checked byte reading, LEB128 varints and fixed-width bit packing.

Bit order everywhere in ``weightless.entropy`` and ``weightless.baselines``: fields are packed
most-significant bit first into bytes, and a packed stream is padded with zero bits to a whole
byte (``numpy.packbits`` order). Padding bits must be zero; readers check it.
"""

from __future__ import annotations

import numpy as np

from ..errors import FieldError, TruncatedError

__all__ = ["Reader", "write_varint", "pack_fixed", "unpack_fixed", "packed_size"]

_MAX_VARINT_BYTES = 10  # enough for any value below 2**70


def write_varint(value: int) -> bytes:
    """Return the unsigned LEB128 encoding of ``value`` (a non-negative int below 2**64)."""
    value = int(value)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Sequential reader over a bytes object; every read is bounds-checked.

    Raises:
        TruncatedError: a read goes past the end of the data.
        FieldError: a varint is overlong or a value exceeds its stated limit.
    """

    def __init__(self, data: bytes, what: str) -> None:
        self.data = memoryview(bytes(data))
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self.data) - self.pos

    def take(self, n: int, field: str) -> bytes:
        """Return the next ``n`` bytes."""
        if n < 0 or n > self.remaining:
            raise TruncatedError(
                f"{self.what}: {field} needs {n} bytes but only {self.remaining} remain; "
                "the data is truncated or corrupt"
            )
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self, field: str) -> int:
        """Return the next byte as an int."""
        return self.take(1, field)[0]

    def varint(self, field: str, limit: int) -> int:
        """Return the next LEB128 varint, which must be ``<= limit``."""
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            byte = self.u8(field)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise FieldError(f"{self.what}: {field} is an overlong varint")
                if value > limit:
                    raise FieldError(
                        f"{self.what}: {field} = {value} exceeds the allowed maximum {limit}"
                    )
                return value
        raise FieldError(f"{self.what}: {field} is a varint longer than {_MAX_VARINT_BYTES} bytes")

    def rest(self) -> bytes:
        """Return all unread bytes."""
        return self.take(self.remaining, "rest")

    def expect_end(self) -> None:
        """Raise FieldError if unread bytes remain."""
        if self.remaining:
            raise FieldError(
                f"{self.what}: {self.remaining} unexpected trailing bytes after the last field"
            )


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
