"""Canonical Huffman coding of integer streams, with code tables sent as code lengths only.

Why not ``constriction.symbol.huffman``: it builds its tree from probabilities (so the table to
send would be probabilities, not code lengths) and encodes one symbol per Python call, which is
too slow for layers with millions of entries. This module is a small canonical Huffman coder:

- :func:`code_lengths` builds length-limited (<= :data:`MAX_LEN` bits) Huffman code lengths from
  symbol counts, deterministically (ties broken by symbol order);
- codes are canonical (DEFLATE convention: shorter codes first, then by symbol), so the code
  lengths alone define the code;
- a code with exactly one used symbol spends **zero bits** per symbol (the length table says
  which symbol it is);
- :func:`write_lengths` / :func:`read_lengths` store a length table compactly (see below);
- :func:`encode` packs codewords MSB first; :func:`decode` decodes with a numba kernel when
  numba is available (a pure-Python loop otherwise) and checks every bit it reads.

Length table format (a byte string): varint ``L`` = number of leading alphabet symbols covered
(symbols ``>= L`` have length 0), then a bit stream (MSB first, zero padded) with one item per
symbol, coding length ``l`` relative to the previous length ``q`` (``q`` starts at 0):
``0`` -> ``l = q``; ``10`` -> ``l = q + 1``; ``110`` -> ``l = q - 1``; ``111`` + 5 bits -> ``l``.
"""

from __future__ import annotations

import heapq

import numpy as np

from .._compat import HAVE_NUMBA, njit
from ..errors import FieldError, TruncatedError
from ._bits import Reader, write_varint

__all__ = ["MAX_LEN", "code_lengths", "canonical_codes", "encode", "decode", "write_lengths",
           "read_lengths", "encoded_bits"]

MAX_LEN = 24


