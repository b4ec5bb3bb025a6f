"""Read ``.wl`` containers, validating every number and field before it is used.

Both format majors are read: 2 (binary header, written by default) and 1 (JSON header, the
previous version). Any other major raises UnsupportedVersionError right after the magic.

Version 2, in this order: magic (BadMagicError), version (UnsupportedVersionError), the two
length varints (TruncatedError if the file ends inside them, FieldError if overlong or above
2**63 - 1), the header length against the cap (HeaderTooLargeError), the declared total length
against the real one (TruncatedError if shorter, OffsetError if longer), the digest over every
byte before it (ChecksumError), then the header: metadata and params JSON (FieldError), names,
encoding and dtype ids, shapes (FieldError), payload lengths summing to P (OffsetError).

Version 1: the checks run in this order, each with its own :class:`~weightless.errors.FormatError`
subclass: magic (BadMagicError), version (UnsupportedVersionError), the rest of the preamble
(TruncatedError, FieldError for the reserved word), the header length against the cap
(HeaderTooLargeError), the declared total length against the real one (TruncatedError if
shorter, OffsetError if longer), the header checksum (ChecksumError), UTF-8 and JSON
(FieldError), the fields (FieldError), the offsets (OffsetError), each payload's checksum
(ChecksumError). No byte beyond the file's own length is ever allocated: lengths are checked
against the file size before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import math
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
    CHECKED_PREAMBLE_SIZE,
    CHECKSUM_BYTES,
    DTYPE_IDS,
    ENCODING_ESCAPE,
    ENCODING_IDS,
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    MAX_ELEMENTS,
    MAX_HEADER_BYTES,
    MAX_NAME_CHARS,
    MAX_NDIM,
    MAX_PAYLOAD_BYTES,
    MAX_REPEATED_PARAMS_BYTES,
    PREAMBLE,
    PREAMBLE_SIZE,
    RECORD_FIELDS,
    SUPPORTED_MAJORS,
    V1_VERSION,
    V2_FIXED_SIZE,
    ByteReader,
    Container,
    Record,
    check_encoding,
    check_json_object,
    check_name,
    check_object,
    check_shape,
    checksum,
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


def _loads_header(text: bytes, what: str = "the header") -> Any:
    """Parse UTF-8 JSON text with the value rules of docs/FORMAT.md (FieldError otherwise).

    ``what`` names the text in messages: the v1 header, or v2 metadata / a record's params.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(
            f"{what} is not valid UTF-8 (byte {exc.start} of it); expected UTF-8 JSON"
        ) from None

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise FieldError(
                    f"{what} repeats the key {k[:60]!r} in one object; expected unique keys"
                )
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise FieldError(f"{what} contains {name}; expected finite numbers only")

    def parse_float(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise FieldError(f"{what} contains the number {s[:40]} which overflows a double")
        return v

    def parse_int(s: str) -> int:
        if len(s) > 21:  # longer than any int64/uint64
            raise FieldError(
                f"{what} contains an integer of {len(s)} digits; "
                "expected one in [-2**63, 2**64)"
            )
        return int(s)

    try:
        return json.loads(
            decoded,
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=parse_float,
            parse_int=parse_int,
        )
    except FieldError:
        raise
    except RecursionError:
        raise FieldError(
            f"{what}: the JSON is nested too deeply to parse; expected at most 64 levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise FieldError(f"{what} is not valid JSON: {exc}") from None


def _parse(src: _Source, max_header_bytes: int) -> Container:
    size = src.size
    # 1. magic: compare what exists, so a short prefix of a real file is "truncated".
    head = src.read(0, min(size, PREAMBLE_SIZE))
    n = min(len(head), len(MAGIC))
    if head[:n] != MAGIC[:n]:
        raise BadMagicError(
            f"the file starts with {head[:8]!r}; expected the .wl magic {MAGIC!r} "
            "(is this a weightless container?)"
        )
    if size < V2_FIXED_SIZE:
        raise TruncatedError(
            f"the file has {size} bytes; a .wl file has at least "
            f"{V2_FIXED_SIZE + 2 + CHECKSUM_BYTES}"
        )
    # 2. version, before anything whose layout another major may have changed.
    major = int.from_bytes(head[8:10], "little")
    minor = int.from_bytes(head[10:12], "little")
    if major == 2:
        return _parse_v2(src, head, minor, max_header_bytes)
    if major != 1:
        raise UnsupportedVersionError(
            f"the file has format version {major}.{minor}; this reader supports "
            f"{' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)} (it writes "
            f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}); use a matching version of weightless"
        )
    return _parse_v1(src, head, major, minor, max_header_bytes)


