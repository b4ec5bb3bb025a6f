"""A decoder of ``.wl`` files written from docs/FORMAT.md alone (numpy and the standard
library; nothing of weightless). Section numbers refer to docs/FORMAT.md.

It decodes valid files; on invalid input it raises ``ValueError`` for the checks it performs
(magic, version, lengths, checksums, CRC, ANS end state), which are not all of a full reader's.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import struct
import zlib

import numpy as np

from reference_coded3 import blocks_mask, coded_flags, context_grid, left_symbols

M64 = (1 << 64) - 1
U64 = np.uint64


# --------------------------------------------------------------------------- 1. container
DTYPE_IDS = ("float32", "float16", "bfloat16", "float64", "int8", "int16", "int32", "int64",
             "uint8", "uint16", "uint32", "uint64", "bool")
ENCODING_IDS = ("dense", "bloomier", "sparse", "indexed")


def read_container(data: bytes) -> tuple[dict, list[tuple[dict, bytes]]]:
    """Section "Layout" and "Header": (metadata, [(record entry, payload bytes)]); an entry has
    the keys name, encoding, shape, dtype, params."""
    if data[:8] != b"\x89WLS\r\n\x1a\n":
        raise ValueError("magic")
    major = struct.unpack_from("<H", data, 8)[0]
    if major != 2:
        raise ValueError(f"version {major}")
    hlen, p = read_varint(data, 12)
    plen, p = read_varint(data, p)
    if len(data) != p + hlen + plen + 16:
        raise ValueError("lengths")
    if hashlib.blake2b(data[:-16], digest_size=16).digest() != data[-16:]:
        raise ValueError("digest")
    header, payload = data[p : p + hlen], data[p + hlen : p + hlen + plen]
    m, q = read_varint(header, 0)
    metadata = json.loads(header[q : q + m].decode("utf-8")) if m else {}
    count, q = read_varint(header, q + m)
    entries, params_json, prev, offset = [], [], b"", 0
    for i in range(count):
        shared, q = read_varint(header, q)
        n, q = read_varint(header, q)
        name = prev[:shared] + header[q : q + n]
        prev, q = name, q + n
        code = header[q]
        q += 1
        if code == 255:
            n, q = read_varint(header, q)
            encoding, q = header[q : q + n].decode("ascii"), q + n
        else:
            encoding = ENCODING_IDS[code]
        dtype, ndim = DTYPE_IDS[header[q]], header[q + 1]
        q += 2
        shape = []
        for _ in range(ndim):
            d, q = read_varint(header, q)
            shape.append(d)
        j, q = read_varint(header, q)
        if j % 2:
            text = params_json[i - (j + 1) // 2]
        else:
            text, q = header[q : q + j // 2], q + j // 2
        params_json.append(text)
        length, q = read_varint(header, q)
        entry = {"name": name.decode("utf-8"), "encoding": encoding, "shape": shape, "dtype": dtype,
                 "params": json.loads(text.decode("utf-8")) if text else {}}
        entries.append((entry, payload[offset : offset + length]))
        offset += length
    if q != len(header) or offset != plen:
        raise ValueError("header")
    return metadata, entries


# --------------------------------------------------------------------------- 4. hashing
def fmix(z):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = z ^ (z >> U64(30))
    z = z * U64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> U64(27))
    z = z * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


def seed_word(seed: int) -> np.uint64:
    return fmix(np.array([(seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & M64], dtype=U64))[0]


def hash64(keys, seed: int):
    return fmix(np.asarray(keys, dtype=U64) + seed_word(seed))


def reduce32(h, n: int):
    return ((h >> U64(32)) * U64(n)) >> U64(32)


# --------------------------------------------------------------------------- 6. cell records
def read_varint(b: bytes, p: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        x = b[p]
        p += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, p


def unpack_msb(b: bytes, count: int, width: int) -> np.ndarray:
    if len(b) != (count * width + 7) // 8:
        raise ValueError("packed length")
    bits = np.unpackbits(np.frombuffer(b, dtype=np.uint8))[: count * width].reshape(count, width)
    weights = (1 << np.arange(width - 1, -1, -1)).astype(np.int64)
    return (bits.astype(np.int64) * weights).sum(axis=1) if count else np.zeros(0, np.int64)


def quantized_cdf(probs: list[float]) -> list[int]:
    """constriction's fast quantization at 24-bit precision (section 6.3)."""
    n = len(probs)
    norm = 0.0
    for p in probs:  # sequential sum, in order
        norm += p
    scale = float((1 << 24) - n) / norm
    cdf, cum = [], 0.0
    for i, p in enumerate(probs):
        cdf.append(int(cum * scale) + i)
        cum += p
    return cdf + [1 << 24]


