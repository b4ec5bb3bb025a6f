"""The byte layout of a ``.wl`` file, declared once: the writer packs and the reader unpacks
the same tables of fields (docs/FORMAT.md, "Layout" and "Header").

Each :class:`Field` names a value, its wire form (a :class:`Wire`: a struct format, a varint, or
one of the few compound forms below) and the checker that says what a valid value is. The
writer runs the checker with :class:`~weightless.errors.InputError` before packing; the reader
runs it with :class:`~weightless.errors.FieldError` after unpacking, so the two cannot drift.

File: :data:`PREAMBLE` (magic, version, the header and payload lengths), the header
(:data:`HEADER`, then :data:`RECORD` once per record), the payload, a 16-byte digest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from .._bytes import ByteReader, write_varint
from ..errors import FieldError, InputError
from .fields import (
    MAX_ELEMENTS,
    MAX_NAME_CHARS,
    MAX_NDIM,
    Checker,
    check_dtype,
    check_encoding,
    check_json_object,
    check_name,
    check_shape,
    compact_json,
    parse_json,
)
from .format import (
    DTYPE_IDS,
    ENCODING_ESCAPE,
    ENCODING_IDS,
    MAX_PAYLOAD_BYTES,
    MAX_REPEATED_PARAMS_BYTES,
)

__all__ = [
    "Cursor", "Wire", "Fixed", "Varint", "JsonObject", "Name", "IdOf", "Shape", "Params",
    "Field", "PREAMBLE", "VERSION_FIELDS", "LENGTH_FIELDS", "VERSION_BYTES", "HEADER", "RECORD",
    "MIN_ENTRY_BYTES", "pack_fields", "unpack_field", "names_allowance", "NAMES_PER_HEADER_BYTE", "NAMES_ALLOWANCE",
]

#: The fewest header bytes a record entry takes (shared, S, encoding, dtype, ndim, J, L).
MIN_ENTRY_BYTES = 7
#: A name is at most MAX_NAME_CHARS code points, so at most 4 bytes each in UTF-8.
MAX_NAME_BYTES = 4 * MAX_NAME_CHARS


#: The names of a header, decoded, take at most this many bytes per header byte plus
#: :data:`NAMES_ALLOWANCE` (a shared prefix lets a 10-byte entry stand for a 4,096-byte name:
#: without the cap a 16 MiB header could decode to 8 GB of names; real headers stay under 3).
NAMES_PER_HEADER_BYTE = 16
NAMES_ALLOWANCE = 1 << 16


def names_allowance(header_len: int) -> int:
    """The name bytes a header of ``header_len`` bytes may decode to, all names together."""
    return NAMES_PER_HEADER_BYTE * int(header_len) + NAMES_ALLOWANCE


@dataclass
class Cursor:
    """What one record entry's fields depend on in the entries before it."""

    index: int = 0  #: the index of the record being packed or unpacked
    prev_name: bytes = b""  #: the previous record's name, UTF-8
    #: writer: params JSON -> index of the last record that had it
    params_seen: dict[bytes, int] = field(default_factory=dict)
    #: reader: every record's params JSON so far (b"" for {})
    params_json: list[bytes] = field(default_factory=list)
    #: reader: the name bytes every name so far may still take (see :func:`names_allowance`)
    names_left: int = 1 << 62


class Wire(Protocol):
    """How one value is laid out in bytes."""

    def pack(self, value: Any, cur: Cursor) -> bytes:
        """The bytes of ``value`` (already checked)."""
        ...

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        """Read the value; messages name it ``prefix + label``."""
        ...


@dataclass(frozen=True)
class Fixed:
    """A fixed-size value in a :mod:`struct` format, e.g. ``"<H"`` (u16 little-endian)."""

    fmt: str

    def pack(self, value: Any, cur: Cursor) -> bytes:
        return struct.pack(self.fmt, value)

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        return struct.unpack(self.fmt, r.take(struct.calcsize(self.fmt), prefix + label))[0]