def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, dtype=np.int64)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used[0]] = 1
        return lengths
    # Heap of (count, order, node); leaves are 0..u-1, internal nodes u, u+1, ...
    heap = [(int(counts[s]), i, i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    parent = [0] * (2 * used.size - 1)
    nxt = used.size
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        parent[a] = nxt
        parent[b] = nxt
        heapq.heappush(heap, (c1 + c2, nxt, nxt))
        nxt += 1
    root = nxt - 1
    depth = [0] * (root + 1)
    for node in range(root - 1, -1, -1):
        depth[node] = depth[parent[node]] + 1
    lengths[used] = depth[: used.size]
    return lengths


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Return Huffman code lengths (int64, 0 for unused symbols), each ``<= max_len``.

    ``counts`` are non-negative symbol counts. If plain Huffman exceeds ``max_len`` the counts
    are halved (keeping used symbols at >= 1) until it fits: near-optimal and deterministic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    work = counts.copy()
    while True:
        lengths = _huffman_lengths(work)
        if lengths.max(initial=0) <= max_len:
            return lengths
        work = np.where(work > 0, np.maximum(work >> 1, 1), 0)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Return the canonical codeword (uint32, right-aligned) of every symbol of ``lengths``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    order = np.lexsort((np.arange(lengths.size), lengths))
    order = order[lengths[order] > 0]
    code = 0
    prev = 0
    for s in order:
        ln = int(lengths[s])
        code <<= ln - prev
        prev = ln
        codes[s] = code
        code += 1
    return codes


def _single(lengths: np.ndarray) -> bool:
    return int(np.count_nonzero(lengths)) == 1


def encoded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Payload bits of a stream with these symbol ``counts`` under code ``lengths``."""
    if _single(lengths):
        return 0
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """Encode ``symbols`` (each with a non-zero length in ``lengths``) to packed bytes.

    Returns ``ceil(total_bits / 8)`` bytes (zero padded); b"" if the code has one symbol.
    """
    symbols = np.asarray(symbols).reshape(-1).astype(np.int64, copy=False)
    lengths = np.asarray(lengths, dtype=np.int64)
    if symbols.size == 0 or _single(lengths):
        return b""
    codes = canonical_codes(lengths)
    # Blocks bound the temporaries; bit arrays are concatenated before packing.
    block = 1 << 20
    bit_chunks = []
    for start in range(0, symbols.size, block):
        sym = symbols[start : start + block]
        ln = lengths[sym]
        cw = codes[sym]
        ends = np.cumsum(ln)
        total = int(ends[-1])
        starts = ends - ln
        bits = np.zeros(total, dtype=np.uint8)
        maxl = int(ln.max())
        for j in range(maxl):
            sel = ln > j
            shift = (ln[sel] - 1 - j).astype(np.uint32)
            bits[starts[sel] + j] = ((cw[sel] >> shift) & 1).astype(np.uint8)
        bit_chunks.append(bits)
    return np.packbits(np.concatenate(bit_chunks)).tobytes()


def _decoder_tables(lengths: np.ndarray):
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.lexsort((np.arange(lengths.size), lengths))
    order = order[lengths[order] > 0].astype(np.int64)
    count = np.bincount(lengths[lengths > 0], minlength=MAX_LEN + 1).astype(np.int64)
    first_code = np.zeros(MAX_LEN + 2, dtype=np.int64)
    first_index = np.zeros(MAX_LEN + 2, dtype=np.int64)
    code = 0
    index = 0
    for ln in range(1, MAX_LEN + 1):
        code = (code + int(count[ln - 1])) << 1 if ln > 1 else 0
        first_code[ln] = code
        first_index[ln] = index
        index += count[ln]
    return order, count, first_code, first_index


@njit
def _decode_kernel(data, nbits, n, sorted_syms, count, first_code, first_index, max_len, out):
    pos = 0
    for i in range(n):
        code = 0
        found = False
        for ln in range(1, max_len + 1):
            if pos >= nbits:
                return -1  # truncated
            bit = (data[pos >> 3] >> (7 - (pos & 7))) & 1
            pos += 1
            code = (code << 1) | bit
            off = code - first_code[ln]
            if off >= 0 and off < count[ln]:
                out[i] = sorted_syms[first_index[ln] + off]
                found = True
                break
        if not found:
            return -2  # invalid codeword
    return pos


def _decode_python(data, nbits, n, sorted_syms, count, first_code, first_index, max_len, out):
    pos = 0
    data = data.tolist()
    first_code = first_code.tolist()
    first_index = first_index.tolist()
    count = count.tolist()
    sorted_syms = sorted_syms.tolist()
    for i in range(n):
        code = 0
        for ln in range(1, max_len + 1):
            if pos >= nbits:
                return -1
            code = (code << 1) | ((data[pos >> 3] >> (7 - (pos & 7))) & 1)
            pos += 1
            off = code - first_code[ln]
            if 0 <= off < count[ln]:
                out[i] = sorted_syms[first_index[ln] + off]
                break
        else:
            return -2
    return pos


def decode(data: bytes, lengths: np.ndarray, n: int, what: str) -> np.ndarray:
    """Decode exactly ``n`` symbols (int64 array) from ``data`` under code ``lengths``.

    ``data`` must be exactly the bytes :func:`encode` produced: every bit used, zero padding.

    Raises:
        TruncatedError: the data ends before ``n`` symbols are decoded.
        FieldError: an invalid codeword, trailing bytes, non-zero padding, or symbols but no code.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    used = int(np.count_nonzero(lengths))
    if n == 0:
        if data:
            raise FieldError(f"{what}: {len(data)} bytes of data for an empty stream")
        return np.zeros(0, dtype=np.int64)
    if used == 0:
        raise FieldError(f"{what}: {n} symbols to decode but the code table is empty")
    if used == 1:
        if data:
            raise FieldError(f"{what}: a one-symbol code carries no data, got {len(data)} bytes")
        return np.full(n, int(np.flatnonzero(lengths)[0]), dtype=np.int64)
    # Each symbol takes >= 1 bit: check before allocating the output.
    if n > 8 * len(data):
        raise TruncatedError(f"{what}: {n} symbols need at least {n} bits, only {8 * len(data)} given")
    sorted_syms, count, first_code, first_index = _decoder_tables(lengths)
    raw = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(n, dtype=np.int64)
    kernel = _decode_kernel if HAVE_NUMBA else _decode_python
    pos = kernel(raw, raw.size * 8, n, sorted_syms, count, first_code, first_index, MAX_LEN, out)
    if pos == -1:
        raise TruncatedError(f"{what}: the Huffman stream ends before {n} symbols were decoded")
    if pos == -2:
        raise FieldError(f"{what}: invalid Huffman codeword (corrupt data)")
    if (pos + 7) // 8 != raw.size:
        raise FieldError(f"{what}: {raw.size - (pos + 7) // 8} trailing bytes after the Huffman stream")
    if pos % 8 and int(raw[-1]) & ((1 << (8 - pos % 8)) - 1):
        raise FieldError(f"{what}: non-zero padding bits after the Huffman stream")
    return out


def write_lengths(lengths: np.ndarray) -> bytes:
    """Serialize a code-length table (values 0..MAX_LEN) compactly; see the module docstring."""
    lengths = np.asarray(lengths, dtype=np.int64)
    nz = np.flatnonzero(lengths)
    size = int(nz[-1]) + 1 if nz.size else 0
    bits: list[int] = []
    prev = 0
    for ln in lengths[:size].tolist():
        if ln == prev:
            bits.append(0)
        elif ln == prev + 1:
            bits += [1, 0]
        elif ln == prev - 1:
            bits += [1, 1, 0]
        else:
            bits += [1, 1, 1] + [(ln >> s) & 1 for s in range(4, -1, -1)]
        prev = ln
    body = np.packbits(np.array(bits, dtype=np.uint8)).tobytes() if bits else b""
    return write_varint(size) + body


def read_lengths(reader: Reader, alphabet: int, what: str) -> np.ndarray:
    """Read a code-length table written by :func:`write_lengths` for ``alphabet`` symbols.

    Consumes exactly the table's bytes from ``reader``. The code must satisfy Kraft's inequality.

    Raises:
        FormatError subclasses: truncated table, lengths out of range, or an impossible code.
    """
    size = reader.varint(f"{what} code-table size", alphabet)
    lengths = np.zeros(alphabet, dtype=np.int64)
    pos = 0
    start = reader.pos
    data = reader.data
    prev = 0

    def bit() -> int:
        nonlocal pos
        byte_index = start + (pos >> 3)
        if byte_index >= len(data):
            raise TruncatedError(f"{what}: the code-length table is truncated")
        b = (data[byte_index] >> (7 - (pos & 7))) & 1
        pos += 1
        return b

    for s in range(size):
        if not bit():
            ln = prev
        elif not bit():
            ln = prev + 1
        elif not bit():
            ln = prev - 1
        else:
            ln = 0
            for _ in range(5):
                ln = (ln << 1) | bit()
        if ln < 0 or ln > MAX_LEN:
            raise FieldError(f"{what}: code length {ln} outside [0, {MAX_LEN}]")
        lengths[s] = ln
        prev = ln
    nbytes = (pos + 7) // 8
    if pos % 8 and data[start + nbytes - 1] & ((1 << (8 - pos % 8)) - 1):
        raise FieldError(f"{what}: non-zero padding bits in the code-length table")
    reader.pos = start + nbytes
    nz = lengths[lengths > 0]
    if size and lengths[size - 1] == 0:
        raise FieldError(f"{what}: the code-length table has a trailing unused symbol")
    if nz.size > 1:
        kraft = int(np.sum(np.left_shift(np.int64(1), MAX_LEN - nz)))
        if kraft > (1 << MAX_LEN):
            raise FieldError(f"{what}: code lengths violate Kraft's inequality (not a prefix code)")
    return lengths
