"""The ``.wl`` container format: one description of the bytes, used by both reader and writer.

Two major versions exist (docs/FORMAT.md is the byte-level specification of both). The writer
produces **version 2** by default; readers accept 1 and 2 and reject any other major with
:class:`~weightless.errors.UnsupportedVersionError`.

Version 2 (a compact binary header; the container costs tens of bytes, not kilobytes)::

    magic    8 bytes  b"\\x89WLS\\r\\n\\x1a\\n"
    major    u16 LE = 2, minor u16 LE = 0
    H        varint   header length (at most MAX_HEADER_BYTES)
    P        varint   payload length
    header   H bytes  varint M, M bytes metadata JSON (M = 0: {}); varint R; R record entries:
                        varint shared, varint S, S bytes: name = previous name's first
                          `shared` UTF-8 bytes + these S bytes
                        u8 encoding id (ENCODING_IDS; 255: varint n + n ASCII bytes of name)
                        u8 dtype id (DTYPE_IDS)
                        u8 ndim, ndim varints: shape
                        varint J: even: J/2 bytes of params JSON (J = 0: {});
                          odd: params equal to those of the record (J+1)/2 entries back
                        varint L: payload length
    payload  P bytes  the records' bytes, back to back in header order
    digest   16 bytes blake2b-128 of every byte before it

Version 1 (the previous version, still read; written only on request)::

    offset size  field
    0      8     magic            b"\\x89WLS\\r\\n\\x1a\\n"
    8      2     major            u16 LE, 1
    10     2     minor            u16 LE, 0
    12     4     reserved         u32 LE, must be 0
    16     8     header_length    u64 LE, H (at most MAX_HEADER_BYTES)
    24     8     payload_length   u64 LE, P
    32     16    header_checksum  blake2b-128 of bytes [0, 32) followed by the header
    48     H     header           UTF-8 JSON object, space-padded so 48 + H is a multiple of 8
    48+H   P     payload          the records' bytes, back to back in header order

The v1 header is ``{"metadata": {...}, "records": [entry, ...]}``; every entry has the keys of
:data:`RECORD_FIELDS`. The checkers below are the single definition of what a valid value is
(for both versions): the writer runs them with :class:`~weightless.errors.InputError` on what it
is about to write, the reader with :class:`~weightless.errors.FieldError` on what it read, so
the two cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

from .._bytes import MAX_VARINT_BYTES, ByteReader, write_varint
from ..errors import InputError
from .fields import (  # noqa: F401  (re-exported: one place for the header's names)
    CHECKSUM_BYTES,
    PAYLOAD_ALIGN,
    MAX_NDIM,
    MAX_ELEMENTS,
    MAX_NAME_CHARS,
    MAX_JSON_DEPTH,
    MIN_JSON_INT,
    MAX_JSON_INT,
    DTYPES,
    ENCODING_PATTERN,
    ErrorType,
    FieldSpec,
    canonical_json,
    check_dtype,
    check_encoding,
    check_hex_checksum,
    check_json_object,
    check_name,
    check_object,
    check_offsets,
    check_records_list,
    check_shape,
)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_MAJORS",
    "V1_VERSION",
    "ENCODING_IDS",
    "ENCODING_ESCAPE",
    "DTYPE_IDS",
    "V2_FIXED_SIZE",
    "MAX_VARINT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_REPEATED_PARAMS_BYTES",
    "write_varint",
    "ByteReader",
    "PREAMBLE",
    "PREAMBLE_SIZE",
    "CHECKED_PREAMBLE_SIZE",
    "MAX_HEADER_BYTES",
    "MAX_NDIM",
    "MAX_ELEMENTS",
    "MAX_NAME_CHARS",
    "MAX_JSON_DEPTH",
    "MIN_JSON_INT",
    "MAX_JSON_INT",
    "PAYLOAD_ALIGN",
    "CHECKSUM_BYTES",
    "DTYPES",
    "ENCODING_PATTERN",
    "FieldSpec",
    "RECORD_FIELDS",
    "HEADER_FIELDS",
    "Record",
    "Container",
    "checksum",
    "canonical_json",
    "dumps_header",
]

#: The first 8 bytes of every ``.wl`` file. Like PNG's: a high-bit byte catches 7-bit channels,
#: CR LF catches line-ending conversion, 0x1A stops ``type`` on DOS.
MAGIC = b"\x89WLS\r\n\x1a\n"
#: (major, minor) written by default. Readers accept any minor of a major they know.
FORMAT_VERSION = (2, 0)
#: The majors this reader reads (1: JSON header, the previous version; 2: binary header).
SUPPORTED_MAJORS = (1, 2)
#: (major, minor) of the version 1 files the writer produces on request.
V1_VERSION = (1, 0)
#: v1: magic, major, minor, reserved, header_length, payload_length, header_checksum.
PREAMBLE = struct.Struct("<8sHHIQQ16s")
PREAMBLE_SIZE = PREAMBLE.size  # 48
#: The header checksum covers preamble bytes [0, CHECKED_PREAMBLE_SIZE) and the header.
CHECKED_PREAMBLE_SIZE = 32

MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Payload lengths (and so file lengths) are below 2**63.
MAX_PAYLOAD_BYTES = 2**63 - 1

#: v2: the dtype id byte of a record is an index into this tuple (fixed forever: append only).
DTYPE_IDS = (
    "float32", "float16", "bfloat16", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool",
)
assert frozenset(DTYPE_IDS) == DTYPES and len(DTYPE_IDS) == len(DTYPES)
#: v2: the encoding id byte of a record is an index into this tuple (fixed forever: append only)
#: or ENCODING_ESCAPE, after which the name follows as a varint length and ASCII bytes.
ENCODING_IDS = ("dense", "bloomier", "sparse", "indexed")
ENCODING_ESCAPE = 255
#: v2: a params back reference may only repeat params of at most this many JSON bytes, so a
#: header never expands to much more JSON than it holds (a record entry takes >= 7 bytes).
MAX_REPEATED_PARAMS_BYTES = 128
#: v2: magic, major, minor (the bytes before the two length varints).
V2_FIXED_SIZE = 12


def checksum(*chunks: bytes | memoryview) -> bytes:
    """Return the 16-byte blake2b digest (``digest_size=16``, no key) of the concatenated chunks."""
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    for chunk in chunks:
        h.update(chunk)
    return h.digest()


# --------------------------------------------------------------------------------------------
# Checkers: (value, where, err) -> canonical value; raise err with what was found and expected.
# --------------------------------------------------------------------------------------------


#: The keys of the top-level header object.
HEADER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("metadata", check_json_object, "free JSON object: model, recipe, versions"),
    FieldSpec("records", check_records_list, "list of record entries, in payload order"),
)

#: The keys of every record entry.
RECORD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("name", check_name, "unique tensor name, e.g. 'fc1.weight'"),
    FieldSpec("encoding", check_encoding, "how the payload encodes the tensor, e.g. 'bloomier'"),
    FieldSpec("shape", check_shape, "shape of the decoded tensor"),
    FieldSpec("dtype", check_dtype, "dtype of the decoded tensor"),
    FieldSpec("params", check_json_object, "encoding parameters, carried verbatim"),
    FieldSpec("offsets", check_offsets, "[begin, end) of the record's bytes in the payload"),
    FieldSpec("blake2b", check_hex_checksum, "blake2b-128 of the record's bytes, hex"),
)


def dumps_header(header: dict) -> bytes:
    """Canonical header bytes: sorted keys, no spaces, UTF-8, no NaN; space-padded so that the
    payload starts at a multiple of PAYLOAD_ALIGN."""
    text = json.dumps(
        header, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    pad = -(PREAMBLE_SIZE + len(text)) % PAYLOAD_ALIGN
    return text + b" " * pad


# --------------------------------------------------------------------------------------------
# The public value types.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One named tensor in a container, its payload kept as opaque bytes.

    Attributes:
        name: unique name, e.g. ``"fc1.weight"`` (1-1024 characters, no control characters).
        encoding: how ``payload`` encodes the tensor, e.g. ``"dense-f32"`` or ``"bloomier"``.
        shape: shape of the decoded tensor (non-negative ints, at most 2**40 elements).
        dtype: dtype of the decoded tensor, one of :data:`DTYPES`.
        params: encoding parameters (JSON data), stored verbatim. Kept in canonical form:
            tuples become lists and numpy scalars become int/float, so a record read back from
            a file compares equal to the one written.
        payload: the encoded bytes (bytes, bytearray or memoryview; stored as bytes).

    Raises:
        InputError: a field has the wrong type or an invalid value.
    """

    name: str
    encoding: str
    shape: tuple[int, ...]
    dtype: str
    params: dict = field(default_factory=dict)
    payload: bytes = b""

    def __post_init__(self) -> None:
        err = InputError
        set_ = object.__setattr__
        set_(self, "name", check_name(self.name, "Record.name", err))
        set_(self, "encoding", check_encoding(self.encoding, f"Record {self.name!r} encoding", err))
        set_(self, "shape", check_shape(self.shape, f"Record {self.name!r} shape", err))
        set_(self, "dtype", check_dtype(self.dtype, f"Record {self.name!r} dtype", err))
        set_(self, "params", check_json_object(self.params, f"Record {self.name!r} params", err))
        if not isinstance(self.payload, (bytes, bytearray, memoryview)):
            raise InputError(
                f"Record {self.name!r} payload is {type(self.payload).__name__}; expected bytes "
                "(use array.tobytes())"
            )
        set_(self, "payload", bytes(self.payload))

    @property
    def numel(self) -> int:
        """Number of elements of the decoded tensor (product of ``shape``)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Length of the payload in bytes."""
        return len(self.payload)


