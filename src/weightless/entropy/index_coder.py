"""Lossless coding of a clustered tensor's structure: where its nonzeros are, and which shared
value each position holds (numpy + constriction).

Two self-describing streams, used by the ``"sparse"`` and ``"indexed"`` records
(:mod:`weightless.io.clustered`):

Positions (:func:`encode_positions`): ``varint n`` (number of nonzero positions out of
``size``, which the caller knows); then, when ``0 < n < size``, ``u8 model`` and:

- model 0, flat: ``varint L`` and ``L`` bytes of ANS words (uint32 LE) coding the
  ``ceil(size / 8)`` bytes of ``numpy.packbits(mask)`` (bit 7 - j of byte b is position
  8 b + j; padding bits 0), one symbol per byte, with the model P(byte) = p^ones (1 - p)^(8 -
  ones), p = n / size (the flags model of the filter tables' kind 0x14). Cost: about
  ``size * H(p)`` bits, the entropy of positions drawn independently.
- model 1, lines: the tensor as ``rows`` x ``size / rows`` (its first dimension by the rest):
  two flat streams (each ``varint count`` then, unless all or none, ``varint L`` and words):
  the rows that hold a nonzero, the columns that do; then the mask of the kept rows x kept
  columns (row-major) as a positions stream of its own (flat or gaps). Pays where pruning
  emptied whole rows or columns.
- model 2, gaps (Deep Compression's relative indices, ANS-coded): ``u8 b`` (1..12), ``varint
  S`` symbols, ``2**b`` varint counts (summing to S), ``varint L`` and ANS words with
  P(s) = count(s) / S. Walking the flat positions from -1, a symbol ``E = 2**b - 1`` skips E
  positions, a symbol ``s < E`` skips s and marks the next one nonzero; the last symbol is not
  E. Pays where the density varies along the tensor (an empirical gap distribution).
- model 3, blocks (:mod:`weightless.entropy.blocks`): rows and columns in a few groups each,
  every (row group, column group) block of uniform density, run-coded. Pays where neurons and
  inputs have densities of their own.
- model 4, context (:mod:`weightless.entropy.context_positions`): the lines model's flags,
  then the kept grid cell by cell with an adaptive binary range coder (contexts: column and
  row density, left neighbour). Written only when 1% shorter than the others (slower to decode).
- model 5, context with a stride: model 4 plus the position ``s`` columns back in the row (the
  pixel above, for a layer reading an image row by row); ``s`` is the divisor of the column
  count whose neighbour tells most about a cell (mutual information on the mask).
- models 6 and 7: models 4 and 5 with their row and column flags coded by model 4's coder (a
  one-row grid each, the stream's cap first) instead of flat: runs of empty columns (an input
  channel of a convolution no output reads, 25 flags) cost a few bits instead of H(p) each.

Symbols (:func:`encode_symbols`): ``count`` symbols in ``[0, A)`` (the caller knows both) as
``u8 model`` then:

- model 0, uniform: ``varint L`` and ANS words, every symbol probability 1/A;
- model 1, histogram: ``A`` varint counts (summing to ``count``), ``varint L`` and ANS words
  with P(s) = count(s) / count;
- model 2, packed: ``ceil(log2 A)`` bits per symbol, MSB first, zero padded (no ANS: short
  streams, where the coder's 32-bit words would cost more than they save);
- model 3, left (coded records only, :mod:`weightless.entropy.range_coder`): ``u8 cap``,
  ``varint L`` and an adaptive binary range coder's bytes, each index conditioned on the index
  to its left. Pays where neighbouring weights are alike.
- model 4, left and up: ``u8 cap``, ``varint s``, ``varint L`` and the coder's bytes, each
  index conditioned on the index to its left and on the one ``s`` positions back in its row
  (the pixel above, for a layer reading images row by row).

The encoder writes whichever is shortest. An alphabet of one symbol needs no bytes at all.
Models use ``perfect=False`` as the table coder does, so output is deterministic for a given
constriction version.

This module writes the streams; :mod:`weightless.entropy.index_decoder` reads them.
"""

from __future__ import annotations

import numpy as np

from ._bits import pack_fixed, write_varint
from .blocks import encode_blocks
from .range_coder import table_allowed
from .table_coder import ANS_CHUNK, _ans_encode, _flag_probs

__all__ = ["encode_positions", "encode_symbols", "mask_stride", "symbol_width", "CHUNK", "MAX_GAP_BITS"]

#: Positions and symbols handed out per step by the sources below: their temporaries stay
#: at about 1 MiB, so a record decodes into its output with little more (the ANS coder is
#: never asked for more than this many symbols at once, :data:`ANS_CHUNK` >= it).
CHUNK = 1 << 16
assert CHUNK <= ANS_CHUNK and CHUNK % 8 == 0

UNIFORM, HISTOGRAM, PACKED, LEFT, LEFT_UP = 0, 1, 2, 3, 4


def symbol_width(alphabet: int) -> int:
    """Bits per symbol of the packed model: ``ceil(log2 alphabet)`` (0 for one symbol)."""
    return max(int(alphabet) - 1, 0).bit_length()


