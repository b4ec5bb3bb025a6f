"""Reading the positions and symbols streams written by :mod:`weightless.entropy.index_coder`
(the layout of both is described there and in docs/FORMAT.md).

Parsing checks every count, length and minimum-length rule at once; the ANS words are decoded
lazily, at most :data:`~weightless.entropy.index_coder.CHUNK` symbols at a time, by the
sources :class:`PositionSource` and :class:`SymbolSource`.
"""

from __future__ import annotations

import numpy as np

from typing import Iterator

from ..errors import FieldError, TruncatedError
from ._bits import Reader
from .index_coder import (BLOCKS, CHUNK, CONTEXT, CONTEXT_FLAGS, FLAT, GAPS, HISTOGRAM, LEFT, LEFT_UP, LINES, MAX_GAP_BITS,
                          PACKED, STRIDED, STRIDED_FLAGS, UNIFORM, symbol_width)
from .range_coder import LeftSource
from .table_coder import AnsStream, _flag_probs

__all__ = ["decode_positions", "decode_symbols", "parse_positions", "parse_symbols", "PositionSource",
           "SymbolSource", "min_stream_bits"]


_ONES = np.array([bin(i).count("1") for i in range(256)], dtype=np.float64)


def min_stream_bits(probs: np.ndarray, counts: np.ndarray | None = None, *, per_one: bool = False) -> float:
    """The least information (bits) a stream must hold, for its minimum-length rule
    (docs/FORMAT.md, "Minimum lengths"): the symbols other than 0 that it decodes, each costing
    at least ``log2(1 / (P + 2**-23))`` (the coder's 24-bit model gives a symbol at most
    ``P * 2**24 + 2`` of its ``2**24`` slots). Symbol 0 counts for nothing: a run of it at the
    end of a stream costs no bits at all (the coder's state stays 0).

    ``counts``: how many times each symbol is decoded (histogram and gaps models). ``per_one``
    (flag bytes): the least bits per set bit of a nonzero byte, the caller multiplies by the
    number of ones.
    """
    cost = -np.log2(np.asarray(probs, dtype=np.float64) + 2.0**-23)
    if per_one:
        return float((cost[1:256] / _ONES[1:]).min())
    c = np.asarray(counts, dtype=np.float64)[1:]
    return float((c * cost[1 : c.size + 1]).sum())


def _stream(r: Reader, probs: np.ndarray, total: int, least_bits: float, what: str) -> AnsStream:
    """Read ``varint L`` and ``L`` bytes of ANS words; check the minimum-length rule (a stream
    that must hold ``least_bits`` > 0 bits is not empty and ``8 L + 256 >= 0.95 least_bits``);
    return the (lazy) stream of ``total`` symbols."""
    words = r.view(r.varint(f"{what} stream length", r.remaining), f"{what} stream")
    if least_bits > 0 and (not words or 8 * len(words) + 256 < 0.95 * least_bits):
        raise TruncatedError(f"{what}: {len(words)} bytes of ANS words cannot hold what the stream declares "
                             f"(at least {least_bits / 8:.0f} bytes); truncated data or lying counts")
    return AnsStream(words, probs, total, what)


class PositionSource:
    """The nonzero positions of a positions stream, parsed (every length and minimum-length
    rule checked, nothing decoded) by :func:`parse_positions`; :meth:`chunks` yields them in
    increasing order, at most :data:`CHUNK` at a time, checking the stream as it goes and at
    the end (the count, padding bits, the ANS end state)."""

    def __init__(self, size: int, n: int, gen: "Iterator[np.ndarray]", whole: np.ndarray | None = None) -> None:
        self.size, self.n, self._gen, self._whole = size, n, gen, whole

    def every(self) -> np.ndarray:
        """Every position at once (increasing), checked as :meth:`chunks` checks them; no copy
        when the stream decodes them whole (models 3 to 7)."""
        if self._whole is None:
            return np.concatenate([np.zeros(0, dtype=np.int64), *self.chunks()])
        if self._whole.size != self.n:
            raise FieldError(f"the positions stream holds {self._whole.size} nonzeros, its count says {self.n}")
        return self._whole

    def chunks(self) -> "Iterator[np.ndarray]":
        seen = 0
        for pos in self._gen:
            seen += pos.size
            if seen > self.n:
                raise FieldError(f"the positions stream holds more than its {self.n} nonzeros")
            yield pos
        if seen != self.n:
            raise FieldError(f"the positions stream holds {seen} nonzeros, its count says {self.n}")

    def mask(self) -> np.ndarray:
        """The whole mask as booleans (for small streams and tests)."""
        out = np.zeros(self.size, dtype=bool)
        for pos in self.chunks():
            out[pos] = True
        return out


