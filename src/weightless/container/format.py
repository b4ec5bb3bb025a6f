"""The ``.wl`` container format's names: constants, id tables, limits, and the value types
:class:`Record` and :class:`Container`. docs/FORMAT.md is the byte-level specification;
:mod:`.layout` declares the byte layout once (one table of fields, each with its wire form and
its checker), which both the writer and the reader use.

One major version exists, **2**: magic, version, the header and payload lengths, a compact
binary header, the records' bytes, a 16-byte digest. Readers reject any other major with
:class:`~weightless.errors.UnsupportedVersionError` (including 1, a JSON-header format used
only during development, before 0.1.0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .._bytes import MAX_VARINT_BYTES, ByteReader, write_varint
from ..errors import InputError
from .fields import (  # noqa: F401  (re-exported: one place for the format's names)
    CHECKSUM_BYTES,
    MAX_NDIM,
    MAX_ELEMENTS,
    MAX_NAME_CHARS,
    MAX_JSON_DEPTH,
    MIN_JSON_INT,
    MAX_JSON_INT,
    DTYPES,
    ENCODING_PATTERN,
    ErrorType,
    canonical_json,
    check_dtype,
    check_encoding,
    check_json_object,
    check_name,
    check_shape,
    compact_json,
    parse_json,
)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_MAJORS",
    "ENCODING_IDS",
    "ENCODING_ESCAPE",
    "DTYPE_IDS",
    "MAX_VARINT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_REPEATED_PARAMS_BYTES",
    "write_varint",
    "ByteReader",
    "MAX_HEADER_BYTES",
    "MAX_NDIM",
    "MAX_ELEMENTS",
    "MAX_NAME_CHARS",
    "MAX_JSON_DEPTH",
    "MIN_JSON_INT",
    "MAX_JSON_INT",
    "CHECKSUM_BYTES",
    "DTYPES",
    "ENCODING_PATTERN",
    "Record",
    "Container",
    "checksum",
    "canonical_json",
    "compact_json",
    "parse_json",
]

#: The first 8 bytes of every ``.wl`` file. Like PNG's: a high-bit byte catches 7-bit channels,
#: CR LF catches line-ending conversion, 0x1A stops ``type`` on DOS.
MAGIC = b"\x89WLS\r\n\x1a\n"
#: (major, minor) written. Readers accept any minor of a major they know.
FORMAT_VERSION = (2, 0)
#: The majors this reader reads.
SUPPORTED_MAJORS = (2,)

MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Payload lengths (and so file lengths) are below 2**63.
MAX_PAYLOAD_BYTES = 2**63 - 1

#: The dtype id byte of a record is an index into this tuple (fixed forever: append only).
DTYPE_IDS = (
    "float32", "float16", "bfloat16", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool",
)
assert frozenset(DTYPE_IDS) == DTYPES and len(DTYPE_IDS) == len(DTYPES)
#: The encoding id byte of a record is an index into this tuple (fixed forever: append only)
#: or ENCODING_ESCAPE, after which the name follows as a varint length and ASCII bytes.
ENCODING_IDS = ("dense", "bloomier", "sparse", "indexed")
ENCODING_ESCAPE = 255
#: A params back reference may only repeat params of at most this many JSON bytes, so a header
#: never expands to much more JSON than it holds (a record entry takes >= 7 bytes).
MAX_REPEATED_PARAMS_BYTES = 128


def checksum(*chunks: bytes | memoryview) -> bytes:
    """Return the 16-byte blake2b digest (``digest_size=16``, no key) of the concatenated chunks."""
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    for chunk in chunks:
        h.update(chunk)
    return h.digest()


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
        header_bytes: length of the binary header in bytes, ``H`` of the preamble (0 if not
            read from bytes).
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
