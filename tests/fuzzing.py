"""Structure-aware fuzzing of ``.wl`` files: mutate record fields, filter headers, shard records,
cell records and params, and the bytes of the container's binary header (format version 2:
names, ids, shapes, params codes, payload lengths), then recompute every checksum (the file's
blake2b-128 digest and its lengths, the filter CRC-32) so that the decoder is exercised past its
integrity checks.

Used by tests/test_fuzz_files.py (a few hundred seeded inputs) and benchmarks/fuzz_files.py
(100,000+ inputs, with and without numba).
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from typing import Any, Callable

import numpy as np

from weightless.container import Record, container_from_bytes, container_to_bytes
from weightless.container.format import MAGIC, write_varint
from weightless.errors import FormatError
from weightless.io.limits import Limits, check_records

from reference_decoder import read_varint

HEAD = struct.Struct("<4sBBBBIIQQQI")
SHARD = struct.Struct("<IIQI")
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 255, 256, 1 << 12, 1 << 16, (1 << 16) + 1, 1 << 20, 1 << 24,
               1 << 26, (1 << 31) - 1, 1 << 31, (1 << 32) - 1]
#: Limits for fuzzing: decoded tensors up to 64 MiB per file.
FUZZ_LIMITS = Limits.scaled(64 << 20)


def seed_files(use_compact: bool) -> list[bytes]:
    """Valid files of every record kind the writer produces (dense dtypes, paper and compact
    filters, raw and entropy-coded tables, one and several shards)."""
    from weightless.io.files import EncodedLayer, to_bytes
    from weightless.filters import build

    rng = np.random.default_rng(1)
    out = []
    dense = {"f32": rng.standard_normal(7).astype(np.float32), "i8": np.arange(-3, 3, dtype=np.int8),
             "b": np.array([True, False, True]), "f64": np.linspace(0, 1, 5), "e": np.zeros((0, 3), np.float32)}
    out.append(to_bytes(dense, metadata={"kind": "dense"}))
    out.append(to_bytes({"h": rng.standard_normal((3, 4)).astype(np.float32)}, dense_dtype="float16"))
    kinds = [("paper", 1, 0.05, 5), ("paper", 3, 0.05, 6), ("paper", 1, 0.5, 3), ("paper", 2, 0.003, 4)]
    if use_compact:
        kinds += [("compact", 1, 0.05, 5), ("compact", 2, 0.3, 3)]
    for i, (con, shards, density, t) in enumerate(kinds):
        size = 12000
        keys = np.flatnonzero(rng.random(size) < density)
        k = 3
        vals = rng.integers(0, k, keys.size)
        f = build(keys, vals, k=k, t=t, size=size, seed=i, construction=con, shards=shards)
        layer = EncodedLayer(f, np.array([-0.5, 0.25, 1.0], np.float32), (120, 100))
        for entropy in (True, False):
            out.append(to_bytes({"w": layer, "bias": np.ones(3, np.float32)}, entropy=entropy))
    out += coded_seed_files(rng)
    return out


def coded_seed_files(rng: np.random.Generator) -> list[bytes]:
    """Files of ``sparse`` and ``indexed`` records with every positions model (flat, lines,
    gaps, blocks, context, context with a stride) and symbols model (uniform, histogram,
    packed, left, left and up, one symbol), in four dtypes."""
    from weightless.io.clustered import Clustered, coded_record
    from weightless.container import container_to_bytes

    out = []
    cb = np.array([-0.5, 0.25, 1.0, 2.0, -3.0, 0.125, 4.0, 8.0])
    for shape, density, k, dtype in [((60, 50), 0.05, 3, "float32"), ((3000,), 0.3, 8, "float16"),
                                     ((40, 100), 0.02, 2, "bfloat16"), ((64, 64), 0.9, 5, "float64")]:
        size = int(np.prod(shape))
        idx = rng.integers(0, k, size)
        sparse = np.where(rng.random(size) < density, idx, -1)
        if len(shape) == 2:  # empty rows and columns: the lines model
            sparse.reshape(shape)[: shape[0] // 2] = -1
        recs = [coded_record("s", Clustered(sparse.reshape(shape), cb[:k], dtype), "sparse"),
                coded_record("i", Clustered(idx.reshape(shape), cb[:k], dtype), "indexed")]
        out.append(container_to_bytes(recs, {}))
    from test_coded_models3 import pixel_runs, structured  # positions models 3 and 5, symbols model 3

    blocks = Clustered(structured(rng, (40, 60), 6), cb[:6], "float32")
    context = Clustered(pixel_runs(rng, (60, 100), 6), cb[:6], "float32")
    out.append(container_to_bytes([coded_record("p", context, "sparse")], {}))
    from test_coded_models3 import golden_records  # its second record: positions model 4
    from test_coded_stride import golden_records as stride_records  # positions model 5, symbols model 4

    out.append(container_to_bytes([golden_records()[1], *stride_records()], {}))
    out.append(container_to_bytes(stride_records(flag_models=True)[1:], {}))  # positions model 7 (coded flags)
    dense = Clustered(np.clip(3 + np.cumsum(rng.choice([-1, 0, 0, 1], (8, 75)), axis=1), 0, 5), cb[:6], "float32")
    out.append(container_to_bytes([coded_record("b", blocks, "sparse"), coded_record("l", dense, "indexed")], {}))
    gaps = np.full(4000, -1)
    gaps[::37] = 1
    gaps[2000:2100] = 0
    out.append(container_to_bytes([coded_record("g", Clustered(gaps, cb[:2], "float32"), "sparse"),
                                   coded_record("c", Clustered(np.zeros(500, np.int64), cb[:3], "float32"), "indexed")],
                                  {}))
    return out


def _num(rng: random.Random, old: int, bits: int) -> int:
    r = rng.random()
    if r < 0.4:
        v = rng.choice(INTERESTING)
    elif r < 0.7:
        v = old + rng.choice([-2, -1, 1, 2, 3])
    elif r < 0.85:
        v = old ^ (1 << rng.randrange(bits))
    else:
        v = rng.getrandbits(bits)
    return v % (1 << bits)


def _fix_wlbe_crc(f: bytes) -> bytes:
    """Recompute the CRC-32 inside an entropy-coded filter record when its cell records decode
    (with the library's own decoder); otherwise leave it."""
    from weightless.entropy.table_coder import decode_cells
    from weightless.filters.packing import pack_cells

    try:
        head = f[5:49]
        t, S = head[6], HEAD.unpack(head)[6]
        p = 49 + 20 * S
        recs = f[49:p]
        crc = zlib.crc32(recs, zlib.crc32(head[:40]))
        for i in range(S):
            _, m, _, aux = SHARD.unpack_from(recs, 20 * i)
            if m > 1 << 18:
                return f
            L, p = read_varint(f, p)
            cells = decode_cells(f[p : p + L], m, t)
            p += L
            crc = zlib.crc32(f[p : p + aux], zlib.crc32(pack_cells(cells, t), crc))
            p += aux
        return f[:45] + struct.pack("<I", crc) + f[49:]
    except Exception:
        return f


def _fix_crc(f: bytes) -> bytes:
    if f[:4] == b"WLBF" and len(f) >= 44:
        return f[:40] + struct.pack("<I", zlib.crc32(f[44:], zlib.crc32(f[:40]))) + f[44:]
    if f[:4] == b"WLBE" and len(f) >= 49:
        return _fix_wlbe_crc(f)
    return f


def _mutate_filter(rng: random.Random, f: bytes) -> bytes:
    base = 5 if f[:4] == b"WLBE" else 0
    b = bytearray(f)
    if len(b) < base + 44:
        return bytes(b)
    S = struct.unpack_from("<I", b, base + 12)[0]
    choice = rng.random()
    if choice < 0.35:  # a header field
        offs = [(4, "B"), (5, "B"), (6, "B"), (7, "B"), (8, "I"), (12, "I"), (16, "Q"), (24, "Q"), (32, "Q")]
        o, fmt = rng.choice(offs)
        old = struct.unpack_from("<" + fmt, b, base + o)[0]
        struct.pack_into("<" + fmt, b, base + o, _num(rng, old, struct.calcsize(fmt) * 8))
    elif choice < 0.65 and S and len(b) >= base + 44 + 20 * min(S, 4096):  # a shard record field
        i = rng.randrange(min(S, 4096))
        o, fmt = rng.choice([(0, "I"), (4, "I"), (8, "Q"), (16, "I")])
        at = base + 44 + 20 * i + o
        if at + struct.calcsize(fmt) <= len(b):
            old = struct.unpack_from("<" + fmt, b, at)[0]
            struct.pack_into("<" + fmt, b, at, _num(rng, old, struct.calcsize(fmt) * 8))
    elif choice < 0.9 and len(b) > base + 44:  # bytes of the tables / cell records
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(base + 44, len(b))
            b[i] = rng.choice([0, 1, 0x11, 0x12, 0x13, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    else:  # cut or extend
        if rng.random() < 0.5:
            del b[rng.randrange(base + 44, len(b) + 1):]
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return _fix_crc(bytes(b))


def _mutate_params(rng: random.Random, params: dict) -> dict:
    p = dict(params)
    if not p or rng.random() < 0.2:
        p[rng.choice(["k", "t", "coding", "stored", "extra"])] = rng.choice([1, 1.0, True, "raw", [1], None])
        return p
    key = rng.choice(sorted(p))
    v = p[key]
    r = rng.random()
    if r < 0.2:
        del p[key]
    elif isinstance(v, bool) or not isinstance(v, int):
        p[key] = rng.choice([0, 1, "ans", "raw", "float16", "float64", "bool", "int8", [], {}, 2.0])
    elif r < 0.6:
        p[key] = _num(rng, v, 32)
    else:
        p[key] = rng.choice([float(v), str(v), v + 1, None])
    return p


def params_from_filter(filt: bytes, params: dict) -> dict:
    """The params a writer would store for these filter bytes (the fuzzer's "checksum" of
    params), or ``params`` unchanged when the header cannot be read."""
    base = 5 if filt[:4] == b"WLBE" else 0
    if len(filt) < base + 44:
        return params
    _, _, code, t, _, k, S, _, n, seed, _ = HEAD.unpack_from(filt, base)
    if not 1 <= S <= 4096 or len(filt) < base + 44 + 20 * S:
        return params
    shards = [SHARD.unpack_from(filt, base + 44 + 20 * i) for i in range(S)]
    return {
        "coding": "ans" if base else "raw", "construction": {1: "paper", 2: "compact"}.get(code, "paper"),
        "k": k, "t": t, "n": n, "m": sum(r[1] for r in shards), "seed": seed,
        "shards": [{"n": r[0], "m": r[1], "seed": r[2]} for r in shards],
    }


def split_v2(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(minor, header, payload) of a version 2 file whose lengths are consistent, else None."""
    try:
        if data[:8] != MAGIC or data[8:10] != b"\x02\x00":
            return None
        hlen, p = read_varint(data, 12)
        plen, p = read_varint(data, p)
    except IndexError:
        return None
    if len(data) != p + hlen + plen + 16:
        return None
    return int.from_bytes(data[10:12], "little"), data[p : p + hlen], data[p + hlen : p + hlen + plen]


def forge_v2(header: bytes, payload: bytes, minor: int = 0) -> bytes:
    """A version 2 file around any header and payload, with correct lengths and digest."""
    body = MAGIC + struct.pack("<HH", 2, minor) + write_varint(len(header)) + write_varint(len(payload))
    body += header + payload
    return body + hashlib.blake2b(body, digest_size=16).digest()


def _mutate_v2_header(rng: random.Random, data: bytes) -> bytes:
    """Mutate the bytes of a v2 file's binary header (or cut / grow its payload), then fix the
    lengths and the digest, so that the header parser sees the damage."""
    parts = split_v2(data)
    if parts is None:
        return data
    minor, header, payload = parts
    h = bytearray(header)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randrange(len(h) + 1)
        if op < 0.45 and h:  # one byte: an id, a length, a count, a varint continuation...
            h[min(i, len(h) - 1)] = rng.choice([0, 1, 2, 3, 4, 7, 12, 13, 32, 33, 0x7F, 0x80, 0x81, 0xFE, 0xFF,
                                                 rng.randrange(256)])
        elif op < 0.6 and h:
            h[min(i, len(h) - 1)] ^= 1 << rng.randrange(8)
        elif op < 0.75:  # insert a varint (e.g. a dimension, a long length)
            h[i:i] = write_varint(rng.choice(INTERESTING + [2**40, 2**63, 2**64 - 1]))
        elif op < 0.85 and h:
            del h[i : i + rng.randint(1, 4)]
        elif op < 0.9:
            h[i:i] = h[rng.randrange(len(h) + 1):][: rng.randint(1, 12)]
        elif op < 0.95:
            payload = payload[: rng.randrange(len(payload) + 1)]
        else:
            payload = payload + bytes(rng.randint(1, 8))
    return forge_v2(bytes(h), payload, rng.choice([minor] * 8 + [1]))


def mutate_coded(rng: random.Random, payload: bytes) -> bytes:
    """A structure-aware mutation of a coded record's payload: a varint (k, n, a count, a
    stream length) replaced by an interesting value, a stream emptied or cut, bytes inserted."""
    b = bytearray(payload)
    op = rng.random()
    i = rng.randrange(len(b) + 1)
    if op < 0.45:  # overwrite a varint-sized run with a new varint
        new = write_varint(rng.choice(INTERESTING + [rng.randrange(1 << 20)]))
        b[i : i + rng.randint(1, 3)] = new
    elif op < 0.6:  # a stream length of 0 (empty ANS stream) somewhere
        b[i : i + 1] = b"\x00"
    elif op < 0.75:  # cut
        del b[i:]
    elif op < 0.9:  # a model byte
        if b:
            b[min(i, len(b) - 1)] = rng.choice([0, 1, 2, 3, 255])
    else:  # insert
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(b)


def hostile_file(rng: random.Random) -> tuple[str, bytes]:
    """One generated hostile file of the issue 24 families: (family, bytes).

    - ``tiny_coded``: a sparse or indexed record declaring 2**8..2**30 elements with an empty
      stream, a one-word stream, a histogram of one used symbol, n = 0 or n = size;
    - ``lying_coded``: counts and lengths that do not agree with the streams that follow;
    - ``zero_shards``: a filter of many shards of all-zero tables coded in a few bytes each.
    """
    from crafted import bloomier_record, params_for, wl_bytes, zero_ans_filter

    family = rng.choice(["tiny_coded", "lying_coded", "zero_shards"])
    if family == "zero_shards":
        shards = 1 << rng.randrange(0, 13)
        m = 1 << rng.randrange(3, 16)
        size = max(1, (shards * m) // rng.choice([1, 2, 4]))
        filt = zero_ans_filter(k=1, t=2, size=size, ms=[m] * shards, kind=rng.choice([0x12, 0x13]))
        params = params_for(k=1, t=2, shards=[(0, m, 0)] * shards, coding="ans") if rng.random() < 0.5 else None
        return family, wl_bytes([bloomier_record("w", (size,), [0.5], filt, params)])
    size = 1 << rng.randrange(8, 31)
    k = rng.choice([1, 2, 3, 16, 256])
    cb = write_varint(k) + bytes([0]) + np.linspace(0, 1, k).astype("<f4").tobytes()
    enc = rng.choice(["sparse", "indexed"])
    word = write_varint(4) + struct.pack("<I", rng.choice([1, 2, 1 << 23, 1 << 31, rng.getrandbits(32)]))
    if family == "tiny_coded":
        sym = rng.choice([b"\x00" + write_varint(0), b"\x00" + word, b"\x01" + b"".join(
            write_varint(size if v == 0 else 0) for v in range(k)) + write_varint(0), b"\x02"])
        pos = rng.choice([write_varint(0), write_varint(size), write_varint(1) + b"\x00" + word,
                          write_varint(size - 1) + b"\x00" + write_varint(0)])
    else:
        n = rng.randrange(1, size)
        pos = write_varint(n) + bytes([rng.choice([0, 1, 2, 3, 4])]) + rng.choice([
            write_varint(0), word, bytes([rng.randint(1, 12)]) + write_varint(n) + write_varint(n) + write_varint(0),
            bytes([rng.randint(1, 16), rng.randint(1, 16)]) + b"\x00" + word + b"\x02" + write_varint(n)])
        counts = [rng.randrange(size) for _ in range(k)]
        sym = rng.choice([b"\x01" + b"".join(write_varint(c) for c in counts) + rng.choice([write_varint(0), word]),
                          b"\x03" + bytes([rng.randint(0, 255)]) + rng.choice([write_varint(0), word])])
    body = (pos if enc == "sparse" else b"") + sym
    dtype = rng.choice(["float32", "float16", "bfloat16", "float64"])
    if dtype != "float32":
        cb = write_varint(k) + bytes([3]) + np.linspace(0, 1, k).astype("<f8").tobytes()
        if dtype in ("float16", "bfloat16"):
            cb = write_varint(k) + bytes([1]) + np.linspace(0, 1, k).astype("<f2").tobytes()
    shape = rng.choice([(size,), (16, size // 16)])  # a grid: the lines and blocks models apply
    return family, container_to_bytes([Record("w", enc, shape, dtype, {}, cb + body)], {})


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One structure-aware mutation of a file, with every checksum recomputed. A file that
    does not parse (after a header mutation) gets another header mutation."""
    try:
        c = container_from_bytes(data)
    except FormatError:
        return _mutate_v2_header(rng, data)
    if rng.random() < 0.12:
        return _mutate_v2_header(rng, data)
    recs = list(c.records)
    i = rng.randrange(len(recs))
    r = recs[i]
    name, enc, shape, dtype, params, payload = r.name, r.encoding, r.shape, r.dtype, r.params, r.payload
    what = rng.random()
    if what < 0.5 and enc == "bloomier":
        k = params.get("k", 1) if isinstance(params.get("k"), int) else 1
        cb, filt = payload[: 4 * k], payload[4 * k :]
        if rng.random() < 0.15:
            cb = bytes(rng.randrange(256) for _ in range(len(cb)))
        filt = _mutate_filter(rng, filt)
        payload = cb + filt
        if rng.random() < 0.85:
            params = params_from_filter(filt, params)
    elif what < 0.65:
        params = _mutate_params(rng, params)
    elif what < 0.75:
        shape = rng.choice([(), (0,), (1,), tuple(shape) + (1,), (int(np.prod(shape)) + 1,), (1 << 20, 1 << 20),
                            (1 << 12,) * 3])
    elif what < 0.82:
        dtype = rng.choice(["float32", "float16", "float64", "int8", "bool", "bfloat16", "uint16", "int64"])
    elif what < 0.86:
        enc = rng.choice(["dense", "bloomier", "raw", "sparse", "indexed"])
    elif enc in ("sparse", "indexed") and what < 0.95:
        payload = mutate_coded(rng, payload)
    else:
        b = bytearray(payload)
        if b:
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        payload = bytes(b)
    try:
        recs[i] = Record(name, enc, shape, dtype, params, payload)
    except Exception:
        return data
    return container_to_bytes(recs, c.metadata)


def decode(data: bytes, limits: Limits, use_numba: bool | None = None) -> dict[str, np.ndarray]:
    """``load_arrays`` on bytes, with the decode path chosen by ``use_numba``."""
    from weightless.io.records import decode_filter_of, decode_record

    c = container_from_bytes(data)
    check_records(c.records, limits)
    out = {}
    for r in c.records:
        if r.encoding == "bloomier":
            f, cb = decode_filter_of(r, limits)
            out[r.name] = f.reconstruct(r.shape, cb, use_numba=use_numba)
        else:
            out[r.name] = decode_record(r, limits)
    return out


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or (FormatError subclass name, None) or ("CRASH:<type>", message)."""
    try:
        return "ok", fn()
    except FormatError as exc:
        return type(exc).__name__, None
    except Exception as exc:  # noqa: BLE001 - any other exception is a finding
        return f"CRASH:{type(exc).__name__}", str(exc)[:200]
