"""An entropy-coded Bloomier filter record: the filter's header, then each shard's cells coded
by :func:`weightless.entropy.encode_cells` (the paper's final "arithmetic coding" stage).

Layout::

    magic    b"WLBE" | version u8 = 1
    header   the filter's ``header_bytes()`` verbatim (44 + 20 S bytes, layout documented in
             :mod:`weightless.filters.wire`; it includes the CRC-32 of the *raw* tables)
    per shard: varint L | L bytes: encode_cells(cells, t) | the shard's aux bytes verbatim

Decoding rebuilds the raw filter bytes and parses them with
``BloomierFilter.from_bytes``, so the raw CRC-32 checks the whole round trip end to end.

Raw fallback: when this record would not be shorter than the raw filter bytes
(``to_bytes()``, magic ``b"WLBF"``), :func:`encode_filter` returns the raw bytes instead, and
:func:`decode_filter` accepts either (it dispatches on the magic).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadMagicError, FieldError, TruncatedError, UnsupportedVersionError
from ._bits import Reader, write_varint
from .table_coder import DEFAULT_MAX_CELLS, decode_cells, encode_cells

if TYPE_CHECKING:  # pragma: no cover
    from ..filters import BloomierFilter

__all__ = ["encode_filter", "decode_filter", "MAGIC"]

MAGIC = b"WLBE"
RAW_MAGIC = b"WLBF"
VERSION = 1
# From the documented filter layout: "<4sBBBBIIQQQI" header, "<IIQI" shard records.
_HEAD = struct.Struct("<4sBBBBIIQQQI")
_SHARD = struct.Struct("<IIQI")
_MAX_SHARDS = 1 << 16


def encode_filter(f: BloomierFilter, *, fast: bool = True) -> bytes:
    """Return the entropy-coded record of a ``weightless.filters.BloomierFilter``, or its raw
    ``to_bytes()`` if that is not longer (see the module docstring). ``fast``: let
    :func:`~weightless.entropy.encode_cells` choose the fast-decoding flags+raw kind."""
    parts = [MAGIC, bytes([VERSION]), f.header_bytes()]
    for s in f.shards:
        cells = encode_cells(np.asarray(s.cells), f.t, fast=fast)
        parts += [write_varint(len(cells)), cells, np.asarray(s.aux, dtype=np.uint8).tobytes()]
    coded = b"".join(parts)
    raw = f.to_bytes()
    return coded if len(coded) < len(raw) else raw


def decode_filter(data: bytes, *, max_cells: int = DEFAULT_MAX_CELLS) -> BloomierFilter:
    """Decode a record written by :func:`encode_filter` (or raw filter bytes) to the filter.

    Raises:
        FormatError (subclasses): bad magic/version, truncated or corrupt data, a shard larger
            than ``max_cells``, or a CRC mismatch of the rebuilt filter.
    """
    from ..filters import BloomierFilter  # noqa: F811  (lazy: keeps this module light)
    from ..filters.packing import pack_cells

    if bytes(data[:4]) == RAW_MAGIC:
        return BloomierFilter.from_bytes(data)
    r = Reader(data, "entropy-coded filter")
    if r.take(4, "magic") != MAGIC:
        raise BadMagicError(f"entropy-coded filter: bad magic, expected {MAGIC!r}")
    version = r.u8("version")
    if version != VERSION:
        raise UnsupportedVersionError(f"entropy-coded filter: version {version}, this reader supports {VERSION}")
    head = r.take(_HEAD.size, "filter header")
    t = head[6]
    shards = _HEAD.unpack(head)[6]
    if not 1 <= t <= 16:
        raise FieldError(f"entropy-coded filter: t = {t}, expected 1..16")
    if not 1 <= shards <= _MAX_SHARDS:
        raise FieldError(f"entropy-coded filter: {shards} shards, expected 1..{_MAX_SHARDS}")
    recs = r.take(_SHARD.size * shards, "shard records")
    body = []
    decoded = []
    for i in range(shards):
        _, m, _, aux_len = _SHARD.unpack_from(recs, _SHARD.size * i)
        if aux_len > r.remaining:
            raise TruncatedError(f"entropy-coded filter: shard {i} declares {aux_len} aux bytes")
        length = r.varint(f"shard {i} cell record length", r.remaining)
        cells = decode_cells(r.take(length, f"shard {i} cells"), m, t, max_cells=max_cells)
        decoded.append(cells)
        body.append(pack_cells(cells, t))
        body.append(r.take(aux_len, f"shard {i} aux"))
    r.expect_end()
    # the CRC of the rebuilt raw bytes checks the round trip; the cells need no unpacking again
    return BloomierFilter._parse(head + recs + b"".join(body), decoded)
