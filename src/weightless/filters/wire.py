"""The byte format of a filter (little-endian), written by ``BloomierFilter.to_bytes()``::

    header, 44 bytes:
      magic b"WLBF" | version u8 = 1 | construction code u8 | t u8 | block_bits u8
      k u32 | shards u32 | size u64 | n u64 | seed u64
      crc32 u32 (of the 40 header bytes before it, then every byte after it)
    per shard, 20 bytes:  n u32 | m u32 | seed u64 | aux length u32
    per shard: cells, ceil(m t / 8) bytes (see :mod:`weightless.filters.packing`), then aux.

So one shard costs a 64-byte header plus exactly ``ceil(m t / 8)`` bytes of cells.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Sequence

import numpy as np

from ..errors import BadMagicError, ChecksumError, FieldError, FormatError, InputError, TruncatedError, UnsupportedVersionError
from .base import Shard, get_construction
from .packing import pack_cells, packed_size, unpack_cells
from .params import MASK64, MAX_CELLS, MAX_SHARDS, MAX_SIZE, check_kt
from .sharding import BLOCK_BITS

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "SHARD_RECORD_SIZE",
    "HEAD",
    "SHARD",
    "encode",
    "parse",
    "validate_params",
    "shard_records",
]

MAGIC = b"WLBF"
VERSION = 1
HEAD = struct.Struct("<4sBBBBIIQQQI")
SHARD = struct.Struct("<IIQI")
HEADER_SIZE = HEAD.size  # 44
SHARD_RECORD_SIZE = SHARD.size  # 20


def shard_records(shards: Sequence[Shard]) -> bytes:
    """The 20-byte shard records of ``shards``, back to back."""
    return b"".join(SHARD.pack(s.n, s.m, s.seed, int(s.aux.shape[0])) for s in shards)


def encode(code: int, t: int, block_bits: int, k: int, size: int, n: int, seed: int, shards: Sequence[Shard]) -> bytes:
    """Return the serialized filter (see the module docstring)."""
    recs = shard_records(shards)
    body = b"".join(pack_cells(s.cells, t) + s.aux.tobytes() for s in shards)
    head = HEAD.pack(MAGIC, VERSION, code, t, block_bits, k, len(shards), size, n, seed, 0)
    crc = zlib.crc32(body, zlib.crc32(recs, zlib.crc32(head[: HEADER_SIZE - 4])))
    return head[: HEADER_SIZE - 4] + struct.pack("<I", crc) + recs + body


def parse(
    data: bytes | bytearray | memoryview, unpacked: Sequence[np.ndarray] | None = None
) -> tuple[dict, list, list]:
    """Parse serialized filter bytes into ``(params, cells per shard, aux per shard)``.

    ``unpacked`` are the shards' cells when the caller already holds them (an entropy decoder
    that rebuilt these bytes), which saves unpacking them again.

    Raises:
        FormatError (a subclass: BadMagicError, UnsupportedVersionError, TruncatedError,
        FieldError, ChecksumError): the bytes are not a valid filter. Every length is checked
        against the data before anything is allocated.
    """
    try:
        mv = memoryview(data).cast("B")
    except TypeError as exc:
        raise FormatError(f"expected bytes, got {type(data).__name__}") from exc
    if len(mv) < HEADER_SIZE:
        raise TruncatedError(f"filter: {len(mv)} bytes, shorter than the {HEADER_SIZE}-byte header")
    params, crc = parse_header(mv)
    t = params["t"]
    pos = HEADER_SIZE + SHARD_RECORD_SIZE * len(params["shards"])
    spans = []
    for meta in params["shards"]:
        cl = packed_size(meta["m"], t)
        spans.append((pos, pos + cl, pos + cl + meta["aux_len"]))
        pos += cl + meta["aux_len"]
    if len(mv) < pos:
        raise TruncatedError(f"filter: {len(mv)} bytes, the declared tables end at {pos}")
    if len(mv) > pos:
        raise FieldError(f"filter: {len(mv) - pos} trailing bytes after the tables")
    if zlib.crc32(mv[HEADER_SIZE:], zlib.crc32(mv[: HEADER_SIZE - 4])) != crc:
        raise ChecksumError("filter: CRC-32 of the header, shard records and tables does not match")
    if unpacked is None:
        cells = [unpack_cells(mv[a:b], meta["m"], t) for (a, b, _), meta in zip(spans, params["shards"])]
    else:
        cells = list(unpacked)
    aux = [np.frombuffer(mv[b:e], dtype=np.uint8).copy() for (_, b, e) in spans]
    return params, cells, aux


def parse_header(mv: memoryview) -> tuple[dict, int]:
    """Parse and validate the header and shard records at the start of ``mv``; returns
    ``(params, stored crc)``.

    Raises:
        FormatError (a subclass): bad magic, version, counts or fields; truncated records.
    """
    magic, ver, code, t, bb, k, S, size, n, seed, crc = HEAD.unpack_from(mv, 0)
    if magic != MAGIC:
        raise BadMagicError(f"filter: bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if ver != VERSION:
        raise UnsupportedVersionError(f"filter: format version {ver}, this reader supports {VERSION}")
    if not 1 <= S <= MAX_SHARDS:
        raise FieldError(f"filter: {S} shards, expected 1..{MAX_SHARDS}")
    rec_end = HEADER_SIZE + SHARD_RECORD_SIZE * S
    if len(mv) < rec_end:
        raise TruncatedError(f"filter: {len(mv)} bytes, shard records end at {rec_end}")
    recs = [SHARD.unpack_from(mv, HEADER_SIZE + SHARD_RECORD_SIZE * i) for i in range(S)]
    try:
        con = get_construction(int(code))
    except InputError as exc:
        raise FieldError(f"filter: unknown construction code {code}") from exc
    params = {
        "version": ver,
        "construction": con.name,
        "k": k,
        "t": t,
        "size": size,
        "n": n,
        "seed": seed,
        "block_bits": bb,
        "shards": [{"n": r[0], "m": r[1], "seed": r[2], "aux_len": r[3]} for r in recs],
    }
    validate_params(params)
    return params, crc


def validate_params(params: Any) -> None:
    """Check a params dict (from ``BloomierFilter.params()`` or a header); FieldError if bad."""
    if not isinstance(params, dict):
        raise FieldError(f"filter params must be a dict, got {type(params).__name__}")

    def need(name: str, lo: int, hi: int) -> int:
        v = params.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
            raise FieldError(f"filter params: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        return int(v)

    if "version" in params and params["version"] != VERSION:
        raise UnsupportedVersionError(f"filter params: version {params['version']!r}, expected {VERSION}")
    name = params.get("construction")
    try:
        con = get_construction(name if isinstance(name, str) else -1)
    except InputError as exc:
        raise FieldError(f"filter params: unknown construction {name!r}") from exc
    if "construction_code" in params and params["construction_code"] != con.code:
        raise FieldError(f"filter params: construction code {params['construction_code']!r} != {con.code}")
    k = need("k", 1, 1 << 15)
    t = need("t", 1, 16)
    try:
        check_kt(k, t)
    except InputError as exc:
        raise FieldError(f"filter params: {exc}") from exc
    size = need("size", 1, MAX_SIZE)
    n = need("n", 0, size)
    need("seed", 0, MASK64)
    bb = need("block_bits", 0, 62) if "block_bits" in params else BLOCK_BITS
    if bb != BLOCK_BITS:
        raise FieldError(f"filter params: block_bits {bb}, this version uses {BLOCK_BITS}")
    metas = params.get("shards")
    if not isinstance(metas, (list, tuple)) or not 1 <= len(metas) <= MAX_SHARDS:
        raise FieldError(f"filter params: shards must be a list of 1..{MAX_SHARDS} records")
    total = 0
    for i, meta in enumerate(metas):
        if not isinstance(meta, dict):
            raise FieldError(f"filter params: shard {i} must be a dict")
        for f, hi in (("n", MAX_CELLS), ("m", MAX_CELLS), ("seed", MASK64), ("aux_len", 1 << 40)):
            v = meta.get(f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= hi:
                raise FieldError(f"filter params: shard {i} field {f} must be an integer in [0, {hi}], got {v!r}")
        if meta["n"] > meta["m"] or (meta["n"] > 0 and meta["m"] < 3):
            raise FieldError(f"filter params: shard {i} has n = {meta['n']} keys but m = {meta['m']} cells")
        total += int(meta["n"])
    if total != n:
        raise FieldError(f"filter params: shard key counts sum to {total}, header says n = {n}")