def _parse_v1(
    src: _Source, head: bytes, major: int, minor: int, max_header_bytes: int
) -> Container:
    size = src.size
    if size < PREAMBLE_SIZE:
        raise TruncatedError(f"the file has {size} bytes; a .wl file has at least {PREAMBLE_SIZE}")
    _, _, _, reserved, header_len, payload_len, header_digest = PREAMBLE.unpack(head)
    if reserved != 0:
        raise FieldError(f"the reserved preamble word is {reserved:#x}; expected 0")
    # 3. lengths, checked before anything is allocated.
    if header_len > max_header_bytes:
        raise HeaderTooLargeError(
            f"the header length is {header_len} bytes; the cap is {max_header_bytes} bytes"
        )
    total = PREAMBLE_SIZE + header_len + payload_len
    if size < total:
        raise TruncatedError(
            f"the file has {size} bytes; its preamble declares {PREAMBLE_SIZE} + {header_len} "
            f"(header) + {payload_len} (payload) = {total}; the file is truncated"
        )
    if size > total:
        raise OffsetError(
            f"the file has {size} bytes; its preamble declares {total} "
            f"({PREAMBLE_SIZE} + {header_len} header + {payload_len} payload); "
            f"{size - total} unexpected bytes follow the payload"
        )
    # 4. header checksum.
    header = src.read(PREAMBLE_SIZE, header_len)
    got = checksum(head[:CHECKED_PREAMBLE_SIZE], header)
    if got != header_digest:
        raise ChecksumError(
            f"the header checksum is {got.hex()} but the file stores {header_digest.hex()}; "
            "the header or preamble is corrupt"
        )
    # 5. JSON and fields.
    obj = _loads_header(header)
    newer = minor > V1_VERSION[1]
    top = check_object(obj, HEADER_FIELDS, "header", FieldError, allow_unknown=newer)
    entries = []
    names: dict[str, int] = {}
    for i, raw in enumerate(top["records"]):
        where = f"header.records[{i}]"
        entry = check_object(raw, RECORD_FIELDS, where, FieldError, allow_unknown=newer)
        if entry["name"] in names:
            raise FieldError(
                f"header.records[{i}] and header.records[{names[entry['name']]}] are both named "
                f"{entry['name']!r}; expected unique names"
            )
        names[entry["name"]] = i
        entries.append(entry)
    # 6. offsets: contiguous from 0, last end == payload length.
    expected = 0
    for i, entry in enumerate(entries):
        begin, end = entry["offsets"]
        if begin != expected:
            what = "overlaps the previous record" if begin < expected else "leaves a hole"
            raise OffsetError(
                f"record {entry['name']!r} (header.records[{i}]) begins at {begin}, which {what}; "
                f"expected it to begin at {expected}"
            )
        if end > payload_len:
            raise OffsetError(
                f"record {entry['name']!r} ends at {end}, outside the payload of "
                f"{payload_len} bytes"
            )
        expected = end
    if expected != payload_len:
        raise OffsetError(
            f"the records cover {expected} bytes of the payload; the preamble declares "
            f"{payload_len}; expected the last record to end at the payload's end"
        )
    # 7. payloads and their checksums.
    base = PREAMBLE_SIZE + header_len
    records = []
    for entry in entries:
        begin, end = entry["offsets"]
        payload = src.read(base + begin, end - begin)
        got_hex = checksum(payload).hex()
        if got_hex != entry["blake2b"]:
            raise ChecksumError(
                f"record {entry['name']!r}: payload checksum is {got_hex} but the header stores "
                f"{entry['blake2b']}; the payload is corrupt"
            )
        records.append(
            Record(
                name=entry["name"],
                encoding=entry["encoding"],
                shape=entry["shape"],
                dtype=entry["dtype"],
                params=entry["params"],
                payload=payload,
            )
        )
    return Container(
        records=tuple(records),
        metadata=top["metadata"],
        version=(major, minor),
        header_bytes=header_len,
        file_bytes=size,
    )


#: The fewest header bytes a v2 record entry takes (shared, S, encoding, dtype, ndim, J, L).
_MIN_ENTRY_BYTES = 7
#: A name is at most MAX_NAME_CHARS code points, so at most 4 bytes each in UTF-8.
_MAX_NAME_BYTES = 4 * MAX_NAME_CHARS


def _parse_v2(src: _Source, head: bytes, minor: int, max_header_bytes: int) -> Container:
    size = src.size
    # 3. the two length varints (the file may end inside them: truncated).
    pre = ByteReader(head, "the preamble", TruncatedError, FieldError)
    pre.pos = V2_FIXED_SIZE
    header_len = pre.varint("the header length", MAX_PAYLOAD_BYTES)
    payload_len = pre.varint("the payload length", MAX_PAYLOAD_BYTES)
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
    body = size - CHECKSUM_BYTES
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    src.hash_into(h, 0, body)
    stored = src.read(body, CHECKSUM_BYTES)
    if h.digest() != stored:
        raise ChecksumError(
            f"the file's checksum (blake2b-128 of every byte before the last 16) is "
            f"{h.hexdigest()} but the file stores {stored.hex()}; the file is corrupt"
        )
    # 6. the header.
    header = src.read(start, header_len)
    metadata, entries = _parse_header_v2(header, minor, payload_len)
    # 7. payloads (from a file: hashed again as read, in case the file changed meanwhile).
    records = []
    offset = start + header_len
    again = None
    if src.mutable:
        again = hashlib.blake2b(src.read(0, offset), digest_size=CHECKSUM_BYTES)
    for name, encoding, dtype, shape, params, length in entries:
        payload = src.read(offset, length)
        offset += length
        if again is not None:
            again.update(payload)
        records.append(Record(name, encoding, shape, dtype, params, payload))
    if again is not None and again.digest() != stored:
        raise ChecksumError("the file changed while it was being read; read it again")
    return Container(
        records=tuple(records),
        metadata=metadata,
        version=(2, minor),
        header_bytes=header_len,
        file_bytes=size,
    )