@dataclass(frozen=True)
class Varint:
    """An unsigned LEB128 varint of at most ``limit`` (a number, or one computed from what
    remains to be read: ``limit(reader)``)."""

    limit: int | Callable[[ByteReader], int]

    def pack(self, value: Any, cur: Cursor) -> bytes:
        return write_varint(value)

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        limit = self.limit if isinstance(self.limit, int) else self.limit(r)
        return r.varint(prefix + label, limit)


def _rest_after_varint(r: ByteReader) -> int:
    """A length varint takes at least one byte: what remains after it is at most this."""
    return max(0, r.remaining - 1)


class JsonObject:
    """varint ``M``, then ``M`` bytes of UTF-8 JSON; ``M = 0`` is ``{}``."""

    def pack(self, value: Any, cur: Cursor) -> bytes:
        text = compact_json(value) if value else b""
        return write_varint(len(text)) + text

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        m = r.varint(f"{prefix}{label} length", _rest_after_varint(r))
        return parse_json(r.take(m, prefix + label), prefix + label) if m else {}


class Name:
    """varint ``shared``, varint ``S``, ``S`` bytes: the name's UTF-8 bytes are the previous
    name's first ``shared`` bytes followed by these ``S`` bytes."""

    def pack(self, value: Any, cur: Cursor) -> bytes:
        name = value.encode("utf-8")
        shared = 0
        for a, b in zip(cur.prev_name, name):
            if a != b:
                break
            shared += 1
        cur.prev_name = name
        rest = name[shared:]
        return write_varint(shared) + write_varint(len(rest)) + rest

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        shared = r.varint(f"{prefix}the shared name prefix", len(cur.prev_name))
        limit = min(_rest_after_varint(r), MAX_NAME_BYTES - shared)
        n = r.varint(f"{prefix}{label} length", limit)
        if shared + n > cur.names_left:
            raise FieldError(f"{prefix}the names so far and this one take more than "
                             f"{NAMES_PER_HEADER_BYTE} bytes per header byte + {NAMES_ALLOWANCE}")
        cur.names_left -= shared + n
        raw = cur.prev_name[:shared] + r.take(n, prefix + label)
        cur.prev_name = raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FieldError(
                f"{prefix}{label} is not valid UTF-8 (byte {exc.start} of it)"
            ) from None


@dataclass(frozen=True)
class IdOf:
    """u8: an index into ``names``; with ``escape``, that byte followed by varint ``n`` and
    ``n`` ASCII bytes stands for a name not in the table."""

    names: tuple[str, ...]
    escape: int | None = None

    def pack(self, value: Any, cur: Cursor) -> bytes:
        if value in self.names:
            return bytes([self.names.index(value)])
        assert self.escape is not None, value  # the checker admits only names of the table
        text = value.encode("ascii")  # ENCODING_PATTERN is ASCII
        return bytes([self.escape]) + write_varint(len(text)) + text

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        code = r.u8(f"{prefix}{label} id")
        if code < len(self.names):
            return self.names[code]
        if code != self.escape:
            escape = "" if self.escape is None else f" or {self.escape} (a name follows)"
            raise FieldError(
                f"{prefix}{label} id is {code}; expected 0-{len(self.names) - 1} "
                f"({', '.join(self.names)}){escape}"
            )
        n = r.varint(f"{prefix}{label} name length", 64)
        text = r.take(n, f"{prefix}{label} name")
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise FieldError(f"{prefix}{label} name {text!r} is not ASCII") from None


class Shape:
    """u8 ``ndim``, then ``ndim`` varints."""

    def pack(self, value: Any, cur: Cursor) -> bytes:
        return bytes([len(value)]) + b"".join(write_varint(d) for d in value)

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        ndim = r.u8(f"{prefix}the number of dimensions")
        if ndim > min(MAX_NDIM, r.remaining):
            raise FieldError(
                f"{prefix}{label} has {ndim} dimensions; expected at most {MAX_NDIM} (and at "
                f"most the {r.remaining} header bytes that remain)"
            )
        return [r.varint(f"{prefix}shape[{j}]", MAX_ELEMENTS) for j in range(ndim)]