@dataclass(frozen=True)
class Container:
    """The content of a ``.wl`` file.

    Attributes:
        records: the records, in file order.
        metadata: the file-level JSON object (model name, recipe, versions...).
        version: ``(major, minor)`` format version of the file read (FORMAT_VERSION if built).
        header_bytes: length of the header in bytes, ``H`` of the preamble (v1: the JSON header;
            v2: the binary header) (0 if not read from bytes).
        file_bytes: total length of the file in bytes (0 if not read from bytes).
    """

    records: tuple[Record, ...]
    metadata: dict = field(default_factory=dict)
    version: tuple[int, int] = FORMAT_VERSION
    header_bytes: int = 0
    file_bytes: int = 0
    _index: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        records = tuple(self.records)
        index: dict[str, int] = {}
        for i, r in enumerate(records):
            if not isinstance(r, Record):
                raise InputError(f"Container.records[{i}] is {type(r).__name__}; expected Record")
            if r.name in index:
                raise InputError(
                    f"Container has two records named {r.name!r}; names must be unique"
                )
            index[r.name] = i
        object.__setattr__(self, "records", records)
        metadata = check_json_object(self.metadata, "metadata", InputError)
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "_index", index)

    def record(self, name: str) -> Record:
        """Return the record called ``name``.

        Raises:
            InputError: no record has this name (the message lists some names that exist).
        """
        try:
            return self.records[self._index[name]]
        except (KeyError, TypeError):
            names = list(self._index)
            shown = ", ".join(repr(n) for n in names[:10]) + (" ..." if len(names) > 10 else "")
            raise InputError(
                f"no record named {name!r}; the container has {shown or 'none'}"
            ) from None

    @property
    def names(self) -> tuple[str, ...]:
        """Record names in file order."""
        return tuple(r.name for r in self.records)

    @property
    def payload_bytes(self) -> int:
        """Sum of the records' payload lengths."""
        return sum(len(r.payload) for r in self.records)

    @property
    def overhead_bytes(self) -> int | None:
        """Bytes of the file that are not record payload (preamble, header, digest):
        ``file_bytes - payload_bytes``; None if the container was not read from bytes."""
        if not self.file_bytes:
            return None
        return self.file_bytes - self.payload_bytes
