"""Positions models 4 and 5, context: the mask of the kept rows by the kept columns (as the
lines model) coded cell by cell, row-major, with the adaptive binary range coder of
:mod:`weightless.entropy.range_coder` (numba kernels; plain Python without numba). Layout
in docs/FORMAT.md, section 8.2.

A cell's probability is that of its context: (the density octave of its column so far, that
of its row so far, whether the cell to its left is nonzero), 8 x 8 x 2 contexts. Column and
row densities are adaptive estimates updated after every cell (cap 1023); the context
probabilities adapt with the stream's cap. Neighbouring inputs of a first layer (pixels) are
kept or pruned together, which the left context captures: 5-8% below the lines model on
LeNet-300-100's first layer.

Model 5 adds one bit to the context: whether the position ``s`` columns back in the same row of
the whole tensor is nonzero (``s`` a stream parameter). For a layer reading an image row by row
(LeNet-300-100's first layer: 784 = 28 x 28 pixels) ``s`` = the image width makes it the pixel
above: 3-6% fewer position bytes there (the writer tries the divisors of the column count).
"""

from __future__ import annotations

import numpy as np

from .._compat import njit
from .range_coder import DECISIONS_PER_BYTE, _adapt, _rates, _shift_low, code_bit, least_bytes, up_indices

__all__ = ["encode_context", "decode_context", "back_columns", "LINE_CAP", "BUCKETS", "bucket_table"]

LINE_CAP = 1023
BUCKETS = 8
_TOP = 1 << 24


def bucket_table() -> np.ndarray:
    """Density octave of an estimate p (P(1), 16 bits): ``min(12 - bit_length(p >> 4), 7)``."""
    bits = np.array([int(v).bit_length() for v in range(4096)])
    return np.minimum(12 - bits, BUCKETS - 1).astype(np.int64)


_BUCKET = bucket_table()


@njit
def _states(rows: int, cols: int, extra: int) -> tuple:
    """(column, row and context probabilities and counts), all at 32768 and 0; ``extra``: 1
    when the context has the second neighbour's bit."""
    nctx = (2 * BUCKETS * BUCKETS) << extra
    return (np.full(cols, 32768, np.int64), np.zeros(cols, np.int64), np.full(rows, 32768, np.int64),
            np.zeros(rows, np.int64), np.full(nctx, 32768, np.int64), np.zeros(nctx, np.int64))