class Params:
    """varint ``J``: even, ``J / 2`` bytes of UTF-8 JSON follow (``J = 0`` is ``{}``); odd, the
    params are those of the record ``(J + 1) / 2`` entries back (at most
    MAX_REPEATED_PARAMS_BYTES of JSON). The writer repeats the nearest equal params it may."""

    def pack(self, value: Any, cur: Cursor) -> bytes:
        text = compact_json(value) if value else b""
        back = cur.params_seen.get(text) if len(text) <= MAX_REPEATED_PARAMS_BYTES else None
        if text:
            cur.params_seen[text] = cur.index
        if back is not None:
            return write_varint(2 * (cur.index - back) - 1)
        return write_varint(2 * len(text)) + text

    def unpack(self, r: ByteReader, cur: Cursor, prefix: str, label: str) -> Any:
        where, i = prefix + label, cur.index
        code = r.varint(f"{where} code", 2 * max(r.remaining, i))
        if code % 2:
            back = (code + 1) // 2
            if back > i:
                raise FieldError(
                    f"{where} repeat those of the record {back} entries back; "
                    f"only {i} records precede it"
                )
            text = cur.params_json[i - back]
            if len(text) > MAX_REPEATED_PARAMS_BYTES:
                raise FieldError(
                    f"{where} repeat {len(text)} bytes of JSON; a repeat may cover "
                    f"at most {MAX_REPEATED_PARAMS_BYTES}"
                )
        else:
            text = r.take(code // 2, where)
        cur.params_json.append(text)
        return parse_json(text, where) if text else {}


@dataclass(frozen=True)
class Field:
    """One field of the layout: ``key`` (its name), ``wire`` (its bytes), ``check`` (what a
    valid value is; None: any value the wire form can hold) and ``label`` (how messages name
    it)."""

    key: str
    wire: Wire
    check: Checker | None
    label: str


#: The preamble: magic, major, minor (12 bytes), then the header length H and payload length P.
PREAMBLE: tuple[Field, ...] = (
    Field("magic", Fixed("8s"), None, "the magic"),
    Field("major", Fixed("<H"), None, "the major version"),
    Field("minor", Fixed("<H"), None, "the minor version"),
    Field("header_length", Varint(MAX_PAYLOAD_BYTES), None, "the header length"),
    Field("payload_length", Varint(MAX_PAYLOAD_BYTES), None, "the payload length"),
)
#: The fixed part of the preamble (a reader checks the version before anything else).
VERSION_FIELDS = PREAMBLE[:3]
LENGTH_FIELDS = PREAMBLE[3:]
VERSION_BYTES = sum(struct.calcsize(f.wire.fmt) for f in VERSION_FIELDS if isinstance(f.wire, Fixed))

#: The header: the file's metadata, the record count; RECORD follows once per record.
HEADER: tuple[Field, ...] = (
    Field("metadata", JsonObject(), check_json_object, "the metadata"),
    Field("count", Varint(lambda r: _rest_after_varint(r) // MIN_ENTRY_BYTES), None,
          "the record count"),
)

#: One record entry; its bytes follow the previous record's in the payload.
RECORD: tuple[Field, ...] = (
    Field("name", Name(), check_name, "the name"),
    Field("encoding", IdOf(ENCODING_IDS, ENCODING_ESCAPE), check_encoding, "the encoding"),
    Field("dtype", IdOf(DTYPE_IDS), check_dtype, "the dtype"),
    Field("shape", Shape(), check_shape, "the shape"),
    Field("params", Params(), check_json_object, "the params"),
    Field("length", Varint(MAX_PAYLOAD_BYTES), None, "the payload length"),
)


def pack_fields(
    fields: Sequence[Field], values: Mapping[str, Any], cur: Cursor, where: str
) -> bytes:
    """The bytes of ``values[f.key]`` for each field in order, each checked first (InputError
    naming ``where.key``)."""
    out = bytearray()
    for f in fields:
        value = values[f.key]
        if f.check is not None:
            value = f.check(value, f"{where}.{f.key}", InputError)
        out += f.wire.pack(value, cur)
    return bytes(out)


def unpack_field(f: Field, r: ByteReader, cur: Cursor, prefix: str) -> Any:
    """Read field ``f`` and check it (FieldError naming ``prefix + f.label``)."""
    value = f.wire.unpack(r, cur, prefix, f.label)
    if f.check is not None:
        value = f.check(value, prefix + f.label, FieldError)
    return value
