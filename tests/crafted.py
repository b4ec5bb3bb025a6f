"""Byte-level builders of (possibly hostile) ``.wl`` files with correct checksums.

Used by the limit regression tests, the structure-aware fuzz tests and
``benchmarks/fuzz_files.py``. Only the documented layouts are used (docs/FORMAT.md), plus
``weightless.container`` to wrap records (it recomputes every blake2b checksum).
"""

from __future__ import annotations

import struct
import zlib
from typing import Sequence

import numpy as np

from weightless.container import Record, container_to_bytes
from weightless.entropy._bits import write_varint as varint

HEAD = struct.Struct("<4sBBBBIIQQQI")
SHARD = struct.Struct("<IIQI")
PAPER, COMPACT = 1, 2


def packed_zero_cells(m: int, t: int) -> bytes:
    return bytes((m * t + 7) // 8)


def filter_header(*, k: int, t: int, size: int, shards: Sequence[tuple[int, int, int, int]], seed: int = 0,
                  code: int = PAPER, n: int | None = None, version: int = 1, block_bits: int = 12) -> tuple[bytes, bytes]:
    """(44-byte header without a valid CRC, shard records); shards are (n, m, seed, aux_len)."""
    n = sum(s[0] for s in shards) if n is None else n
    head = HEAD.pack(b"WLBF", version, code, t, block_bits, k, len(shards), size, n, seed, 0)
    recs = b"".join(SHARD.pack(*s) for s in shards)
    return head, recs


def with_crc(head: bytes, recs: bytes, body: bytes) -> bytes:
    """Raw filter bytes ``head | recs | body`` with the CRC-32 field recomputed."""
    crc = zlib.crc32(body, zlib.crc32(recs, zlib.crc32(head[:40])))
    return head[:40] + struct.pack("<I", crc) + recs + body


def fix_crc(raw: bytes) -> bytes:
    """Recompute the CRC-32 of raw filter bytes (``WLBF``)."""
    return with_crc(raw[:44], raw[44:44], raw[44:]) if len(raw) >= 44 else raw


def raw_filter(*, k: int, t: int, size: int, shards: Sequence[tuple[int, int, int, bytes, bytes]], seed: int = 0,
               code: int = PAPER) -> bytes:
    """Raw filter bytes; shards are (n, m, seed, packed cells, aux)."""
    head, recs = filter_header(k=k, t=t, size=size, seed=seed, code=code,
                               shards=[(n, m, s, len(aux)) for n, m, s, _, aux in shards])
    return with_crc(head, recs, b"".join(c + a for *_, c, a in shards))


def zero_ans_filter(*, k: int, t: int, size: int, ms: Sequence[int], seed: int = 0, kind: int = 0x12) -> bytes:
    """An entropy-coded filter (``WLBE``) of all-zero tables with 0 keys, ``ms[i]`` cells in
    shard i, each coded in a few bytes (zero+uniform with z = m, or a histogram), with a CRC
    that matches the zero tables (computed without allocating them)."""
    head, recs = filter_header(k=k, t=t, size=size, seed=seed, shards=[(0, m, 0, 0) for m in ms])
    crc = zlib.crc32(recs, zlib.crc32(head[:40]))
    chunk = bytes(1 << 20)
    for m in ms:
        left = (m * t + 7) // 8
        while left:
            step = min(left, len(chunk))
            crc = zlib.crc32(chunk[:step], crc)
            left -= step
    parts = [b"WLBE", b"\x01", head[:40], struct.pack("<I", crc), recs]
    for m in ms:
        if kind == 0x12:
            cell = bytes([0x12]) + varint(m)
        else:
            cell = bytes([0x13]) + varint(m) + b"\x00" * ((1 << t) - 1)
        parts += [varint(len(cell)), cell]
    return b"".join(parts)


def params_for(*, k: int, t: int, shards: Sequence[tuple[int, int, int]], seed: int = 0, code: int = PAPER,
               coding: str = "raw") -> dict:
    """The record params the writer stores for a filter; shards are (n, m, seed)."""
    return {
        "coding": coding, "construction": {PAPER: "paper", COMPACT: "compact"}[code], "k": k, "t": t,
        "n": sum(s[0] for s in shards), "m": sum(s[1] for s in shards), "seed": seed,
        "shards": [{"n": n, "m": m, "seed": s} for n, m, s in shards],
    }


def bloomier_record(name: str, shape: tuple[int, ...], codebook: Sequence[float], filt: bytes,
                    params: dict | None = None) -> Record:
    cb = np.asarray(codebook, dtype="<f4").tobytes()
    return Record(name, "bloomier", shape, "float32", params if params is not None else {"k": len(codebook)}, cb + filt)


def wl_bytes(records: Sequence[Record], metadata: dict | None = None) -> bytes:
    return container_to_bytes(list(records), metadata or {})
