"""Lossless coding of a clustered tensor's structure: where its nonzeros are, and which shared
value each position holds (numpy + constriction).

Two self-describing streams, used by the ``"sparse"`` and ``"indexed"`` records
(:mod:`weightless.records_coded`):

Positions (:func:`encode_positions`): ``varint n`` (number of nonzero positions out of
``size``, which the caller knows); then, when ``0 < n < size``, ``u8 model`` and:

- model 0, flat: ``varint L`` and ``L`` bytes of ANS words (uint32 LE) coding the
  ``ceil(size / 8)`` bytes of ``numpy.packbits(mask)`` (bit 7 - j of byte b is position
  8 b + j; padding bits 0), one symbol per byte, with the model P(byte) = p^ones (1 - p)^(8 -
  ones), p = n / size (the flags model of the filter tables' kind 0x14). Cost: about
  ``size * H(p)`` bits, the entropy of positions drawn independently.
- model 1, lines: the tensor as ``rows`` x ``size / rows`` (its first dimension by the rest):
  three flat streams (each ``varint count`` then, unless all or none, ``varint L`` and words):
  the rows that hold a nonzero, the columns that do, and the mask of the kept rows x kept
  columns (row-major). Pays where pruning emptied whole rows or columns.

Symbols (:func:`encode_symbols`): ``count`` symbols in ``[0, A)`` (the caller knows both) as
``u8 model`` then:

- model 0, uniform: ``varint L`` and ANS words, every symbol probability 1/A;
- model 1, histogram: ``A`` varint counts (summing to ``count``), ``varint L`` and ANS words
  with P(s) = count(s) / count;
- model 2, packed: ``ceil(log2 A)`` bits per symbol, MSB first, zero padded (no ANS: short
  streams, where the coder's 32-bit words would cost more than they save).

The encoder writes whichever is shortest. An alphabet of one symbol needs no bytes at all.
Models use ``perfect=False`` as the table coder does, so output is deterministic for a given
constriction version.
"""

from __future__ import annotations

import numpy as np

from ..errors import FieldError
from ._bits import Reader, pack_fixed, unpack_fixed, write_varint
from .table_coder import _ans_decode, _ans_encode, _flag_probs

__all__ = ["encode_positions", "decode_positions", "encode_symbols", "decode_symbols", "symbol_width"]

UNIFORM, HISTOGRAM, PACKED = 0, 1, 2


def symbol_width(alphabet: int) -> int:
    """Bits per symbol of the packed model: ``ceil(log2 alphabet)`` (0 for one symbol)."""
    return max(int(alphabet) - 1, 0).bit_length()


FLAT, LINES = 0, 1


def _flat(mask: np.ndarray) -> bytes:
    size, n = mask.size, int(mask.sum())
    out = write_varint(n)
    if 0 < n < size:
        words = _ans_encode(np.packbits(mask), _flag_probs(size - n, size))
        out += write_varint(len(words)) + words
    return out