def ans_decode(words: list[int], probs: list[float], m: int) -> list[int]:
    """constriction's AnsCoder (32-bit words, 64-bit state) decoding m symbols (section 6.4)."""
    cdf = quantized_cdf(probs)
    stack = list(words)
    state = 0
    if stack:
        state = stack.pop()
        if state == 0:
            raise ValueError("ANS: last word is zero")
        while stack and state < (1 << 32):
            state = (state << 32) | stack.pop()
    out = []
    for _ in range(m):
        q = state & ((1 << 24) - 1)
        s = bisect.bisect_right(cdf, q, 0, len(cdf) - 1) - 1
        state = (state >> 24) * (cdf[s + 1] - cdf[s]) + (q - cdf[s])
        if state < (1 << 32) and stack:
            state = (state << 32) | stack.pop()
        out.append(s)
    if state != 0 or stack:
        raise ValueError("ANS: stream not consumed exactly")
    return out


def decode_cell_record(rec: bytes, m: int, t: int) -> np.ndarray:
    tag = rec[0]
    if tag == 0x11:
        return unpack_msb(rec[1:], m, t)
    if tag == 0x12:
        z, p = read_varint(rec, 1)
        if z == m:
            return np.zeros(m, np.int64)
        probs = [z / m] + [(m - z) / m / ((1 << t) - 1)] * ((1 << t) - 1)
    elif tag == 0x13:
        p, counts = 1, []
        for _ in range(1 << t):
            c, p = read_varint(rec, p)
            counts.append(c)
        probs = [c / m for c in counts]
    elif tag == 0x14:  # zero flags (ANS, 8 per symbol) + raw nonzero cells
        z, p = read_varint(rec, 1)
        n_flags, p = read_varint(rec, p)
        if not 0 < z < m:
            raise ValueError("0x14: zero count")
        nb, q = -(-m // 8), (m - z) / m
        probs = [q ** bin(b).count("1") * (1 - q) ** (8 - bin(b).count("1")) for b in range(256)]
        fw = rec[p : p + n_flags]
        flag_bytes = ans_decode(list(struct.unpack(f"<{len(fw) // 4}I", fw)), probs, nb)
        bits = np.unpackbits(np.array(flag_bytes, dtype=np.uint8))  # bit 7 - j of byte b = cell 8b + j
        if bits[m:].any() or int(bits[:m].sum()) != m - z:
            raise ValueError("0x14: flags")
        raw = rec[p + n_flags :]
        if len(raw) != -(-(m - z) * t // 8):
            raise ValueError("0x14: nonzero cells length")
        cells = np.zeros(m, np.int64)
        cells[np.flatnonzero(bits[:m])] = unpack_msb(raw, m - z, t)
        return cells
    else:
        raise ValueError("cell record tag")
    words = list(struct.unpack(f"<{(len(rec) - p) // 4}I", rec[p:]))
    return np.array(ans_decode(words, probs, m), dtype=np.int64)


# --------------------------------------------------------------------------- 3. filter records
HEAD = struct.Struct("<4sBBBBIIQQQI")
SHARD = struct.Struct("<IIQI")


def parse_filter(f: bytes) -> tuple[dict, list[tuple[int, int, int, np.ndarray, bytes]]]:
    """Return (header fields, [(n, m, seed, cells, aux) per shard]) of a WLBF or WLBE record."""
    coded = f[:4] == b"WLBE"
    base = 5 if coded else 0
    _, ver, code, t, bb, k, S, size, n, seed, crc = HEAD.unpack_from(f, base)
    if ver != 1 or bb != 12:
        raise ValueError("filter version")
    recs = [SHARD.unpack_from(f, base + 44 + 20 * i) for i in range(S)]
    p = base + 44 + 20 * S
    shards = []
    for sn, sm, sseed, aux_len in recs:
        if coded:
            L, p = read_varint(f, p)
            cells = decode_cell_record(f[p : p + L], sm, t)
            p += L
        else:
            L = (sm * t + 7) // 8
            cells = unpack_msb(f[p : p + L], sm, t)
            p += L
        aux = f[p : p + aux_len]
        p += aux_len
        shards.append((sn, sm, sseed, cells, aux))
    if p != len(f):
        raise ValueError("trailing bytes")
    raw_tables = b"".join(_pack_msb(c, t) + a for *_, c, a in shards)
    head = f[base : base + 40]
    if zlib.crc32(raw_tables, zlib.crc32(f[base + 44 : base + 44 + 20 * S], zlib.crc32(head))) != crc:
        raise ValueError("filter CRC")
    return {"code": code, "t": t, "k": k, "size": size, "seed": seed, "S": S}, shards


def _pack_msb(cells: np.ndarray, t: int) -> bytes:
    if cells.size == 0:
        return b""
    bits = ((cells[:, None] >> np.arange(t - 1, -1, -1)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


# --------------------------------------------------------------------------- 5. raw words
def paper_raw(cells: np.ndarray, t: int, seed: int, pos):
    m = cells.shape[0]
    z = hash64(pos, seed)
    q, q2 = m // 3, m - 2 * (m // 3)
    h0 = ((z >> U64(32)) * U64(q)) >> U64(32)
    h1 = U64(q) + (((z & U64(0xFFFFFFFF)) * U64(q)) >> U64(32))
    h2 = U64(2 * q) + ((((z * U64(0xD6E8FEB86659FD93)) >> U64(32)) * U64(q2)) >> U64(32))
    c = cells.astype(np.int64)
    return c[h0.astype(np.int64)] ^ c[h1.astype(np.int64)] ^ c[h2.astype(np.int64)] ^ (z & U64((1 << t) - 1)).astype(np.int64)


def compact_raw(cells: np.ndarray, aux: bytes, t: int, seed: int, pos):
    m = cells.shape[0]
    S = struct.unpack_from("<I", aux, 1)[0]
    width, last_try = aux[5], aux[6]
    counts = list(struct.unpack_from(f"<{S - 1}{'H' if width == 2 else 'I'}", aux, 7))
    ms = counts + [m - sum(counts)]
    offs = np.concatenate([[0], np.cumsum(ms)[:-1]]).astype(np.int64)
    ssw = seed_word(seed)
    tr = [0] * (S - 1) + [last_try]
    sws = fmix((hash64(np.arange(S), seed) ^ np.array([ms[i] | (tr[i] << 48) for i in range(S)], dtype=U64)) + ssw)
    h = hash64(pos, seed)
    s = reduce32(h, S).astype(np.int64)
    msa = np.array(ms, dtype=np.int64)[s]
    w = np.minimum(msa, 64)
    sw = sws[s]
    mul = (sw >> U64(32)) | U64(1)
    st = ((((h & U64(0xFFFFFFFF)) * mul) & U64(0xFFFFFFFF)) * (msa - w + 1).astype(U64)) >> U64(32)
    g = offs[s] + st.astype(np.int64)
    a = (h ^ sw) * U64(0xC28F82822B650BED)
    c = (a ^ (a >> U64(32))) | U64(1)
    c = np.where(w >= 64, c, c & ((U64(1) << w.astype(U64)) - U64(1)))
    raw = (h & U64((1 << t) - 1)).astype(np.int64)
    cz = np.concatenate([cells.astype(np.int64), np.zeros(64, np.int64)])
    for b in range(64):
        bit = ((c >> U64(b)) & U64(1)).astype(bool)
        raw ^= np.where(bit, cz[g + b], 0)
    return raw


# --------------------------------------------------------------------------- 2, 5. records
def decode_bloomier(entry: dict, payload: bytes) -> np.ndarray:
    k = entry["params"]["k"]
    codebook = np.frombuffer(payload[: 4 * k], dtype="<f4").astype(np.float32)
    hdr, shards = parse_filter(payload[4 * k :])
    t, size, S, seed = hdr["t"], hdr["size"], hdr["S"], hdr["seed"]
    pos = np.arange(size, dtype=np.uint64)
    if S == 1:
        sid = np.zeros(size, np.int64)
    else:
        sid = reduce32(hash64(pos >> U64(12), seed ^ 0x3C6EF372FE94F82B), S).astype(np.int64)
    raw = np.full(size, (1 << t) - 1, dtype=np.int64)
    for s, (_, m, sseed, cells, aux) in enumerate(shards):
        sel = np.flatnonzero(sid == s)
        if m == 0 or sel.size == 0:
            continue
        p = pos[sel]
        raw[sel] = paper_raw(cells, t, sseed, p) if hdr["code"] == 1 else compact_raw(cells, aux, t, sseed, p)
    lut = np.zeros(1 << t, dtype=np.float32)
    lut[:k] = codebook
    return lut[raw].reshape(entry["shape"])


# --------------------------------------------------------------------------- 8. coded records
def _words(b: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(b) // 4}I", b))


def _cost(p: float) -> float:
    """8.4: the least bits a symbol of probability p costs."""
    return -math.log2(p + 2.0**-23)


def _min_length(length: int, least: float) -> None:
    """8.4: a stream that must hold ``least`` > 0 bits is not empty and not too short."""
    if least > 0 and (length == 0 or 8 * length + 256 < 0.95 * least):
        raise ValueError("8.4: stream shorter than its minimum length")


def decode_symbols(b: bytes, p: int, count: int, k: int, left: tuple | None = None) -> tuple[np.ndarray, int]:
    """Section 8.3: ``count`` symbols in [0, k); returns (symbols, next offset). ``left``:
    (codebook, positions of the symbols, row length) where model 3 is allowed."""
    if k <= 1 or count == 0:
        return np.zeros(count, np.int64), p
    model = b[p]
    p += 1
    if model in (3, 4) and left is not None:
        return left_symbols(b, p, count, k, *left, read_varint, up=model == 4)
    if model == 2:  # packed
        w = max(k - 1, 0).bit_length()
        n = (count * w + 7) // 8
        return unpack_msb(b[p : p + n], count, w), p + n
    if model == 1:
        counts = []
        for _ in range(k):
            c, p = read_varint(b, p)
            counts.append(c)
        if sum(counts) != count:
            raise ValueError("8.3: counts")
        probs = [c / count for c in counts]
    elif model == 0:
        probs = [1.0 / k] * k
    else:
        raise ValueError("8.3: model")
    n, p = read_varint(b, p)
    if model == 1 and sum(1 for c in counts if c) == 1:
        return np.full(count, next(i for i, c in enumerate(counts) if c), np.int64), p + n
    _min_length(n, sum(c * _cost(q) for c, q in zip(counts[1:], probs[1:])) if model == 1 else 1.0)
    return np.array(ans_decode(_words(b[p : p + n]), probs, count), dtype=np.int64), p + n


def _flat_mask(b: bytes, p: int, size: int, n: int | None = None) -> tuple[np.ndarray, int]:
    """Section 8.2, flat model: (mask, next offset); reads the count unless given."""
    if n is None:
        n, p = read_varint(b, p)
    if n in (0, size):
        return np.full(size, n == size), p
    q = n / size
    probs = [q ** bin(x).count("1") * (1 - q) ** (8 - bin(x).count("1")) for x in range(256)]
    L, p = read_varint(b, p)
    _min_length(L, n * min(_cost(probs[x]) / bin(x).count("1") for x in range(1, 256)))
    flags = ans_decode(_words(b[p : p + L]), probs, -(-size // 8))
    mask = np.unpackbits(np.array(flags, dtype=np.uint8))
    if mask[size:].any() or int(mask.sum()) != n:
        raise ValueError("8.2: flat mask")
    return mask[:size].astype(bool), p + L


def _positions(b: bytes, p: int, size: int, rows: int) -> tuple[np.ndarray, int]:
    """Section 8.2: a positions stream (mask, next offset)."""
    n, p = read_varint(b, p)
    if n in (0, size):
        return np.full(size, n == size), p
    model = b[p]
    p += 1
    if model == 0:
        mask, p = _flat_mask(b, p, size, n)
    elif model in (1, 4, 5, 6, 7):  # lines / context: rows = first dimension, columns = the rest
        if rows < 2 or size % rows:
            raise ValueError("8.2: lines without a grid")
        cap = None
        if model in (6, 7):  # the cap, then the flags coded as one-row grids
            cap, p = b[p], p + 1
            rmask, p = coded_flags(b, p, rows, cap, read_varint)
            cmask, p = coded_flags(b, p, size // rows, cap, read_varint)
        else:
            rmask, p = _flat_mask(b, p, rows)
            cmask, p = _flat_mask(b, p, size // rows)
        if not rmask.any() or not cmask.any():
            raise ValueError("8.2: nonzeros in no kept row or column")
        if model == 1:
            sub, p = _positions(b, p, int(rmask.sum()) * int(cmask.sum()), 1)
        else:
            sub, p = context_grid(b, p, int(rmask.sum()), int(cmask.sum()), read_varint,
                                  np.flatnonzero(cmask) if model in (5, 7) else None, size // rows, cap)
        m2 = np.zeros((rows, size // rows), bool)
        m2[np.ix_(rmask, cmask)] = sub.reshape(int(rmask.sum()), int(cmask.sum()))
        mask = m2.reshape(-1)
    elif model == 3:  # blocks
        if rows < 2 or size % rows:
            raise ValueError("8.2: blocks without a grid")
        mask, p = blocks_mask(b, p, size, n, rows, read_varint, decode_symbols, quantized_cdf, _words, _min_length)
    elif model == 2:  # gaps
        bits = b[p]
        e = (1 << bits) - 1
        count, p = read_varint(b, p + 1)
        counts = []
        for _ in range(1 << bits):
            c, p = read_varint(b, p)
            counts.append(c)
        L, p = read_varint(b, p)
        if sum(counts[:e]) != n or count > n + size // e:
            raise ValueError("8.2: gap counts")
        _min_length(L, sum(c * _cost(c / count) for c in counts[1:]))
        sym = np.array(ans_decode(_words(b[p : p + L]), [c / count for c in counts], count), dtype=np.int64)
        if np.bincount(sym, minlength=1 << bits).tolist() != counts or sym[-1] == e:
            raise ValueError("8.2: gap symbols")
        p += L
        pos = np.cumsum(np.where(sym == e, e, sym + 1)) - 1
        mask = np.zeros(size, bool)
        mask[pos[sym != e]] = True
    else:
        raise ValueError("8.2: model")
    if int(mask.sum()) != n:
        raise ValueError("8.2: positions")
    return mask, p


def decode_coded(entry: dict, payload: bytes) -> np.ndarray:
    """Section 8: a "sparse" or "indexed" record, as float64 values."""
    k, p = read_varint(payload, 0)
    fmt = payload[p]
    p += 1
    width = (4, 2, 2, 8)[fmt]
    raw = payload[p : p + width * k]
    p += width * k
    if fmt == 2:  # bfloat16 words
        cb = (np.frombuffer(raw, "<u2").astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    else:
        cb = np.frombuffer(raw, ("<f4", "<f2", None, "<f8")[fmt]).astype(np.float64)
    size = int(np.prod(entry["shape"], dtype=np.int64))
    rows = entry["shape"][0] if len(entry["shape"]) >= 2 else 1
    cols = size // rows if size else 1
    if entry["encoding"] == "indexed":
        sym, p = decode_symbols(payload, p, size, k, (cb, np.arange(size), cols))
        out = cb[sym]
    else:
        mask, p = _positions(payload, p, size, rows)
        n = int(mask.sum())
        sym, p = decode_symbols(payload, p, n, k, (cb, np.flatnonzero(mask), cols))
        out = np.zeros(size)
        out[mask] = cb[sym]
    if p != len(payload):
        raise ValueError("8: trailing bytes")
    return out.reshape(entry["shape"])


def load(data: bytes) -> dict[str, np.ndarray]:
    """Decode every record of a ``.wl`` file."""
    _, records = read_container(data)
    out = {}
    for entry, payload in records:
        dtype = entry["dtype"]
        if entry["encoding"] == "dense":
            stored = entry["params"]["stored"]
            a = np.frombuffer(payload, dtype=np.dtype("uint16" if stored == "bfloat16" else stored).newbyteorder("<"))
            if stored == "bfloat16":  # raw words; numpy has no bfloat16: the float32 of the same value
                a = (a.astype(np.uint32) << np.uint32(16)).view(np.float32)
            else:
                a = a.astype(dtype)
            out[entry["name"]] = a.reshape(entry["shape"])
        elif entry["encoding"] == "bloomier":
            a = decode_bloomier(entry, payload)  # float32; exact in dtype (the codebook is rounded)
            out[entry["name"]] = a if dtype in ("float32", "bfloat16") else a.astype(dtype)
        elif entry["encoding"] in ("sparse", "indexed"):  # exact in dtype; bfloat16 as float32
            out[entry["name"]] = decode_coded(entry, payload).astype("float32" if dtype == "bfloat16" else dtype)
        else:
            raise ValueError(f"encoding {entry['encoding']}")
    return out
