"""Read ``.wl`` containers, validating every number and field before it is used.

The checks run in this order, each with its own :class:`~weightless.errors.FormatError`
subclass: magic (BadMagicError), version (UnsupportedVersionError), the rest of the preamble
(TruncatedError, FieldError for the reserved word), the header length against the cap
(HeaderTooLargeError), the declared total length against the real one (TruncatedError if
shorter, OffsetError if longer), the header checksum (ChecksumError), UTF-8 and JSON
(FieldError), the fields (FieldError), the offsets (OffsetError), each payload's checksum
(ChecksumError). No byte beyond the file's own length is ever allocated: lengths are checked
against the file size before anything is read.
"""

from __future__ import annotations

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
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    MAX_HEADER_BYTES,
    PREAMBLE,
    PREAMBLE_SIZE,
    RECORD_FIELDS,
    Container,
    Record,
    check_object,
    checksum,
)

__all__ = ["container_from_bytes", "read_container", "MAX_HEADER_BYTES"]


class _Source(Protocol):
    size: int

    def read(self, offset: int, n: int) -> bytes: ...


class _BytesSource:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._view = memoryview(data).cast("B")
        except TypeError:
            raise InputError("data is a non-contiguous buffer; expected bytes") from None
        self.size = len(self._view)

    def read(self, offset: int, n: int) -> bytes:
        return bytes(self._view[offset : offset + n])


class _FileSource:
    def __init__(self, f: Any, size: int) -> None:
        self._f = f
        self.size = size

    def read(self, offset: int, n: int) -> bytes:
        self._f.seek(offset)
        out = self._f.read(n)
        if len(out) != n:  # the file shrank while we read it
            raise TruncatedError(
                f"the file ended at byte {offset + len(out)} while reading {n} bytes at offset "
                f"{offset}; was it modified while being read?"
            )
        return out


def _loads_header(text: bytes) -> Any:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(
            f"the header is not valid UTF-8 (byte {exc.start} of the header); expected UTF-8 JSON"
        ) from None

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise FieldError(
                    f"the header repeats the key {k[:60]!r} in one object; expected unique keys"
                )
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise FieldError(f"the header contains {name}; expected finite numbers only")

    def parse_float(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise FieldError(f"the header contains the number {s[:40]} which overflows a double")
        return v

    def parse_int(s: str) -> int:
        if len(s) > 21:  # longer than any int64/uint64
            raise FieldError(
                f"the header contains an integer of {len(s)} digits; "
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
            "the header JSON is nested too deeply to parse; expected at most 64 levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise FieldError(f"the header is not valid JSON: {exc}") from None


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
    if size < len(MAGIC) + 4:
        raise TruncatedError(f"the file has {size} bytes; a .wl file has at least {PREAMBLE_SIZE}")
    # 2. version, before anything whose layout a newer major may have changed.
    major = int.from_bytes(head[8:10], "little")
    minor = int.from_bytes(head[10:12], "little")
    if major != FORMAT_VERSION[0]:
        raise UnsupportedVersionError(
            f"the file has format version {major}.{minor}; this reader supports "
            f"{FORMAT_VERSION[0]}.x (up to {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}); "
            "use a matching version of weightless"
        )
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
    newer = minor > FORMAT_VERSION[1]
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
