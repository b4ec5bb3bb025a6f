"""Write ``.wl`` containers: deterministic bytes, atomic file replacement."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Mapping, Sequence

from .._atomic import atomic_target
from ..errors import InputError
from .format import (
    CHECKSUM_BYTES,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    Record,
    check_json_object,
)
from .layout import HEADER, PREAMBLE, RECORD, Cursor, names_allowance, pack_fields

__all__ = ["container_to_bytes", "write_container", "encode_parts", "encode_header"]


def _check_inputs(records: Sequence[Record], metadata: Mapping[str, Any]) -> dict:
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise InputError(
            f"records is a {type(records).__name__}; expected a sequence (list or tuple) of Record"
        )
    meta = check_json_object(metadata, "metadata", InputError)
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, Record):
            raise InputError(f"records[{i}] is a {type(rec).__name__}; expected a Record")
        if rec.name in seen:
            raise InputError(f"records[{i}] repeats the name {rec.name!r}; names must be unique")
        seen.add(rec.name)
    return meta


def encode_header(records: Sequence[Record], meta: dict) -> bytes:
    """The binary header of ``records`` (already checked) and ``meta``: the fields of
    :data:`~.layout.HEADER`, then those of :data:`~.layout.RECORD` once per record. Every
    value is checked again by the table's checker (what the reader checks), so the writer's and
    the reader's definitions of a valid entry are the same."""
    cur = Cursor()
    out = [pack_fields(HEADER, {"metadata": meta, "count": len(records)}, cur, "header")]
    for i, rec in enumerate(records):
        cur.index = i
        values = {
            "name": rec.name, "encoding": rec.encoding, "dtype": rec.dtype, "shape": rec.shape,
            "params": rec.params, "length": len(rec.payload),
        }
        out.append(pack_fields(RECORD, values, cur, f"records[{i}]"))
    header = b"".join(out)
    if len(header) > MAX_HEADER_BYTES:
        raise InputError(
            f"the header would be {len(header)} bytes; the format allows at most "
            f"{MAX_HEADER_BYTES}; store large parameters (e.g. codebooks) in the payload instead"
        )
    names = sum(len(rec.name.encode("utf-8")) for rec in records)
    if names > names_allowance(len(header)):
        raise InputError(f"the names take {names} bytes, more than a header of {len(header)} bytes may hold "
                         f"({names_allowance(len(header))}); use shorter names")
    return header


def encode_parts(records: Sequence[Record], metadata: Mapping[str, Any]) -> list[bytes]:
    """Return the chunks of the file (their concatenation is the file): the preamble and header,
    each record's payload, the digest.

    Records are stored in the order given; the same records and metadata always give the same
    bytes (JSON with sorted keys and fixed separators, no timestamps).

    Raises:
        InputError: ``records`` holds something other than :class:`Record`, two records share a
            name, ``metadata`` is not a JSON object, or the header would exceed
            MAX_HEADER_BYTES, or the names are too long for it (docs/FORMAT.md, the name field).
    """
    meta = _check_inputs(records, metadata)
    header = encode_header(records, meta)
    major, minor = FORMAT_VERSION
    lengths = {
        "magic": MAGIC, "major": major, "minor": minor,
        "header_length": len(header), "payload_length": sum(len(r.payload) for r in records),
    }
    head = pack_fields(PREAMBLE, lengths, Cursor(), "preamble") + header
    h = hashlib.blake2b(head, digest_size=CHECKSUM_BYTES)
    for r in records:
        h.update(r.payload)
    return [head, *(r.payload for r in records), h.digest()]


def container_to_bytes(records: Sequence[Record], metadata: Mapping[str, Any]) -> bytes:
    """Return the complete ``.wl`` file for ``records`` (in this order) and ``metadata``.

    Raises:
        InputError: see :func:`encode_parts`.
    """
    return b"".join(encode_parts(records, metadata))


def write_container(
    path: str | os.PathLike[str],
    records: Sequence[Record],
    metadata: Mapping[str, Any],
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
    chunks = encode_parts(records, metadata)
    written = 0
    with atomic_target(path) as (_, fd):
        with os.fdopen(os.dup(fd), "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                written += len(chunk)
    return written
