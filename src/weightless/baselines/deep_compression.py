"""Deep Compression's final stage: CSR (relative indices, filler zeros) + Huffman coding.

Han et al. (ICLR 2016) Huffman-code the CSR index stream and the value stream separately. This
module does exactly that with canonical Huffman codes (:mod:`weightless.entropy.huffman`), and
counts the cost of sending both code tables (code lengths only). The entry streams and the
common header are those of :mod:`.csr` (magic ``b"WDCH"``). Payload after the header::

    index code table   code lengths for the 2**index_bits index codes (huffman.write_lengths)
    value code table   code lengths for the k (+1 with fillers) value codes
    index bytes        varint: length of the index stream in bytes
    index stream       canonical Huffman codewords, MSB first, zero padded
    value stream       the rest: canonical Huffman codewords, MSB first, zero padded

A code with one used symbol costs zero bits per symbol (e.g. k = 1 without fillers).
``index_bits="auto"`` picks the width (1..16) that minimizes the record — a stronger baseline
than the paper's fixed 5 (FC) / 8 (conv) bits, which remain the default.
"""

from __future__ import annotations

import numpy as np

from ..entropy import huffman
from ..entropy._bits import Reader, write_varint
from .csr import (
    DEFAULT_MAX_POSITIONS,
    MAGIC_DC,
    _check_index_bits,
    best_width,
    check_layer,
    layer_entries,
    read_header,
    rebuild,
    write_header,
)

__all__ = ["dc_encode", "dc_decode", "best_index_bits"]


def _stream_cost_bytes(counts: np.ndarray) -> int:
    lengths = huffman.code_lengths(counts)
    return (huffman.encoded_bits(counts, lengths) + 7) // 8 + len(huffman.write_lengths(lengths))


def best_index_bits(flat: np.ndarray, k: int) -> int:
    """Return the index width in 1..16 giving the smallest CSR + Huffman record for this layer.

    ``flat`` is the validated flat index array (-1 = zero). Costs are exact Huffman payload and
    table sizes computed from symbol counts (no encoding).
    """
    vcounts = np.bincount(flat[flat >= 0].astype(np.int64), minlength=k).astype(np.int64)

    def cost(b: int, pos: np.ndarray, gaps: np.ndarray, fill: int) -> int:
        span = 1 << b
        icounts = np.bincount(gaps & (span - 1), minlength=span).astype(np.int64)
        icounts[span - 1] += fill
        vc = np.append(vcounts, fill) if fill else vcounts
        return _stream_cost_bytes(icounts) + _stream_cost_bytes(vc)

    return best_width(flat, cost)


def dc_encode(
    indices: np.ndarray,
    shape: object,
    codebook: np.ndarray,
    *,
    index_bits: int | str = 5,
    k: int | None = None,
) -> bytes:
    """Encode a pruned + clustered layer the Deep Compression way: CSR, then Huffman.

    Args:
        indices: integer array, -1 for a zero weight, else a cluster index in [0, k).
        shape: the layer's shape (``indices.size`` must match).
        codebook: the k float32 centroids.
        index_bits: bits per relative index before Huffman coding (Han et al.: 5 for FC, 8 for
            conv), or "auto" for the width giving the smallest record.
        k: number of clusters; defaults to ``len(codebook)`` and must equal it.

    Returns:
        The record bytes (header, codebook, both code tables, both Huffman streams).

    Raises:
        InputError: invalid arguments.
    """
    flat, shape_t, codebook, k = check_layer(indices, shape, codebook, k)
    b = best_index_bits(flat, k) if index_bits == "auto" else _check_index_bits(index_bits)
    ent = layer_entries(flat, shape_t, k, b)
    icounts = np.bincount(ent.gaps, minlength=1 << b)
    vcounts = np.bincount(ent.values, minlength=ent.value_alphabet)
    ilen = huffman.code_lengths(icounts)
    vlen = huffman.code_lengths(vcounts)
    istream = huffman.encode(ent.gaps, ilen)
    vstream = huffman.encode(ent.values, vlen)
    return b"".join([
        write_header(MAGIC_DC, ent, codebook),
        huffman.write_lengths(ilen),
        huffman.write_lengths(vlen),
        write_varint(len(istream)),
        istream,
        vstream,
    ])


def dc_decode(
    data: bytes, *, max_positions: int = DEFAULT_MAX_POSITIONS
) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Decode a CSR + Huffman record.

    Returns:
        ``(indices, shape, codebook)`` as :func:`weightless.baselines.csr_decode` does: an int16
        array of ``shape`` (-1 = zero weight), the shape, the float32 codebook.

    Raises:
        FormatError (subclasses): bad magic/version, truncated or corrupt data, invalid code
            tables or codewords, a layer larger than ``max_positions``.
    """
    r = Reader(data, "CSR+Huffman record")
    h = read_header(r, MAGIC_DC, max_positions)
    ilen = huffman.read_lengths(r, 1 << h.index_bits, "CSR+Huffman index code table")
    vlen = huffman.read_lengths(r, h.value_alphabet, "CSR+Huffman value code table")
    nbytes = r.varint("index stream length", r.remaining)
    gaps = huffman.decode(r.take(nbytes, "index stream"), ilen, h.entries, "CSR+Huffman index stream")
    values = huffman.decode(r.rest(), vlen, h.entries, "CSR+Huffman value stream")
    return rebuild(h, gaps, values, "CSR+Huffman record"), h.shape, h.codebook
