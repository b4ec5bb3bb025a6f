"""Write ``.wl`` containers: deterministic bytes, atomic file replacement."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from .._atomic import atomic_target
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

    The bytes go to a new temporary file ``.NAME.<12 hex>.tmp`` in the same folder (locked
    while written), are flushed and fsync'ed, and the file is renamed over ``path``
    (``os.replace``). On any failure the temporary file is removed and ``path`` is left as it
    was; temporary files left by killed writers of the same target are removed first (see
    :mod:`weightless._atomic`).

    Raises:
        InputError: invalid records or metadata (nothing is written).
        OSError: the folder does not exist, is not writable, the disk is full...
    """
    head, payloads = encode_parts(records, metadata)
    written = 0
    with atomic_target(path) as (_, fd):
        with os.fdopen(os.dup(fd), "wb") as f:
            for chunk in (head, *payloads):
                f.write(chunk)
                written += len(chunk)
    return written