@njit
def _encode(mask: np.ndarray, cap: int, bucket: np.ndarray, back: np.ndarray, extra: int) -> np.ndarray:
    """``back[j]``: the kept column of the second neighbour of column ``j`` (-1: none; used
    when ``extra`` is 1)."""
    rows, cols = mask.shape
    out = np.zeros(rows * cols // 16 + 64, dtype=np.uint8)
    at, low, rng, cache, pending = 0, 0, 0xFFFFFFFF, 0, 1
    lr, cr = _rates(LINE_CAP), _rates(cap)
    pc, nc, pr, nr, px, nx = _states(rows, cols, extra)
    for i in range(rows):
        left = 0
        for j in range(cols):
            c = (bucket[pc[j] >> 4] * BUCKETS + bucket[pr[i] >> 4]) * 2 + left
            if extra:
                c = 2 * c + (1 if back[j] >= 0 and mask[i, back[j]] else 0)
            bit = 1 if mask[i, j] else 0
            out, at, low, rng, cache, pending = code_bit(out, at, low, rng, cache, pending, px[c], bit)
            _adapt(px, nx, c, bit, cr, cap)
            _adapt(pc, nc, j, bit, lr, LINE_CAP)
            _adapt(pr, nr, i, bit, lr, LINE_CAP)
            left = bit
    for _ in range(5):
        out, at, low, cache, pending = _shift_low(out, at, low, cache, pending)
    return out[:at]


@njit
def _decode(data: np.ndarray, rows: int, cols: int, cap: int, bucket: np.ndarray, back: np.ndarray, extra: int) -> tuple:
    """(grid, bytes read). The decision is written out inline, as in range_coder._decode (a
    helper returning the coder state, inlined or not, measured 2x slower there)."""
    mask = np.zeros((rows, cols), dtype=np.uint8)
    size = data.size
    code, at = 0, 0
    for _ in range(4):
        code = (code << 8) | (int(data[at]) if at < size else 0)
        at += 1
    rng = 0xFFFFFFFF
    lr, cr = _rates(LINE_CAP), _rates(cap)
    pc, nc, pr, nr, px, nx = _states(rows, cols, extra)
    for i in range(rows):
        left = 0
        bi = bucket[pr[i] >> 4]
        for j in range(cols):
            c = (bucket[pc[j] >> 4] * BUCKETS + bi) * 2 + left
            if extra:
                c = 2 * c + (1 if back[j] >= 0 and mask[i, back[j]] else 0)
            bound = (rng >> 16) * (65536 - px[c])
            if code < bound:
                rng = bound
                bit = 0
            else:
                code -= bound
                rng -= bound
                bit = 1
            if rng < _TOP:
                rng <<= 8
                code = ((code << 8) & 0xFFFFFFFF) | (int(data[at]) if at < size else 0)
                at += 1
                if rng < _TOP:
                    rng <<= 8
                    code = ((code << 8) & 0xFFFFFFFF) | (int(data[at]) if at < size else 0)
                    at += 1
            mask[i, j] = bit
            _adapt(px, nx, c, bit, cr, cap)
            _adapt(pc, nc, j, bit, lr, LINE_CAP)
            _adapt(pr, nr, i, bit, lr, LINE_CAP)
            bi = bucket[pr[i] >> 4]
            left = bit
    return mask, at


def back_columns(kept: np.ndarray, stride: int) -> np.ndarray:
    """Model 5's second neighbours: for each kept column (``kept``: the kept columns' indices
    in the whole tensor, increasing), the index among the kept columns of the column ``stride``
    before it, or -1 when that is outside the tensor or not kept (then always zero): symbols
    model 4's :func:`~weightless.entropy.range_coder.up_indices` in one row wider than any
    tensor."""
    return up_indices(kept, np.iinfo(np.int64).max, stride)


_NONE = np.zeros(0, dtype=np.int64)


def encode_context(grid: np.ndarray, cap: int, back: np.ndarray | None = None) -> bytes:
    """The range-coder bytes of the 2-D boolean ``grid`` (trailing zero bytes dropped as far as
    the minimum-length rule allows); ``back`` (:func:`back_columns`): model 5's second
    neighbours, None for model 4."""
    m = np.ascontiguousarray(np.asarray(grid, dtype=np.uint8))
    b = _NONE if back is None else np.ascontiguousarray(back, dtype=np.int64)
    out = bytes(_encode(m, int(cap), _BUCKET, b, 0 if back is None else 1)[1:])  # LZMA's first byte is always 0
    return out[: max(len(out.rstrip(b"\0")), min(least_bytes(m.size), len(out)))]


def decode_context(data: bytes | memoryview, rows: int, cols: int, cap: int,
                   back: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(uint8 grid of ``rows`` x ``cols``, bytes read counting the zeros past the end). The
    caller checks the minimum-length rule first (``rows * cols <= 5672 L + 45376``); ``back``
    as for :func:`encode_context` (``cols`` entries, each -1 or below its own index)."""
    assert rows * cols <= DECISIONS_PER_BYTE * len(data) + 45376
    b = _NONE if back is None else np.ascontiguousarray(back, dtype=np.int64)
    assert back is None or (b.size == cols and bool(np.all(b < np.arange(cols))))
    mask, at = _decode(np.frombuffer(bytes(data), dtype=np.uint8), int(rows), int(cols), int(cap), _BUCKET, b,
                       0 if back is None else 1)
    return mask, int(at)
