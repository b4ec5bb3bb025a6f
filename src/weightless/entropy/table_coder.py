"""Lossless entropy coding of a filter table (``m`` cells of ``t`` bits) with constriction's ANS.

The paper (section 3.2) arithmetic-codes Bloomier tables for transmission: assigned cells are
near-uniform over ``t`` bits, and the gain comes from the cells that were never assigned (zero).
:func:`encode_cells` fits a model to the table, codes the cells with
``constriction.stream.stack.AnsCoder`` and keeps whichever record is shortest:

======  =====================  ================================================================
tag     kind                   payload after the tag byte
======  =====================  ================================================================
0x11    raw                    cells bit-packed, ``t`` bits each, MSB first, zero padded
0x12    zero + uniform (ANS)   varint ``z`` (number of zero cells), then ANS words (uint32 LE);
                               model: P(0) = z/m, the other ``2**t - 1`` values equally likely
0x13    histogram (ANS)        ``2**t`` varint counts (summing to m), then ANS words (uint32 LE);
                               model: P(v) = count(v)/m
0x14    flags + raw            varint ``z`` (number of zero cells, 0 < z < m), varint ``L``, then
                               ``L`` bytes of ANS words (uint32 LE) coding the ``ceil(m / 8)``
                               bytes of nonzero flags (bit 7 - j of byte b is 1 iff cell 8 b + j
                               is nonzero; padding bits 0), 8 flags per symbol with the model
                               P(byte) = p^ones (1 - p)^(8 - ones), p = (m - z) / m; then the
                               ``m - z`` nonzero cells bit-packed, ``t`` bits each (as 0x11)
======  =====================  ================================================================

Kind 0x14 exists for decoding speed: filter tables are zero where no key was peeled and
uniform elsewhere, so only the zero/nonzero structure gains from coding. It codes that with
one ANS symbol per 8 cells and copies the other cells raw, which decodes at memory speed and
costs about ``1.44 / 2**t`` bits per nonzero cell more than 0x12 (0.3% at t = 6).
:func:`encode_cells` returns it whenever it is within :data:`FAST_SLACK` (0.5%) of the shortest
record (``fast=False``: the shortest of the other kinds, as before).

The high nibble of the tag is the format version (1). ``m`` and ``t`` are not stored: the
caller (the filter record) knows them and passes them to :func:`decode_cells`. The record is
self-describing otherwise: it carries its model, and tag 0x11 flags the raw fallback (used when
coding does not shrink the table). Models use ``perfect=False`` (constriction's fast, stable
quantization), so output is deterministic for a given constriction version.

Integrity: the decoder checks that the ANS stream is consumed exactly and that the decoded
cells match the stored counts, so most corruptions raise :class:`~weightless.errors.FormatError`.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import constriction
import numpy as np

from ..errors import FieldError, FormatError, InputError, TruncatedError, UnsupportedVersionError
from ..filters.packing import pack_cells, packed_size, scatter_packed
from ._bits import Reader, pack_fixed, unpack_fixed, write_varint

__all__ = ["encode_cells", "decode_cells", "cells_kind", "empirical_entropy_bits",
           "DEFAULT_MAX_CELLS", "RAW", "ZERO_UNIFORM", "HISTOGRAM", "FLAGS_RAW", "FAST_SLACK"]

RAW = 0x11
ZERO_UNIFORM = 0x12
HISTOGRAM = 0x13
FLAGS_RAW = 0x14
_KIND_NAMES = {RAW: "raw", ZERO_UNIFORM: "zero+uniform", HISTOGRAM: "histogram", FLAGS_RAW: "flags+raw"}

FAST_SLACK = 0.005
"""Relative size by which a flags+raw record may exceed the shortest record and still be chosen."""

DEFAULT_MAX_CELLS = 1 << 26
"""Largest ``m`` :func:`decode_cells` accepts unless told otherwise (64M cells, 128 MiB)."""

_HIST_MAX_T = 12  # histogram models above this t would cost more to send than they save


def _check_t(t: int) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= int(t) <= 16:
        raise InputError(f"t must be an int in [1, 16], got {t!r}")
    return int(t)


def empirical_entropy_bits(cells: np.ndarray, t: int) -> float:
    """Return ``m * H(empirical distribution of the cells)`` in bits (the plug-in entropy)."""
    cells = np.asarray(cells).reshape(-1)
    if cells.size == 0:
        return 0.0
    counts = np.bincount(cells.astype(np.int64), minlength=1 << t)
    c = counts[counts > 0].astype(np.float64)
    return float(-(c * np.log2(c / cells.size)).sum())


def _zu_probs(z: int, m: int, t: int) -> np.ndarray:
    k = 1 << t
    probs = np.empty(k, dtype=np.float64)
    probs[0] = z / m
    probs[1:] = (m - z) / m / (k - 1)
    return probs


_ONES = np.array([bin(i).count("1") for i in range(256)], dtype=np.float64)


def _flag_probs(z: int, m: int) -> np.ndarray:
    """P(flag byte) for 8 independent flags, each 1 (nonzero cell) with probability (m - z) / m."""
    p = (m - z) / m
    return p**_ONES * (1.0 - p) ** (8.0 - _ONES)


def _flags_record(cells: np.ndarray, z: int, t: int) -> bytes:
    nz = cells != 0
    flags = np.packbits(nz)
    words = _ans_encode(flags, _flag_probs(z, cells.size))
    return b"".join(
        [bytes([FLAGS_RAW]), write_varint(z), write_varint(len(words)), words, pack_cells(cells[nz], t)]
    )


def _ans_encode(symbols: np.ndarray, probs: np.ndarray) -> bytes:
    model = constriction.stream.model.Categorical(probs, perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols.astype(np.int32, copy=False), model)
    words = coder.get_compressed().astype("<u4", copy=False)
    return words.tobytes()


def _ans_encode_segments(segments: "list[tuple[np.ndarray, np.ndarray]]") -> bytes:
    """One ANS stream of several (symbols, probabilities) segments, decoded in the given order
    (each segment with its own model; the stack coder takes them last first)."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, probs in reversed(segments):
        coder.encode_reverse(symbols.astype(np.int32, copy=False), constriction.stream.model.Categorical(probs, perfect=False))
    return coder.get_compressed().astype("<u4", copy=False).tobytes()