def _all(size: int) -> "Iterator[np.ndarray]":
    for start in range(0, size, CHUNK):
        yield np.arange(start, min(size, start + CHUNK), dtype=np.int64)


def _chunked(pos: np.ndarray) -> "Iterator[np.ndarray]":
    for start in range(0, pos.size, CHUNK):
        yield pos[start : start + CHUNK]


def _grid(data: bytes | memoryview, rows: int, cols: int, cap: int, what: str, back: np.ndarray | None = None) -> np.ndarray:
    """A context-coded grid (model 4's coder) of ``rows`` x ``cols`` cells from all of ``data``,
    the minimum-length rule checked first."""
    from .context_positions import decode_context
    from .range_coder import DECISIONS_PER_BYTE

    if cap < 1 or rows * cols > DECISIONS_PER_BYTE * len(data) + 45376:
        raise TruncatedError(f"{what}: a context stream of {len(data)} bytes (cap {cap}) cannot hold "
                             f"{rows} x {cols} cells; truncated data or lying flags")
    grid, used = decode_context(data, rows, cols, cap, back)
    if used < len(data):
        raise FieldError(f"{what}: the context stream left {len(data) - used} bytes unread (corrupt)")
    return grid


def _coded_flags(r: Reader, size: int, cap: int, what: str) -> np.ndarray:
    """Models 6 and 7's flags of ``size`` lines: the kept ones' indices."""
    n = r.varint(f"{what} count", size)
    if n in (0, size):
        return np.arange(size) if n else np.zeros(0, dtype=np.int64)
    kept = np.flatnonzero(_grid(r.view(r.varint(f"{what} length", r.remaining), what), 1, size, cap, what))
    if kept.size != n:
        raise FieldError(f"{what}: the flags hold {kept.size} ones, the count says {n}")
    return kept


def _parse_context(r: Reader, kr: np.ndarray, kc: np.ndarray, cols: int, n: int, what: str,
                   strided: bool = False, cap: int | None = None) -> np.ndarray:
    """Positions model 4 (5 when ``strided``) after its flags (6 and 7: ``cap`` read before
    them): the flat positions of the nonzeros (increasing)."""
    from .context_positions import back_columns

    cap = r.u8(f"{what} context cap") if cap is None else cap
    back = None
    if strided:
        stride = r.varint(f"{what} context stride", cols - 1)
        if stride < 1:
            raise FieldError(f"{what}: a context stride must be 1 .. {cols - 1}, got 0")
        back = back_columns(kc, stride)
    data = r.view(r.varint(f"{what} context stream length", r.remaining), f"{what} context stream")
    i, j = np.nonzero(_grid(data, kr.size, kc.size, cap, what, back))
    if i.size != n:
        raise FieldError(f"{what}: the context stream holds {i.size} nonzeros, the count says {n}")
    return kr[i] * cols + kc[j]


