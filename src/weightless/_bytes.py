"""LEB128 varints and a bounds-checked sequential byte reader: the standard-library core that
the container (which must import without numpy) and the entropy coders share.

A varint is unsigned LEB128: 7 bits a byte, least significant group first, the high bit set on
every byte but the last, in shortest form, at most :data:`MAX_VARINT_BYTES` bytes (values below
2**70).
"""

from __future__ import annotations

from typing import Callable

from .errors import FieldError, InputError, TruncatedError

__all__ = ["MAX_VARINT_BYTES", "write_varint", "ByteReader"]

#: LEB128 varints have at most this many bytes (values below 2**70).
MAX_VARINT_BYTES = 10

ErrorType = Callable[[str], Exception]


def write_varint(value: int) -> bytes:
    """Return the varint encoding of ``value``.

    Raises:
        InputError: ``value`` is outside [0, 2**70).
    """
    value = int(value)
    if not 0 <= value < 1 << (7 * MAX_VARINT_BYTES):
        raise InputError(f"varint value {value} is outside [0, 2**70)")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class ByteReader:
    """Sequential reader of a byte string; every read is bounds-checked.

    Reading past the end raises ``short`` (default :class:`TruncatedError`). Varints must be at
    most :data:`MAX_VARINT_BYTES` long, in shortest form (no final 0x00 byte after the first)
    and at most the ``limit`` the caller gives; otherwise ``bad`` (default :class:`FieldError`).
    """

    def __init__(self, data: bytes | bytearray | memoryview, what: str, short: ErrorType = TruncatedError,
                 bad: ErrorType = FieldError) -> None:
        self.data = data
        self.pos = 0
        self.what = what
        self.short = short
        self.bad = bad

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self.data) - self.pos

    def take(self, n: int, field: str) -> bytes:
        """Return the next ``n`` bytes."""
        if n < 0 or n > self.remaining:
            raise self.short(f"{self.what}: {field} needs {n} bytes but only {self.remaining} remain")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self, field: str) -> int:
        """Return the next byte as an int."""
        return self.take(1, field)[0]

    def varint(self, field: str, limit: int) -> int:
        """Return the next varint, which must be ``<= limit``."""
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.u8(field)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise self.bad(f"{self.what}: {field} is an overlong varint (not the shortest form)")
                if value > limit:
                    raise self.bad(f"{self.what}: {field} is {value}; the maximum is {limit}")
                return value
        raise self.bad(f"{self.what}: {field} is a varint longer than {MAX_VARINT_BYTES} bytes")

    def rest(self) -> bytes:
        """Return all unread bytes."""
        return self.take(self.remaining, "rest")

    def expect_end(self) -> None:
        """Raise ``bad`` if unread bytes remain."""
        if self.remaining:
            raise self.bad(f"{self.what}: {self.remaining} unexpected trailing bytes after the last field")
