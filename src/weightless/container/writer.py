"""Write ``.wl`` containers: deterministic bytes, atomic file replacement."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Sequence

from .._atomic import atomic_target
from ..errors import InputError
from .format import (
    CHECKED_PREAMBLE_SIZE,
    DTYPE_IDS,
    ENCODING_ESCAPE,
    ENCODING_IDS,
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_REPEATED_PARAMS_BYTES,
    PREAMBLE,
    RECORD_FIELDS,
    V1_VERSION,
    Record,
    check_dtype,
    check_encoding,
    check_json_object,
    check_name,
    check_object,
    check_shape,
    checksum,
    dumps_header,
    write_varint,
)

__all__ = ["container_to_bytes", "write_container", "encode_parts", "compact_json"]

_DTYPE_ID = {name: i for i, name in enumerate(DTYPE_IDS)}
_ENCODING_ID = {name: i for i, name in enumerate(ENCODING_IDS)}


def compact_json(value: Any) -> bytes:
    """The canonical JSON bytes of v2 metadata and params: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


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


def _check_header_size(n: int) -> None:
    if n > MAX_HEADER_BYTES:
        raise InputError(
            f"the header would be {n} bytes; the format allows at most "
            f"{MAX_HEADER_BYTES}; store large parameters (e.g. codebooks) in the payload instead"
        )


def _encode_v1(records: Sequence[Record], meta: dict) -> list[bytes]:
    entries = []
    payloads = []
    offset = 0
    for rec in records:
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
    _check_header_size(len(header_bytes))
    major, minor = V1_VERSION
    head = PREAMBLE.pack(MAGIC, major, minor, 0, len(header_bytes), offset, bytes(16))
    head = head[:CHECKED_PREAMBLE_SIZE]
    digest = checksum(head, header_bytes)
    return [head + digest + header_bytes, *payloads]


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def encode_header_v2(records: Sequence[Record], meta: dict) -> bytes:
    """The v2 binary header of ``records`` (already checked) and ``meta`` (docs/FORMAT.md)."""
    out = bytearray()
    meta_bytes = compact_json(meta) if meta else b""
    out += write_varint(len(meta_bytes)) + meta_bytes
    out += write_varint(len(records))
    prev = b""
    last_params: dict[bytes, int] = {}  # params JSON -> index of the last record that had it
    for i, rec in enumerate(records):
        # Re-check with the reader's checkers (Record checked these already; cheap, and it keeps
        # the writer's and the reader's definitions of a valid entry the same).
        where = f"records[{i}]"
        check_name(rec.name, f"{where}.name", InputError)
        check_encoding(rec.encoding, f"{where}.encoding", InputError)
        check_dtype(rec.dtype, f"{where}.dtype", InputError)
        check_shape(rec.shape, f"{where}.shape", InputError)
        check_json_object(rec.params, f"{where}.params", InputError)
        name = rec.name.encode("utf-8")
        shared = _common_prefix(prev, name)
        rest = name[shared:]
        out += write_varint(shared) + write_varint(len(rest)) + rest
        prev = name
        enc_id = _ENCODING_ID.get(rec.encoding)
        if enc_id is None:
            enc = rec.encoding.encode("ascii")  # ENCODING_PATTERN is ASCII
            out += bytes([ENCODING_ESCAPE]) + write_varint(len(enc)) + enc
        else:
            out.append(enc_id)
        out.append(_DTYPE_ID[rec.dtype])
        out.append(len(rec.shape))
        for d in rec.shape:
            out += write_varint(d)
        params = compact_json(rec.params) if rec.params else b""
        if params and len(params) <= MAX_REPEATED_PARAMS_BYTES and params in last_params:
            out += write_varint(2 * (i - last_params[params]) - 1)
        else:
            out += write_varint(2 * len(params)) + params
        if params:
            last_params[params] = i
        out += write_varint(len(rec.payload))
    return bytes(out)


def _encode_v2(records: Sequence[Record], meta: dict) -> list[bytes]:
    header = encode_header_v2(records, meta)
    _check_header_size(len(header))
    payload_len = sum(len(r.payload) for r in records)
    major, minor = FORMAT_VERSION
    head = (
        MAGIC
        + major.to_bytes(2, "little")
        + minor.to_bytes(2, "little")
        + write_varint(len(header))
        + write_varint(payload_len)
        + header
    )
    h = hashlib.blake2b(head, digest_size=16)
    for r in records:
        h.update(r.payload)
    return [head, *(r.payload for r in records), h.digest()]


def encode_parts(
    records: Sequence[Record], metadata: Mapping[str, Any], *, version: int = FORMAT_VERSION[0]
) -> list[bytes]:
    """Return the chunks of the file (their concatenation is the file).

    ``version`` is the format major: 2 (the default) or 1 (the previous version, for readers
    older than format 2). Records are stored in the order given; the same records and metadata
    always give the same bytes (JSON with sorted keys and fixed separators, no timestamps).

    Raises:
        InputError: ``records`` holds something other than :class:`Record`, two records share a
            name, ``metadata`` is not a JSON object, the header would exceed MAX_HEADER_BYTES,
            or ``version`` is neither 1 nor 2.
    """
    if version not in (1, 2) or isinstance(version, bool):
        raise InputError(
            f"version is {version!r}; expected 2 (the default) or 1 (the previous format)"
        )
    meta = _check_inputs(records, metadata)
    if version == 1:
        return _encode_v1(records, meta)
    return _encode_v2(records, meta)


def container_to_bytes(
    records: Sequence[Record], metadata: Mapping[str, Any], *, version: int = FORMAT_VERSION[0]
) -> bytes:
    """Return the complete ``.wl`` file for ``records`` (in this order) and ``metadata``.

    ``version``: the format major, 2 (default) or 1 (see :func:`encode_parts`).

    Raises:
        InputError: see :func:`encode_parts`.
    """
    return b"".join(encode_parts(records, metadata, version=version))


def write_container(
    path: str | os.PathLike[str],
    records: Sequence[Record],
    metadata: Mapping[str, Any],
    *,
    version: int = FORMAT_VERSION[0],
) -> int:
    """Write the container to ``path`` atomically; return the number of bytes written.

    ``version``: the format major, 2 (default) or 1 (see :func:`encode_parts`).

    The bytes go to a new temporary file ``.NAME.<12 hex>.tmp`` in the same folder (locked
    while written), are flushed and fsync'ed, and the file is renamed over ``path``
    (``os.replace``). On any failure the temporary file is removed and ``path`` is left as it
    was; temporary files left by killed writers of the same target are removed first (see
    :mod:`weightless._atomic`).

    Raises:
        InputError: invalid records or metadata (nothing is written).
        OSError: the folder does not exist, is not writable, the disk is full...
    """
    chunks = encode_parts(records, metadata, version=version)
    written = 0
    with atomic_target(path) as (_, fd):
        with os.fdopen(os.dup(fd), "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                written += len(chunk)
    return written