def _parse_header_v2(header: bytes, minor: int, payload_len: int) -> tuple[dict, list[tuple]]:
    """(metadata, [(name, encoding, dtype, shape, params, payload length)]) of a v2 header."""
    r = ByteReader(header, "the header", FieldError, FieldError)
    # (a varint takes at least one byte: what remains after it is at most remaining - 1)
    m = r.varint("the metadata length", max(0, r.remaining - 1))
    metadata = {}
    if m:
        metadata = check_json_object(
            _loads_header(r.take(m, "the metadata"), "the header's metadata"),
            "the header's metadata",
            FieldError,
        )
    count = r.varint("the record count", max(0, r.remaining - 1) // _MIN_ENTRY_BYTES)
    entries: list[tuple] = []
    names: dict[str, int] = {}
    params_json: list[bytes] = []
    prev = b""
    covered = 0
    for i in range(count):
        where = f"header record {i}"
        shared = r.varint(f"{where}: the shared name prefix", len(prev))
        limit = min(max(0, r.remaining - 1), _MAX_NAME_BYTES - shared)
        rest = r.varint(f"{where}: the name length", limit)
        raw = prev[:shared] + r.take(rest, f"{where}: the name")
        prev = raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FieldError(
                f"{where}: the name is not valid UTF-8 (byte {exc.start} of it)"
            ) from None
        name = check_name(text, f"{where}: the name", FieldError)
        if name in names:
            raise FieldError(
                f"header records {i} and {names[name]} are both named {name!r}; "
                "expected unique names"
            )
        names[name] = i
        where = f"record {name!r} (header record {i})"
        code = r.u8(f"{where}: the encoding id")
        if code < len(ENCODING_IDS):
            encoding = ENCODING_IDS[code]
        elif code == ENCODING_ESCAPE:
            n = r.varint(f"{where}: the encoding name length", 64)
            enc = r.take(n, f"{where}: the encoding name")
            try:
                encoding = enc.decode("ascii")
            except UnicodeDecodeError:
                raise FieldError(f"{where}: the encoding name {enc!r} is not ASCII") from None
            encoding = check_encoding(encoding, f"{where}: the encoding", FieldError)
        else:
            raise FieldError(
                f"{where}: the encoding id is {code}; expected 0-{len(ENCODING_IDS) - 1} "
                f"({', '.join(ENCODING_IDS)}) or {ENCODING_ESCAPE} (a name follows)"
            )
        code = r.u8(f"{where}: the dtype id")
        if code >= len(DTYPE_IDS):
            raise FieldError(
                f"{where}: the dtype id is {code}; expected 0-{len(DTYPE_IDS) - 1} "
                f"({', '.join(DTYPE_IDS)})"
            )
        dtype = DTYPE_IDS[code]
        ndim = r.u8(f"{where}: the number of dimensions")
        if ndim > min(MAX_NDIM, r.remaining):
            raise FieldError(
                f"{where} has {ndim} dimensions; expected at most {MAX_NDIM} (and at most the "
                f"{r.remaining} header bytes that remain)"
            )
        dims = [r.varint(f"{where}: shape[{j}]", MAX_ELEMENTS) for j in range(ndim)]
        shape = check_shape(dims, f"{where}: the shape", FieldError)
        code = r.varint(f"{where}: the params code", 2 * max(r.remaining, i))
        if code % 2:  # the same params as the record `back` entries before this one
            back = (code + 1) // 2
            if back > i:
                raise FieldError(
                    f"{where}: the params repeat those of the record {back} entries back; "
                    f"only {i} records precede it"
                )
            text = params_json[i - back]
            if len(text) > MAX_REPEATED_PARAMS_BYTES:
                raise FieldError(
                    f"{where}: the params repeat {len(text)} bytes of JSON; a repeat may cover "
                    f"at most {MAX_REPEATED_PARAMS_BYTES}"
                )
        else:
            text = r.take(code // 2, f"{where}: the params")
        params_json.append(text)
        params = {}
        if text:
            params = check_json_object(
                _loads_header(text, f"{where}: the params"), f"{where}: the params", FieldError
            )
        length = r.varint(f"{where}: the payload length", MAX_PAYLOAD_BYTES)
        if covered + length > payload_len:
            raise OffsetError(
                f"{where} ends at byte {covered + length} of the payload, outside the payload "
                f"of {payload_len} bytes"
            )
        covered += length
        entries.append((name, encoding, dtype, shape, params, length))
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
    return metadata, entries


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
