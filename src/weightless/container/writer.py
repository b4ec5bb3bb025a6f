"""Write ``.wl`` containers: deterministic bytes, atomic file replacement."""

from __future__ import annotations

import os
import secrets
from typing import Any, Mapping, Sequence

from ..errors import InputError
from .format import (
    CHECKED_PREAMBLE_SIZE,
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    MAX_HEADER_BYTES,
    PREAMBLE,
    RECORD_FIELDS,
    Record,
    check_json_object,
    check_object,
    checksum,
    dumps_header,
)

__all__ = ["container_to_bytes", "write_container", "encode_parts"]


def encode_parts(
    records: Sequence[Record], metadata: Mapping[str, Any]
) -> tuple[bytes, list[bytes]]:
    """Return ``(preamble + header, payloads)``: the file is their concatenation.

    Records are stored in the order given; the same records and metadata always give the same
    bytes (JSON with sorted keys and fixed separators, no timestamps).

    Raises:
        InputError: ``records`` holds something other than :class:`Record`, two records share a
            name, ``metadata`` is not a JSON object, or the header would exceed MAX_HEADER_BYTES.
    """
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise InputError(
            f"records is a {type(records).__name__}; expected a sequence (list or tuple) of Record"
        )
    meta = check_json_object(metadata, "metadata", InputError)
    entries = []
    payloads = []
    seen: set[str] = set()
    offset = 0
    for i, rec in enumerate(records):
        if not isinstance(rec, Record):
            raise InputError(f"records[{i}] is a {type(rec).__name__}; expected a Record")
        if rec.name in seen:
            raise InputError(f"records[{i}] repeats the name {rec.name!r}; names must be unique")
        seen.add(rec.name)
        end = offset + len(rec.payload)
        entries.append(
            {
                "name": rec.name,
                "encoding": rec.encoding,
                "shape": list(rec.shape),
                "dtype": rec.dtype,
                "params": rec.params,
                "offsets": [offset, end],
                "blake2b": checksum(rec.payload).hex(),
            }
        )
        payloads.append(rec.payload)
        offset = end
    header = {"metadata": meta, "records": entries}
    # Check what we write with the reader's own description (InputError instead of FieldError).
    check_object(header, HEADER_FIELDS, "header", InputError, allow_unknown=False)
    for i, entry in enumerate(entries):
        check_object(entry, RECORD_FIELDS, f"records[{i}]", InputError, allow_unknown=False)
    header_bytes = dumps_header(header)
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise InputError(
            f"the header would be {len(header_bytes)} bytes; the format allows at most "
            f"{MAX_HEADER_BYTES}; store large parameters (e.g. codebooks) in the payload instead"
        )
    major, minor = FORMAT_VERSION
    head = PREAMBLE.pack(MAGIC, major, minor, 0, len(header_bytes), offset, bytes(16))
    head = head[:CHECKED_PREAMBLE_SIZE]
    digest = checksum(head, header_bytes)
    return head + digest + header_bytes, payloads


def container_to_bytes(records: Sequence[Record], metadata: Mapping[str, Any]) -> bytes:
    """Return the complete ``.wl`` file for ``records`` (in this order) and ``metadata``.

    Raises:
        InputError: see :func:`encode_parts`.
    """
    head, payloads = encode_parts(records, metadata)
    return b"".join([head, *payloads])


def write_container(
    path: str | os.PathLike[str], records: Sequence[Record], metadata: Mapping[str, Any]
) -> int:
    """Write the container to ``path`` atomically; return the number of bytes written.

    The bytes go to a new temporary file in the same folder, are flushed and fsync'ed, and the
    file is renamed over ``path`` (``os.replace``). On any failure the temporary file is
    removed and ``path`` is left as it was.

    Raises:
        InputError: invalid records or metadata (nothing is written).
        OSError: the folder does not exist, is not writable, the disk is full...
    """
    head, payloads = encode_parts(records, metadata)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = ""
    fd = -1
    for _ in range(16):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(tmp, flags, 0o666)  # the umask applies, like open()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 16 collisions of 48 random bits
        raise FileExistsError(f"could not create a unique temporary file in {folder}")
    written = 0
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1
            for chunk in (head, *payloads):
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    return written


def _fsync_dir(folder: str) -> None:
    """Make the rename durable where the OS allows opening a directory (best effort)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)