FLAT, LINES, GAPS, BLOCKS, CONTEXT, STRIDED, CONTEXT_FLAGS, STRIDED_FLAGS = 0, 1, 2, 3, 4, 5, 6, 7
#: The context models (slowest to decode: positions 4 and 5, symbols 4) are written only when
#: this much shorter than the others.
CONTEXT_GAIN = 0.01
CONTEXT_CAP = 255
MAX_GAP_BITS = 12
#: Cells of the mask (its first rows) on which the stride of model 5 is chosen.
STRIDE_CELLS = 1 << 20


def _gap_symbols(mask: np.ndarray, bits: int) -> np.ndarray:
    """The gaps model's symbols: per nonzero, ``q`` escapes (``E = 2**bits - 1``, skip E
    positions) then ``r`` (skip r positions, then the nonzero), the gap being ``q E + r``."""
    e = (1 << bits) - 1
    pos = np.flatnonzero(mask)
    gaps = np.diff(pos, prepend=-1) - 1
    q, r = np.divmod(gaps, e)
    out = np.full(int(q.sum()) + pos.size, e, dtype=np.int32)
    out[np.cumsum(q + 1) - 1] = r
    return out


def _gaps(mask: np.ndarray) -> bytes | None:
    """The shortest gaps-model stream (width chosen by the entropy estimate), or None."""
    if not mask.any():
        return None
    best = None
    for bits in range(1, MAX_GAP_BITS + 1):
        sym = _gap_symbols(mask, bits)
        counts = np.bincount(sym, minlength=1 << bits)
        nz = counts[counts > 0]
        est = float(-(nz * np.log2(nz / sym.size)).sum()) / 8 + (1 << bits) * 1.5
        if best is None or est < best[0]:
            best = (est, bits, sym, counts)
    assert best is not None  # the loop above ran at least once
    _, bits, sym, counts = best
    table = b"".join(write_varint(int(c)) for c in counts)
    if int(np.count_nonzero(counts)) == 1:
        return None  # one symbol: the flat or lines model says it shorter
    words = _ans_encode(sym, counts / sym.size)
    return bytes([bits]) + write_varint(sym.size) + table + write_varint(len(words)) + words


def _flat(mask: np.ndarray) -> bytes:
    size, n = mask.size, int(mask.sum())
    out = write_varint(n)
    if 0 < n < size:
        words = _ans_encode(np.packbits(mask), _flag_probs(size - n, size))
        out += write_varint(len(words)) + words
    return out