def encode_positions(mask: np.ndarray, rows: int = 1) -> bytes:
    """Return the positions stream of boolean ``mask`` (True = nonzero), seen as ``rows`` rows
    of ``mask.size // rows`` (1: no line structure): the shorter of the flat model and, when
    ``rows > 1``, the lines model (empty rows and columns flagged, the rest flat)."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    size, n = mask.size, int(mask.sum())
    if n in (0, size):
        return write_varint(n)
    best = write_varint(n) + bytes([FLAT]) + _flat(mask)[len(write_varint(n)):]
    if rows > 1 and size % rows == 0:
        m2 = mask.reshape(rows, size // rows)
        r, c = m2.any(axis=1), m2.any(axis=0)
        lines = write_varint(n) + bytes([LINES]) + _flat(r) + _flat(c) + _flat(m2[r][:, c])
        if len(lines) < len(best):
            best = lines
    return best


def _decode_flat(r: Reader, size: int, what: str, n: int | None = None) -> np.ndarray:
    if n is None:
        n = r.varint(f"{what} nonzero count", size)
    if n == 0 or n == size:
        return np.full(size, n == size, dtype=bool)
    nbytes = (size + 7) // 8
    words = r.take(r.varint(f"{what} positions length", r.remaining), f"{what} positions")
    flags = _ans_decode(words, _flag_probs(size - n, size), nbytes, f"{what} positions").astype(np.uint8)
    mask = np.unpackbits(flags)
    if mask[size:].any():
        raise FieldError(f"{what}: padding bits of the positions are not zero")
    mask = mask[:size].astype(bool)
    if int(mask.sum()) != n:
        raise FieldError(f"{what}: the positions hold {int(mask.sum())} nonzeros, the count says {n}")
    return mask


def decode_positions(r: Reader, size: int, what: str, rows: int = 1) -> np.ndarray:
    """Read a positions stream for ``size`` positions in ``rows`` rows; return the flat mask.

    Raises:
        FormatError: a count above ``size``, an unknown model, a corrupt stream, or flags that
            disagree with the counts.
    """
    n = r.varint(f"{what} nonzero count", size)
    if n == 0 or n == size:
        return np.full(size, n == size, dtype=bool)
    model = r.u8(f"{what} positions model")
    if model == FLAT:
        return _decode_flat(r, size, what, n)
    if model != LINES or rows <= 1 or size % rows:
        raise FieldError(f"{what}: positions model {model} is not valid here (rows = {rows})")
    cols = size // rows
    rmask = _decode_flat(r, rows, f"{what} rows")
    cmask = _decode_flat(r, cols, f"{what} columns")
    inner = int(rmask.sum()) * int(cmask.sum())
    sub = _decode_flat(r, inner, f"{what} kept lines")
    if int(sub.sum()) != n:
        raise FieldError(f"{what}: the kept lines hold {int(sub.sum())} nonzeros, the count says {n}")
    out = np.zeros((rows, cols), dtype=bool)
    out[np.ix_(rmask, cmask)] = sub.reshape(int(rmask.sum()), int(cmask.sum()))
    return out.reshape(-1)


def _with_length(words: bytes) -> bytes:
    return write_varint(len(words)) + words


def encode_symbols(symbols: np.ndarray, alphabet: int) -> bytes:
    """Return the shortest symbols stream of ``symbols`` (integers in ``[0, alphabet)``)."""
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
    return min(candidates, key=len)  # ties keep the earliest


def decode_symbols(r: Reader, count: int, alphabet: int, what: str) -> np.ndarray:
    """Read a symbols stream of ``count`` symbols in ``[0, alphabet)``; return them as int64.

    Raises:
        FormatError: an unknown model, counts that do not sum to ``count``, a corrupt stream.
    """
    if alphabet <= 1 or count == 0:
        return np.zeros(count, dtype=np.int64)
    model = r.u8(f"{what} symbol model")
    if model == PACKED:
        width = symbol_width(alphabet)
        data = r.take((count * width + 7) // 8, f"{what} packed symbols")
        s = unpack_fixed(data, count, width, what).astype(np.int64)
    elif model in (UNIFORM, HISTOGRAM):
        if model == HISTOGRAM:
            counts = np.array([r.varint(f"{what} count", count) for _ in range(alphabet)], dtype=np.int64)
            if int(counts.sum()) != count:
                raise FieldError(f"{what}: the symbol counts sum to {int(counts.sum())}, expected {count}")
            used = np.flatnonzero(counts)
            if used.size == 1:
                if r.varint(f"{what} stream length", 0):
                    raise FieldError(f"{what}: a one-symbol stream carries data")
                return np.full(count, int(used[0]), dtype=np.int64)
            probs = counts / count
        else:
            probs = np.full(alphabet, 1.0 / alphabet)
        words = r.take(r.varint(f"{what} stream length", r.remaining), f"{what} symbols")
        s = _ans_decode(words, probs, count, what).astype(np.int64)
        if model == HISTOGRAM and not np.array_equal(np.bincount(s, minlength=alphabet), counts):
            raise FieldError(f"{what}: the decoded symbols do not match their counts")
    else:
        raise FieldError(f"{what}: unknown symbol model {model}; expected 0, 1 or 2")
    if s.size and int(s.max()) >= alphabet:
        raise FieldError(f"{what}: a symbol is {int(s.max())}, the alphabet has {alphabet}")
    return s
