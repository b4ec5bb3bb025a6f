"""Read ``.wl`` containers, validating every number and field before it is used.

The checks run in this order, each with its own :class:`~weightless.errors.FormatError`
subclass: magic (BadMagicError), version (UnsupportedVersionError: only major 2 is read), the
two length varints (TruncatedError if the file ends inside them, FieldError if overlong or above
2**63 - 1), the header length against the cap (HeaderTooLargeError), the declared total length
against the real one (TruncatedError if shorter, OffsetError if longer), the digest over every
byte before it (ChecksumError), then the header, field by field as :mod:`.layout` declares it:
metadata and params JSON (FieldError), names, encoding and dtype ids, shapes (FieldError),
payload lengths summing to P (OffsetError). No byte beyond the file's own length is ever
allocated: lengths are checked against the file size before anything is read.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol

from ..errors import (
    BadMagicError,
    ChecksumError,
    FieldError,
    HeaderTooLargeError,
    InputError,
    OffsetError,
    TruncatedError,
    UnsupportedVersionError,
)
from .format import (
    CHECKSUM_BYTES,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_VARINT_BYTES,
    ByteReader,
    Container,
    Record,
)
from .layout import (
    HEADER,
    LENGTH_FIELDS,
    RECORD,
    VERSION_BYTES,
    VERSION_FIELDS,
    Cursor,
    names_allowance,
    unpack_field,
)

__all__ = ["container_from_bytes", "read_container", "MAX_HEADER_BYTES"]


class _Source(Protocol):
    size: int
    #: True when the bytes may change between two reads (a file on disk).
    mutable: bool

    def read(self, offset: int, n: int) -> bytes: ...

    def hash_into(self, h: Any, offset: int, n: int) -> None: ...


_CHUNK = 1 << 20


class _BytesSource:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._view = memoryview(data).cast("B")
        except TypeError:
            raise InputError("data is a non-contiguous buffer; expected bytes") from None
        self.size = len(self._view)
        self.mutable = False

    def read(self, offset: int, n: int) -> bytes:
        return bytes(self._view[offset : offset + n])

    def hash_into(self, h: Any, offset: int, n: int) -> None:
        h.update(self._view[offset : offset + n])


class _FileSource:
    def __init__(self, f: Any, size: int) -> None:
        self._f = f
        self.size = size
        self.mutable = True

    def hash_into(self, h: Any, offset: int, n: int) -> None:
        end = offset + n
        while offset < end:
            step = min(_CHUNK, end - offset)
            h.update(self.read(offset, step))
            offset += step

    def read(self, offset: int, n: int) -> bytes:
        self._f.seek(offset)
        out = self._f.read(n)
        if len(out) != n:  # the file shrank while we read it
            raise TruncatedError(
                f"the file ended at byte {offset + len(out)} while reading {n} bytes at offset "
                f"{offset}; was it modified while being read?"
            )
        return out


#: The preamble's bytes at most: magic, version, two varints.
_MAX_PREAMBLE_BYTES = VERSION_BYTES + 2 * MAX_VARINT_BYTES


def _parse(src: _Source, max_header_bytes: int) -> Container:
    size = src.size
    # 1. magic: compare what exists, so a short prefix of a real file is "truncated".
    head = src.read(0, min(size, _MAX_PREAMBLE_BYTES))
    n = min(len(head), len(MAGIC))
    if head[:n] != MAGIC[:n]:
        raise BadMagicError(
            f"the file starts with {head[:8]!r}; expected the .wl magic {MAGIC!r} "
            "(is this a weightless container?)"
        )
    if size < VERSION_BYTES:
        raise TruncatedError(
            f"the file has {size} bytes; a .wl file has at least "
            f"{VERSION_BYTES + 2 + CHECKSUM_BYTES}"
        )
    # 2. version, before anything whose layout another major may have changed.
    pre = ByteReader(head, "the preamble", TruncatedError, FieldError)
    cur = Cursor()
    version = {f.key: unpack_field(f, pre, cur, "") for f in VERSION_FIELDS}
    major, minor = version["major"], version["minor"]
    if major != FORMAT_VERSION[0]:
        raise UnsupportedVersionError(_unsupported(major, minor))
    # 3. the two length varints (the file may end inside them: truncated).
    header_len, payload_len = (unpack_field(f, pre, cur, "") for f in LENGTH_FIELDS)
    start = pre.pos
    # 4. lengths, checked before anything is allocated.
    if header_len > max_header_bytes:
        raise HeaderTooLargeError(
            f"the header length is {header_len} bytes; the cap is {max_header_bytes} bytes"
        )
    total = start + header_len + payload_len + CHECKSUM_BYTES
    if size < total:
        raise TruncatedError(
            f"the file has {size} bytes; its preamble declares {start} + {header_len} (header) + "
            f"{payload_len} (payload) + {CHECKSUM_BYTES} (digest) = {total}; the file is truncated"
        )
    if size > total:
        raise OffsetError(
            f"the file has {size} bytes; its preamble declares {total} ({start} preamble + "
            f"{header_len} header + {payload_len} payload + {CHECKSUM_BYTES} digest); "
            f"{size - total} unexpected bytes follow the digest"
        )
    # 5. the digest covers every byte before it.
    stored = _check_digest(src)
    # 6. the header.
    metadata, entries = _parse_header(src.read(start, header_len), minor, payload_len)
    # 7. payloads (from a file: hashed again as read, in case the file changed meanwhile).
    records = []
    offset = start + header_len
    again = None
    if src.mutable:
        again = hashlib.blake2b(src.read(0, offset), digest_size=CHECKSUM_BYTES)
    for entry in entries:
        payload = src.read(offset, entry["length"])
        offset += entry["length"]
        if again is not None:
            again.update(payload)
        records.append(Record(entry["name"], entry["encoding"], entry["shape"], entry["dtype"],
                              entry["params"], payload))
    if again is not None and again.digest() != stored:
        raise ChecksumError("the file changed while it was being read; read it again")
    return Container(
        records=tuple(records),
        metadata=metadata,
        version=(major, minor),
        header_bytes=header_len,
        file_bytes=size,
    )


def _unsupported(major: int, minor: int) -> str:
    supported = f"{FORMAT_VERSION[0]}.x (it writes {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]})"
    if major == 1:
        return (
            f"the file has format version {major}.{minor}, which is not supported: version 1 "
            "(a JSON header) was written only by development versions before weightless 0.1.0; "
            f"this reader supports {supported}"
        )
    return (
        f"the file has format version {major}.{minor}; this reader supports {supported}; "
        "use a matching version of weightless"
    )


def _check_digest(src: _Source) -> bytes:
    """Check the digest (the last 16 bytes) against every byte before it; return it."""
    body = src.size - CHECKSUM_BYTES
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    src.hash_into(h, 0, body)
    stored = src.read(body, CHECKSUM_BYTES)
    if h.digest() != stored:
        raise ChecksumError(
            f"the file's checksum (blake2b-128 of every byte before the last 16) is "
            f"{h.hexdigest()} but the file stores {stored.hex()}; the file is corrupt"
        )
    return stored


def _parse_header(header: bytes, minor: int, payload_len: int) -> tuple[dict, list[dict]]:
    """(metadata, [record entry: the fields of RECORD by key]) of a binary header."""
    r = ByteReader(header, "the header", FieldError, FieldError)
    cur = Cursor(names_left=names_allowance(len(header)))
    top = {f.key: unpack_field(f, r, cur, "") for f in HEADER}
    entries: list[dict] = []
    names: dict[str, int] = {}
    covered = 0
    for i in range(top["count"]):
        cur.index = i
        prefix = f"header record {i}: "
        entry = {}
        for f in RECORD:
            entry[f.key] = unpack_field(f, r, cur, prefix)
            if f.key == "name":
                name = entry["name"]
                if name in names:
                    raise FieldError(
                        f"header records {i} and {names[name]} are both named {name!r}; "
                        "expected unique names"
                    )
                names[name] = i
                prefix = f"record {name!r} (header record {i}): "
        covered += entry["length"]
        if covered > payload_len:
            raise OffsetError(
                f"{prefix}the record ends at byte {covered} of the payload, outside the payload "
                f"of {payload_len} bytes"
            )
        entries.append(entry)
    if r.remaining and minor == 0:
        raise FieldError(
            f"the header has {r.remaining} unexpected bytes after the last record entry"
        )
    # (a newer minor of version 2 may append fields after the records: they are ignored)
    if covered != payload_len:
        raise OffsetError(
            f"the records cover {covered} bytes of the payload; the preamble declares "
            f"{payload_len}; expected the payload lengths to sum to the payload's length"
        )
    return top["metadata"], entries


def _check_cap(max_header_bytes: int) -> int:
    cap = max_header_bytes
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise InputError(f"max_header_bytes is {max_header_bytes!r}; expected a non-negative int")
    return max_header_bytes


def container_from_bytes(
    data: bytes | bytearray | memoryview, *, max_header_bytes: int = MAX_HEADER_BYTES
) -> Container:
    """Parse and fully validate a ``.wl`` file held in memory.

    Returns:
        The :class:`Container` (records in file order, metadata, version, sizes).

    Raises:
        InputError: ``data`` is not bytes-like.
        FormatError: the bytes are not a valid container; the subclass says which check failed
            (BadMagicError, UnsupportedVersionError, HeaderTooLargeError, TruncatedError,
            OffsetError, ChecksumError, FieldError).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data is a {type(data).__name__}; expected bytes")
    return _parse(_BytesSource(data), _check_cap(max_header_bytes))


def read_container(
    path: str | os.PathLike[str], *, max_header_bytes: int = MAX_HEADER_BYTES
) -> Container:
    """Read and fully validate the ``.wl`` file at ``path``.

    Each record's payload is read once, after the header has been validated, so the memory
    used is at most the file's size plus the header.

    Raises:
        FormatError: as for :func:`container_from_bytes`.
        OSError: the file cannot be opened or read (FileNotFoundError, IsADirectoryError...).
    """
    cap = _check_cap(max_header_bytes)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return _parse(_FileSource(f, size), cap)