def encode_positions(mask: np.ndarray, rows: int = 1, *, blocks_model: bool = True, stride: int | None = None,
                     flag_models: bool = True) -> bytes:
    """Return the positions stream of boolean ``mask`` (True = nonzero), seen as ``rows`` rows
    of ``mask.size // rows`` (1: no line structure): the shortest of the flat model, the gaps
    model and, when ``rows > 1``, the lines model (empty rows and columns flagged, the rest
    flat) and the blocks model (``blocks_model=False`` leaves it out, as writers before it).
    ``stride``: model 5's stride when the caller has it (:func:`mask_stride` of the rows);
    ``flag_models=False`` leaves out models 6 and 7 (as writers before them)."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    size, n = mask.size, int(mask.sum())
    if n in (0, size):
        return write_varint(n)
    best = write_varint(n) + bytes([FLAT]) + _flat(mask)[len(write_varint(n)):]
    if rows > 1 and size % rows == 0:
        m2 = mask.reshape(rows, size // rows)
        r, c = np.asarray(m2.any(axis=1)), np.asarray(m2.any(axis=0))
        lines = write_varint(n) + bytes([LINES]) + _flat(r) + _flat(c) + encode_positions(m2[r][:, c])
        if len(lines) < len(best):
            best = lines
    gaps = _gaps(mask)
    if gaps is not None and len(gaps) + len(write_varint(n)) + 1 < len(best):
        best = write_varint(n) + bytes([GAPS]) + gaps
    blocks = encode_blocks(mask, rows) if blocks_model else None
    if blocks is not None and len(blocks) + len(write_varint(n)) + 1 < len(best):
        best = write_varint(n) + bytes([BLOCKS]) + blocks
    if blocks_model and rows > 1 and size % rows == 0:
        from .context_positions import back_columns, encode_context

        m2 = mask.reshape(rows, size // rows)
        r, c = np.asarray(m2.any(axis=1)), np.asarray(m2.any(axis=0))
        grid, flags = m2[r][:, c], _flat(r) + _flat(c) + bytes([CONTEXT_CAP])
        heads = [(CONTEXT, flags)] + ([(CONTEXT_FLAGS, bytes([CONTEXT_CAP]) + _coded_flags(r) + _coded_flags(c))]
                                      if flag_models else [])
        words = _with_length(encode_context(grid, CONTEXT_CAP))
        cands = [write_varint(n) + bytes([m]) + h + words for m, h in heads]
        s = mask_stride(m2) if stride is None else stride
        if s:
            words = write_varint(s) + _with_length(encode_context(grid, CONTEXT_CAP, back_columns(np.flatnonzero(c), s)))
            cands += [write_varint(n) + bytes([m + STRIDED - CONTEXT]) + h + words for m, h in heads]
        ctx = min(cands, key=len)  # ties keep the earliest
        if len(ctx) < (1.0 - CONTEXT_GAIN) * len(best):
            best = ctx
    return best


def mask_stride(m2: np.ndarray) -> int:
    """Model 5's stride: among the divisors ``s`` of the column count (2 <= s <= half of it),
    the one whose cell ``s`` columns back tells most about a cell beyond what its left
    neighbour tells (conditional mutual information, on the first rows of the mask, at most
    :data:`STRIDE_CELLS` cells); 0 when none tells anything."""
    cols = m2.shape[1]
    sub = np.asarray(m2[: max(1, STRIDE_CELLS // max(cols, 1))], dtype=bool)
    best, best_s = 1e-9, 0
    for s in range(2, cols // 2 + 1):
        if cols % s:
            continue
        cell, back, left = sub[:, s:], sub[:, :-s], sub[:, s - 1 : -1]
        p = np.empty((2, 2, 2))  # (cell, back, left)
        for x in (0, 1):
            for y in (0, 1):
                cb = (cell if x else ~cell) & (back if y else ~back)
                both = int(np.count_nonzero(cb & left))
                p[x, y] = (both, int(np.count_nonzero(cb)) - both)
        p = p[:, :, ::-1] / cell.size  # last axis: left 0, 1
        pl, pcl, pbl = p.sum(axis=(0, 1)), p.sum(axis=1), p.sum(axis=0)
        ok = p > 0
        mi = float((p[ok] * np.log2((p * pl[None, None, :])[ok] / (pcl[:, None, :] * pbl[None, :, :])[ok])).sum())
        if mi > best:
            best, best_s = mi, s
    return best_s


def _coded_flags(flags: np.ndarray) -> bytes:
    """Models 6 and 7's flags: ``varint count``, then unless all or none ``varint L`` and the
    range-coder bytes of the flags as a one-row grid (model 4's coder, cap CONTEXT_CAP)."""
    from .context_positions import encode_context

    f = np.asarray(flags, dtype=bool)
    n = int(f.sum())
    if n in (0, f.size):
        return write_varint(n)
    return write_varint(n) + _with_length(encode_context(f[None, :], CONTEXT_CAP))


def _with_length(words: bytes) -> bytes:
    return write_varint(len(words)) + words


def encode_symbols(symbols: np.ndarray, alphabet: int, context: "tuple[np.ndarray, np.ndarray] | None" = None,
                   up: "tuple[int, np.ndarray] | None" = None) -> bytes:
    """Return the shortest symbols stream of ``symbols`` (integers in ``[0, alphabet)``).

    ``context``: ``(ranks, left)`` allows model 3 (:mod:`~weightless.entropy.range_coder`):
    ``ranks[i]`` the value rank of codebook entry i, ``left`` the left-neighbour flag of each
    symbol (:func:`~weightless.entropy.range_coder.left_flags`); with it, ``up``: ``(stride,
    indices)`` (:func:`~weightless.entropy.range_coder.up_indices`) allows model 4."""
    s = np.asarray(symbols).reshape(-1).astype(np.int32)
    if alphabet <= 1 or s.size == 0:
        return b""
    candidates = [bytes([PACKED]) + pack_fixed(s, symbol_width(alphabet))]
    counts = np.bincount(s, minlength=alphabet).astype(np.int64)
    if int(np.count_nonzero(counts)) > 1:
        candidates.append(bytes([UNIFORM]) + _with_length(_ans_encode(s, np.full(alphabet, 1.0 / alphabet))))
        table = b"".join(write_varint(int(c)) for c in counts)
        candidates.append(bytes([HISTOGRAM]) + table + _with_length(_ans_encode(s, counts / s.size)))
    else:  # one symbol used: a histogram with no ANS data says it all
        candidates.append(bytes([HISTOGRAM]) + b"".join(write_varint(int(c)) for c in counts) + write_varint(0))
    if context is not None and int(np.count_nonzero(counts)) > 1 and table_allowed(alphabet, False, s.size):
        from .range_coder import CAPS, encode_left  # last: a tie keeps the earlier models

        ranks, left = context
        for cap in CAPS:
            candidates.append(bytes([LEFT, cap]) + _with_length(encode_left(np.asarray(ranks)[s], left, alphabet, cap)))
        if up is not None and table_allowed(alphabet, True, s.size):  # slower to decode: only CONTEXT_GAIN shorter
            stride, above = up
            bar = (1.0 - CONTEXT_GAIN) * min(len(c) for c in candidates)
            for cap in CAPS:
                words = encode_left(np.asarray(ranks)[s], left, alphabet, cap, above)
                ours = bytes([LEFT_UP, cap]) + write_varint(stride) + _with_length(words)
                if len(ours) < bar:
                    candidates.append(ours)
    return min(candidates, key=len)  # ties keep the earliest