def _parse_flat(r: Reader, size: int, n: int, what: str) -> "Iterator[np.ndarray]":
    """A flat mask of ``n`` ones in ``size`` (0 < n < size): parse now, decode lazily."""
    probs = _flag_probs(size - n, size)
    nbytes = (size + 7) // 8
    stream = _stream(r, probs, nbytes, n * min_stream_bits(probs, per_one=True), what)

    def gen() -> "Iterator[np.ndarray]":
        step = CHUNK // 8
        for b0 in range(0, nbytes, step):
            flags = stream.take(min(step, nbytes - b0)).astype(np.uint8)
            pos = np.flatnonzero(np.unpackbits(flags)) + 8 * b0
            if pos.size and int(pos[-1]) >= size:
                raise FieldError(f"{what}: padding bits of the positions are not zero")
            yield pos
        stream.finish()

    return gen()


def _flat_mask(r: Reader, size: int, what: str) -> np.ndarray:
    """A flat mask with its count (the lines model's row and column flags), as booleans."""
    n = r.varint(f"{what} nonzero count", size)
    if n in (0, size):
        return np.full(size, n == size, dtype=bool)
    return PositionSource(size, n, _parse_flat(r, size, n, what)).mask()


def _parse_gaps(r: Reader, size: int, n: int, what: str) -> "Iterator[np.ndarray]":
    bits = r.u8(f"{what} gap width")
    if not 1 <= bits <= MAX_GAP_BITS:
        raise FieldError(f"{what}: gap width {bits} is not in [1, {MAX_GAP_BITS}]")
    e = (1 << bits) - 1
    count = r.varint(f"{what} gap symbols", n + size // e)
    counts = np.array([r.varint(f"{what} gap count", count) for _ in range(1 << bits)], dtype=np.int64)
    if int(counts.sum()) != count or count < 1:
        raise FieldError(f"{what}: the gap counts sum to {int(counts.sum())}, expected {count}")
    if int(counts[:e].sum()) != n:
        raise FieldError(f"{what}: the gap counts hold {int(counts[:e].sum())} marks, expected {n}")
    probs = counts / count
    stream = _stream(r, probs, count, min_stream_bits(probs, counts), f"{what} gaps")

    def gen() -> "Iterator[np.ndarray]":
        cursor, seen = -1, np.zeros(1 << bits, dtype=np.int64)
        last = -1
        for sym in stream.chunks():
            seen += np.bincount(sym, minlength=1 << bits)
            pos = cursor + np.cumsum(np.where(sym == e, e, sym + 1).astype(np.int64))
            cursor, last = int(pos[-1]), int(sym[-1])
            marks = pos[sym != e]
            if marks.size and int(marks[-1]) >= size:
                raise FieldError(f"{what}: the gaps place a nonzero at {int(marks[-1])}, beyond {size}")
            yield marks
        stream.finish()
        if not np.array_equal(seen, counts) or last == e:
            raise FieldError(f"{what}: the gap symbols do not match their counts or end with an escape")

    return gen()


def parse_positions(r: Reader, size: int, what: str, rows: int = 1) -> PositionSource:
    """Read a positions stream for ``size`` positions in ``rows`` rows: every count, length
    and minimum-length rule is checked here; the ANS words are decoded as the returned
    source's chunks are taken.

    Raises:
        FormatError: a count above ``size``, an unknown model, a stream too short for what it
            declares (here); a corrupt stream or flags that disagree with the counts (later).
    """
    n = r.varint(f"{what} nonzero count", size)
    if n == 0 or n == size:
        return PositionSource(size, n, _all(size) if n else iter(()))
    model = r.u8(f"{what} positions model")
    if model == FLAT:
        return PositionSource(size, n, _parse_flat(r, size, n, f"{what} positions"))
    if model == GAPS:
        return PositionSource(size, n, _parse_gaps(r, size, n, what))
    if model == BLOCKS and rows > 1 and size % rows == 0 and size // rows > 1:
        from .blocks import parse_blocks

        pos = parse_blocks(r, size, n, rows, f"{what} positions")
        return PositionSource(size, n, _chunked(pos), pos)
    if model not in (LINES, CONTEXT, STRIDED, CONTEXT_FLAGS, STRIDED_FLAGS) or rows <= 1 or size % rows:
        raise FieldError(f"{what}: positions model {model} is not valid here (rows = {rows})")
    cols = size // rows
    cap = None
    if model in (CONTEXT_FLAGS, STRIDED_FLAGS):
        cap = r.u8(f"{what} context cap")
        kr = _coded_flags(r, rows, cap, f"{what} row flags")
        kc = _coded_flags(r, cols, cap, f"{what} column flags")
        model = CONTEXT if model == CONTEXT_FLAGS else STRIDED
    else:
        kr = np.flatnonzero(_flat_mask(r, rows, f"{what} rows"))
        kc = np.flatnonzero(_flat_mask(r, cols, f"{what} columns"))
    if kr.size == 0 or kc.size == 0:  # n > 0 nonzeros in no row or no column (before sizing anything by C)
        raise FieldError(f"{what}: {n} nonzeros but {kr.size} rows and {kc.size} columns hold one")
    if model in (CONTEXT, STRIDED):
        pos = _parse_context(r, kr, kc, cols, n, what, model == STRIDED, cap)
        return PositionSource(size, n, _chunked(pos), pos)
    inner = parse_positions(r, kr.size * kc.size, f"{what} kept lines")
    if inner.n != n:
        raise FieldError(f"{what}: the kept lines hold {inner.n} nonzeros, the count says {n}")

    def gen() -> "Iterator[np.ndarray]":
        for p in inner.chunks():
            yield kr[p // kc.size] * cols + kc[p % kc.size]

    return PositionSource(size, n, gen())


def decode_positions(r: Reader, size: int, what: str, rows: int = 1) -> np.ndarray:
    """Read a positions stream for ``size`` positions in ``rows`` rows; return the flat mask.

    Raises:
        FormatError: a count above ``size``, an unknown model, a corrupt stream, or flags that
            disagree with the counts.
    """
    return parse_positions(r, size, what, rows).mask()


class SymbolSource:
    """The symbols of a symbols stream parsed by :func:`parse_symbols`; :meth:`take` returns
    the next ones (int64, checked against the alphabet), :meth:`finish` checks the end (every
    symbol taken, the ANS end state, the histogram)."""

    needs_positions = False

    def __init__(self, count: int, alphabet: int, what: str, *, const: int = 0, stream: AnsStream | None = None,
                 packed: bytes | memoryview | None = None, counts: np.ndarray | None = None) -> None:
        self.count, self.alphabet, self.what, self.const = count, alphabet, what, const
        self.stream, self.packed, self.counts = stream, packed, counts
        self.at = 0
        self.seen = np.zeros(alphabet, dtype=np.int64) if counts is not None else None

    def take(self, n: int) -> np.ndarray:
        n = int(n)
        if n > self.count - self.at or n > CHUNK:
            raise FieldError(f"{self.what}: {n} more symbols asked, {self.count - self.at} left")
        if self.stream is not None:
            s = self.stream.take(n).astype(np.int64)
        elif self.packed is not None:
            s = self._unpack(n)
        else:
            s = np.full(n, self.const, dtype=np.int64)
        self.at += n
        if s.size and int(s.max()) >= self.alphabet:
            raise FieldError(f"{self.what}: a symbol is {int(s.max())}, the alphabet has {self.alphabet}")
        if self.seen is not None:
            self.seen += np.bincount(s, minlength=self.alphabet)
        return s

    def _unpack(self, n: int) -> np.ndarray:
        """The next ``n`` packed symbols (MSB first), in steps of 2**16 (small temporaries);
        the padding bits of the last byte are checked with the last symbol."""
        width = symbol_width(self.alphabet)
        assert self.packed is not None
        raw = np.frombuffer(self.packed, dtype=np.uint8)
        out = np.empty(n, dtype=np.int64)
        for a in range(0, n, 1 << 16):
            step = min(1 << 16, n - a)
            bit0 = (self.at + a) * width
            flat = np.unpackbits(raw[bit0 // 8 : (bit0 + step * width + 7) // 8])
            bits = flat[bit0 % 8 : bit0 % 8 + step * width].reshape(step, width)
            acc = np.zeros(step, dtype=np.int64)
            for j in range(width):
                acc = (acc << 1) | bits[:, j]
            out[a : a + step] = acc
        nbits = self.count * width
        if self.at + n == self.count and nbits % 8 and int(raw[-1]) & ((1 << (8 - nbits % 8)) - 1):
            raise FieldError(f"{self.what}: non-zero padding bits at the end of a packed stream")
        return out

    def finish(self) -> None:
        if self.at != self.count:
            raise FieldError(f"{self.what}: {self.count - self.at} symbols were not used")
        if self.stream is not None:
            self.stream.finish()
        if self.counts is not None and self.seen is not None and not np.array_equal(self.seen, self.counts):
            raise FieldError(f"{self.what}: the decoded symbols do not match their counts")


def parse_symbols(r: Reader, count: int, alphabet: int, what: str, ranks: np.ndarray | None = None) -> "SymbolSource | LeftSource":
    """Read a symbols stream of ``count`` symbols in ``[0, alphabet)``: model, counts, lengths
    and the minimum-length rule are checked here, the symbols decoded as they are taken.
    ``ranks`` (the codebook's value ranks) allows models 3 and 4, whose source decodes once
    given the positions (its ``needs_positions`` is True).

    Raises:
        FormatError: an unknown model, counts that do not sum to ``count``, a stream too short
            for its counts (here); a corrupt stream (later).
    """
    if alphabet <= 1 or count == 0:
        return SymbolSource(count, max(alphabet, 1), what)
    model = r.u8(f"{what} symbol model")
    if model == PACKED:
        width = symbol_width(alphabet)
        data = r.view((count * width + 7) // 8, f"{what} packed symbols")
        return SymbolSource(count, alphabet, what, packed=data)
    if model == HISTOGRAM:
        counts = np.array([r.varint(f"{what} count", count) for _ in range(alphabet)], dtype=np.int64)
        if int(counts.sum()) != count:
            raise FieldError(f"{what}: the symbol counts sum to {int(counts.sum())}, expected {count}")
        used = np.flatnonzero(counts)
        if used.size == 1:
            if r.varint(f"{what} stream length", 0):
                raise FieldError(f"{what}: a one-symbol stream carries data")
            return SymbolSource(count, alphabet, what, const=int(used[0]))
        probs = counts / count
        return SymbolSource(count, alphabet, what, counts=counts,
                            stream=_stream(r, probs, count, min_stream_bits(probs, counts), what))
    if model in (LEFT, LEFT_UP) and ranks is not None:
        cap = r.u8(f"{what} cap")
        if cap < 1:
            raise FieldError(f"{what}: cap 0; expected 1..255")
        stride = r.varint(f"{what} stride", 1 << 40) if model == LEFT_UP else 0
        if model == LEFT_UP and stride < 1:
            raise FieldError(f"{what}: a symbols stride must be at least 1, got 0")
        return LeftSource(r.view(r.varint(f"{what} stream length", r.remaining), f"{what} stream"), count, ranks,
                          cap, what, stride)
    if model == UNIFORM:
        probs = np.full(alphabet, 1.0 / alphabet)
        # no counts: the symbols other than 0 are unknown; the stream must not be empty
        return SymbolSource(count, alphabet, what, stream=_stream(r, probs, count, 1.0, what))
    raise FieldError(f"{what}: symbol model {model} is unknown or not valid here; expected 0, 1, 2 (or 3, 4 in a "
                     "coded record)")


def decode_symbols(r: Reader, count: int, alphabet: int, what: str) -> np.ndarray:
    """Read a symbols stream of ``count`` symbols in ``[0, alphabet)``; return them as int64.

    Raises:
        FormatError: an unknown model, counts that do not sum to ``count``, a corrupt stream.
    """
    src = parse_symbols(r, count, alphabet, what)
    out = np.empty(count, dtype=np.int64)
    for at in range(0, count, CHUNK):
        n = min(CHUNK, count - at)
        out[at : at + n] = src.take(n)
    src.finish()
    return out