#: Symbols asked of constriction per call: it allocates its output (4 bytes a symbol) and
#: aborts the process when an allocation fails, so it never sees a larger request.
ANS_CHUNK = 1 << 20


class AnsStream:
    """An ANS stream decoded in chunks of at most :data:`ANS_CHUNK` symbols.

    Raises FieldError for words that are not whole, a corrupt stream, more symbols asked than
    ``total``, or (:meth:`finish`) data left after ``total`` symbols.
    """

    def __init__(self, payload: bytes | memoryview, probs: np.ndarray, total: int, what: str) -> None:
        if len(payload) % 4:
            raise FieldError(f"{what}: ANS payload of {len(payload)} bytes is not whole 32-bit words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32, copy=False)  # no copy on little-endian
        self.what, self.left = what, int(total)
        try:
            self.model = constriction.stream.model.Categorical(probs, perfect=False)
            self.coder = constriction.stream.stack.AnsCoder(words)
        except Exception as exc:  # constriction signals bad input with various exceptions
            raise FieldError(f"{what}: the ANS stream is corrupt ({exc})") from exc

    def set_probs(self, probs: np.ndarray) -> None:
        """Decode the following symbols with the model of ``probs`` (a stream of segments)."""
        self.model = constriction.stream.model.Categorical(probs, perfect=False)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` symbols (int32), ``n <= ANS_CHUNK``."""
        n = int(n)
        if n > self.left or n > ANS_CHUNK:
            raise FieldError(f"{self.what}: {n} more symbols asked of a stream with {self.left} left")
        self.left -= n
        try:
            return np.asarray(self.coder.decode(self.model, n))
        except Exception as exc:
            raise FieldError(f"{self.what}: the ANS stream is corrupt ({exc})") from exc

    def chunks(self) -> "Iterator[np.ndarray]":
        """The remaining symbols, :data:`ANS_CHUNK` at a time."""
        while self.left:
            yield self.take(min(self.left, ANS_CHUNK))

    def finish(self) -> None:
        """Check that every symbol was taken, the state is 0 and every word was used."""
        if self.left or not (self.coder.is_empty() and self.coder.num_words() == 0):
            raise FieldError(f"{self.what}: the ANS stream has unused data after its symbols (corrupt)")


def _ans_decode(payload: bytes, probs: np.ndarray, m: int, what: str, dtype: Any = np.int32) -> np.ndarray:
    """The ``m`` symbols of an ANS stream as an array of ``dtype``, decoded in chunks into it
    (peak memory: the output plus one chunk)."""
    stream = AnsStream(payload, probs, m, what)
    out = np.empty(m, dtype=dtype)
    at = 0
    for chunk in stream.chunks():
        out[at : at + chunk.size] = chunk
        at += chunk.size
    stream.finish()
    return out


def _ideal_bits(counts: np.ndarray, probs: np.ndarray) -> float:
    sel = counts > 0
    return float(-(counts[sel] * np.log2(probs[sel])).sum())


def encode_cells(cells: np.ndarray, t: int, *, fast: bool = True) -> bytes:
    """Entropy-code a filter table; return a self-describing record (see the module docstring).

    Args:
        cells: 1-D array of ``m`` non-negative integers, each below ``2**t`` (uint16 expected).
        t: bits per cell, 1..16.
        fast: allow the flags+raw kind (fast to decode) when it is within :data:`FAST_SLACK`
            of the shortest record.

    Returns:
        The flags+raw record if ``fast`` and within the slack, else the shortest of the raw,
        zero+uniform and histogram records for these cells.

    Raises:
        InputError: ``t`` out of range, ``cells`` not 1-D integers, or a cell ``>= 2**t``.
    """
    t = _check_t(t)
    cells = np.asarray(cells)
    if cells.ndim != 1 or not np.issubdtype(cells.dtype, np.integer):
        raise InputError(f"cells must be a 1-D integer array, got {cells.dtype} of shape {cells.shape}")
    m = cells.size
    if m and (int(cells.min()) < 0 or int(cells.max()) >= (1 << t)):
        raise InputError(f"cells must lie in [0, 2**{t}), got [{int(cells.min())}, {int(cells.max())}]")
    raw = bytes([RAW]) + pack_fixed(cells, t)
    if m == 0:
        return raw
    symbols = cells.astype(np.int32)
    counts = np.bincount(symbols, minlength=1 << t).astype(np.int64)
    z = int(counts[0])
    candidates = [raw]
    zu_head = bytes([ZERO_UNIFORM]) + write_varint(z)
    if z == m:
        candidates.append(zu_head)
    else:
        zu_probs = _zu_probs(z, m, t)
        zu_est = _ideal_bits(counts, zu_probs) / 8 + len(zu_head)
        if zu_est < len(raw):
            candidates.append(zu_head + _ans_encode(symbols, zu_probs))
        if t <= _HIST_MAX_T:
            table = b"".join(write_varint(int(c)) for c in counts)
            hist_probs = counts / m
            hist_est = _ideal_bits(counts, hist_probs) / 8 + 1 + len(table)
            if hist_est < min(len(c) for c in candidates):
                candidates.append(bytes([HISTOGRAM]) + table + _ans_encode(symbols, hist_probs))
    best = min(candidates, key=len)  # ties keep the earliest (raw first)
    if fast and 0 < z < m and best[0] != RAW:
        flagged = _flags_record(cells, z, t)
        if len(flagged) <= len(best) * (1.0 + FAST_SLACK) and len(flagged) < len(raw):
            return flagged
    return best


def cells_kind(data: bytes) -> str:
    """Return the record kind of an :func:`encode_cells` output: "raw", "zero+uniform",
    "histogram" or "flags+raw".

    Raises:
        FormatError: empty data or an unknown tag.
    """
    if not data:
        raise TruncatedError("cell record: empty data")
    tag = data[0]
    if tag not in _KIND_NAMES:
        raise _bad_tag(tag)
    return _KIND_NAMES[tag]


def _bad_tag(tag: int) -> FormatError:
    if tag >> 4 != 1:
        return UnsupportedVersionError(
            f"cell record: format version {tag >> 4} (tag 0x{tag:02x}) is not supported; "
            "this reader supports version 1"
        )
    return FieldError(f"cell record: unknown record kind 0x{tag:02x}; expected 0x11, 0x12, 0x13 or 0x14")


def decode_cells(data: bytes, m: int, t: int, *, max_cells: int = DEFAULT_MAX_CELLS) -> np.ndarray:
    """Decode a record written by :func:`encode_cells` back to its ``m`` cells.

    Args:
        data: the record.
        m: number of cells (known to the caller); must be ``<= max_cells``.
        t: bits per cell, 1..16.
        max_cells: cap on ``m``, checked before anything is allocated.

    Returns:
        A uint16 array of ``m`` cells, identical to what was encoded.

    Raises:
        InputError: ``t`` out of range or ``m`` negative.
        FormatError (a subclass): unknown tag/version, truncated or corrupt data, ``m`` above
            ``max_cells``, or ``m`` inconsistent with the stored counts or the payload size.
    """
    t = _check_t(t)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or int(m) < 0:
        raise InputError(f"m must be a non-negative int, got {m!r}")
    m = int(m)
    if m > max_cells:
        raise FieldError(
            f"cell record: m = {m} cells exceeds the cap of {max_cells}; pass a larger "
            "max_cells if this table is genuine"
        )
    r = Reader(data, "cell record")
    tag = r.u8("tag")
    if tag == RAW:
        return unpack_fixed(r.rest(), m, t, "raw cell record").astype(np.uint16)
    if tag == ZERO_UNIFORM:
        z = r.varint("zero count", m)
        if z == m:
            r.expect_end()
            return np.zeros(m, dtype=np.uint16)
        probs = _zu_probs(z, m, t)
        counts = None
        ideal = z * math.log2(m / z) if z else 0.0
        ideal += (m - z) * -math.log2(probs[1])
    elif tag == FLAGS_RAW:
        return _decode_flags_raw(r, m, t)
    elif tag == HISTOGRAM:
        counts = np.array([r.varint("histogram count", m) for _ in range(1 << t)], dtype=np.int64)
        if int(counts.sum()) != m:
            raise FieldError(f"cell record: histogram counts sum to {int(counts.sum())}, expected m = {m}")
        if m == 0:
            r.expect_end()
            return np.zeros(0, dtype=np.uint16)
        probs = counts / m
        ideal = _ideal_bits(counts, probs)
        z = None
    else:
        raise _bad_tag(tag)
    payload = r.rest()
    # An ANS stream cannot be much shorter than the information content of what it holds:
    # reject inconsistent m before decoding (and allocating) m symbols. The margin is generous:
    # the coder's quantized model and its initial state let a stream come out slightly below
    # the ideal length (seen: 0.7% below for 3,062 near-uniform 5-bit cells).
    if 8 * len(payload) + 256 < 0.95 * ideal:
        raise TruncatedError(
            f"cell record: {len(payload)} payload bytes cannot hold {m} cells "
            f"(at least {ideal / 8:.0f} bytes needed); truncated data or wrong m"
        )
    out = _ans_decode(payload, probs, m, "cell record", np.uint16)
    if out.size != m:
        raise FieldError(f"cell record: decoded {out.size} cells, expected {m}")
    if counts is not None:
        if not np.array_equal(np.bincount(out, minlength=1 << t), counts):
            raise FieldError("cell record: decoded cells do not match the stored histogram (corrupt)")
    elif int(np.count_nonzero(out == 0)) != z:
        raise FieldError("cell record: decoded cells do not match the stored zero count (corrupt)")
    return out


def _decode_flags_raw(r: Reader, m: int, t: int) -> np.ndarray:
    """The rest of a flags+raw record (after the tag) -> m uint16 cells."""
    z = r.varint("zero count", m)
    if not 0 < z < m:
        raise FieldError(f"cell record: flags+raw needs 0 < zero count < m = {m}, got {z}")
    length = r.varint("flag stream length", r.remaining)
    payload = r.take(length, "flag stream")
    nbytes = (m + 7) // 8
    probs = _flag_probs(z, m)
    # Every flag byte costs at least -log2 of the largest (quantized) symbol probability: reject
    # an inconsistent m before decoding (and allocating) its flags. (Zeros cluster in some
    # tables, so the stream can be far below m H(z / m); this bound holds whatever the order.)
    least = nbytes * -math.log2(min(1.0, float(probs.max()) * 1.001 + 2.0**-20))
    if 8 * len(payload) + 256 < least:
        raise TruncatedError(
            f"cell record: {len(payload)} flag bytes cannot hold {m} flags "
            f"(at least {least / 8:.0f} bytes needed); truncated data or wrong m"
        )
    raw = r.rest()
    if len(raw) != packed_size(m - z, t):
        cls = TruncatedError if len(raw) < packed_size(m - z, t) else FieldError
        raise cls(f"cell record: {len(raw)} bytes of nonzero cells, {m - z} cells of {t} bits need {packed_size(m - z, t)}")
    flags = _ans_decode(payload, probs, nbytes, "cell record flags", np.uint8)
    if flags.size != nbytes:
        raise FieldError(f"cell record: decoded {flags.size} flag bytes, expected {nbytes}")
    cells = scatter_packed(flags, raw, m, t)
    if int(np.count_nonzero(cells)) != m - z:
        raise FieldError("cell record: flags+raw cells do not match the stored zero count (corrupt)")
    return cells
