"""Symbols models 3, "left", and 4, "left and up": cluster indices coded one binary decision
at a time by an adaptive binary range coder, each conditioned on the index of the cell to the
left (model 4: and on the index a stride back in the row, the pixel above for a layer reading
images row by row) (numba kernels; the same code runs as plain Python without numba).
Specified in docs/FORMAT.md, section 8.3.

Neighbouring weights of a row are correlated (LeNet-300-100's first layer sees neighbouring
pixels): coding an index knowing its left neighbour's takes 10-17% fewer bits than the
histogram model on such layers, which is what NNCodec's context modelling gains there.

Binarisation: a symbol's rank r among the codebook values (ascending, ties by index) is
written MSB first in ``D = ceil(log2 k)`` decisions; decision d of a symbol uses the adaptive
probability of (context, node), node = ``(1 << d) | (the d bits above it)``, context = 0 when
the cell to the left is zero or outside the row, else 1 + its rank.

Adaptive probability p = P(1) in units of 2**-16 (start 32768) with count c (start 0) and cap
L (a stream parameter): after a decision b, ``r = 131072 // (2 min(c, L) + 3)``; ``p += ((65536
- p) r) >> 16`` if b else ``p -= (p r) >> 16``; p is clamped to [64, 65472]; c += 1. The range
coder is LZMA's (32-bit range, ``bound = (range >> 16) (65536 - p)``, 0 below the bound),
its first output byte (always 0) left out; bytes past the end read as 0.
"""

from __future__ import annotations

import numpy as np

from .._compat import njit
from ..errors import FieldError, TruncatedError

__all__ = ["encode_left", "decode_left", "value_ranks", "left_flags", "up_indices", "decisions", "table_size",
           "LeftSource", "P_MIN", "DECISIONS_PER_BYTE", "CAPS", "MAX_TABLE", "TABLE_FLOOR", "table_allowed"]

P_MIN = 64
DECISIONS_PER_BYTE = 5672
"""A decision costs at least ``-log2(1 - 64/65536)`` = 0.00141 bits, so a stream of L bytes holds
at most ``709 (8 L + 64)`` decisions: the minimum-length rule is ``decisions <= 5672 L + 45376``."""
CAPS = (64, 255)
"""Caps the encoder tries (the stream's u8 cap may be any of 1..255)."""
MAX_TABLE = 1 << 24
"""The most adaptive probabilities a symbols stream may have (model 3: ``(k + 1) 2^D``, model
4: ``(k + 1)^2 2^D``): a reader refuses a larger table before allocating it (a hostile k would
otherwise size gigabytes), the writer never needs one."""
TABLE_FLOOR = 1 << 17
"""Below :data:`MAX_TABLE`, a table may have at most ``max(TABLE_FLOOR, count)`` probabilities
(``count`` symbols): 16 bytes each, so a small record cannot make its reader allocate more
than 2 MiB, nor a large one more than four times its float32 output (see :func:`table_allowed`)."""
_TOP = 1 << 24


def decisions(alphabet: int) -> int:
    """Binary decisions per symbol: ``ceil(log2 alphabet)``."""
    return max(int(alphabet) - 1, 0).bit_length()


def table_size(alphabet: int, up: bool) -> int:
    """Adaptive probabilities of symbols model 3 (4 when ``up``) for ``alphabet`` values."""
    return (int(alphabet) + 1) ** (2 if up else 1) << decisions(alphabet)


def table_allowed(alphabet: int, up: bool, count: int) -> bool:
    """Whether a model-3 (4 when ``up``) stream of ``count`` symbols over ``alphabet`` values
    may be written and read: its table is at most ``min(MAX_TABLE, max(TABLE_FLOOR, count))``."""
    return table_size(alphabet, up) <= min(MAX_TABLE, max(TABLE_FLOOR, int(count)))


def value_ranks(codebook: np.ndarray) -> np.ndarray:
    """rank[i] = position of codebook value i in ascending order (ties by index)."""
    order = np.argsort(np.asarray(codebook, dtype=np.float64), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


_PIECE = 1 << 17


def left_flags(positions: np.ndarray, cols: int) -> np.ndarray:
    """1 where a nonzero's left neighbour (same row of ``cols``) is the previous nonzero."""
    pos = np.asarray(positions, dtype=np.int64)
    flags = np.zeros(pos.size, dtype=np.uint8)
    for a in range(1, pos.size, _PIECE):  # in pieces: temporaries of a MiB or so, not of 8 bytes a symbol
        b = min(pos.size, a + _PIECE)
        flags[a:b] = (pos[a:b] - pos[a - 1 : b - 1] == 1) & (pos[a:b] % cols != 0)
    return flags


@njit
def _rates(cap: int) -> np.ndarray:
    out = np.empty(cap + 1, dtype=np.int64)
    for c in range(cap + 1):
        out[c] = 131072 // (2 * c + 3)
    return out


@njit
def _adapt(p: np.ndarray, n: np.ndarray, i: int, bit: int, rates: np.ndarray, cap: int) -> None:
    r = rates[n[i]]
    q = p[i]
    if bit:
        q += ((65536 - q) * r) >> 16
    else:
        q -= (q * r) >> 16
    p[i] = min(max(q, P_MIN), 65536 - P_MIN)
    if n[i] < cap:
        n[i] += 1


@njit
def _shift_low(out: np.ndarray, at: int, low: int, cache: int, pending: int) -> tuple:
    """LZMA's shift_low: the byte below the carry leaves through the cache (with the 0xFF bytes
    pending behind it). Returns (out, at, low, cache, pending); ``out`` may grow."""
    if low < 0xFF000000 or low >= 0x100000000:
        carry = low >> 32
        temp = cache
        while pending:
            if at >= out.size:
                grown = np.zeros(out.size * 2, dtype=np.uint8)
                grown[: out.size] = out
                out = grown
            out[at] = (temp + carry) & 0xFF
            at += 1
            temp = 0xFF
            pending -= 1
        cache = (low >> 24) & 0xFF
    return out, at, (low & 0x00FFFFFF) << 8, cache, pending + 1


@njit
def code_bit(out: np.ndarray, at: int, low: int, rng: int, cache: int, pending: int, prob: int, bit: int) -> tuple:
    """Encode ``bit`` with P(1) = ``prob`` / 2**16 and renormalise. Returns (out, at, low,
    range, cache, pending); ``out`` may grow."""
    bound = (rng >> 16) * (65536 - prob)
    if bit:
        low += bound
        rng -= bound
    else:
        rng = bound
    while rng < _TOP:
        rng <<= 8
        out, at, low, cache, pending = _shift_low(out, at, low, cache, pending)
    return out, at, low, rng, cache, pending


@njit
def _encode(ranks: np.ndarray, left: np.ndarray, up: np.ndarray, k: int, depth: int, cap: int, extra: int) -> np.ndarray:
    """``up[t]``: the symbol the stride back of symbol ``t`` (-1: none), a context when ``extra``."""
    out = np.zeros(ranks.size // 2 + 64, dtype=np.uint8)
    at, low, rng, cache, pending = 0, 0, 0xFFFFFFFF, 0, 1
    rates = _rates(cap)
    nodes = 1 << depth
    contexts = (k + 1) * (k + 1) if extra else k + 1
    p = np.full(contexts * nodes, 32768, np.int64)
    n = np.zeros(contexts * nodes, np.int64)
    for t in range(ranks.size):
        x = ranks[t - 1] + 1 if left[t] else 0
        if extra:
            x = x * (k + 1) + (ranks[up[t]] + 1 if up[t] >= 0 else 0)
        base = x * nodes
        node = 1
        for d in range(depth - 1, -1, -1):
            bit = (ranks[t] >> d) & 1
            i = base + node
            out, at, low, rng, cache, pending = code_bit(out, at, low, rng, cache, pending, p[i], bit)
            _adapt(p, n, i, bit, rates, cap)
            node = (node << 1) | bit
    for _ in range(5):  # flush every byte of low
        out, at, low, cache, pending = _shift_low(out, at, low, cache, pending)
    return out[:at]


@njit
def _decode(data: np.ndarray, left: np.ndarray, up: np.ndarray, k: int, depth: int, cap: int, extra: int) -> tuple:
    """(ranks, bytes read counting the zeros past the end, whether every rank is below k).
    The decision, its update and the renormalisation are written out inline (a decision
    leaves range >= 2**14: at most two bytes), which numba compiles to a tight loop."""
    size = data.size
    ranks = np.zeros(left.size, dtype=np.int32)
    code, at = 0, 0
    for _ in range(4):
        code = (code << 8) | (int(data[at]) if at < size else 0)
        at += 1
    rng = 0xFFFFFFFF
    rates = _rates(cap).astype(np.int32)
    nodes = 1 << depth
    contexts = (k + 1) * (k + 1) if extra else k + 1
    p = np.full(contexts * nodes, 32768, np.int32)
    n = np.zeros(contexts * nodes, np.int32)
    prev = 0
    for t in range(left.size):
        x = prev + 1 if left[t] else 0
        if extra:
            x = x * (k + 1) + (ranks[up[t]] + 1 if up[t] >= 0 else 0)
        base = x * nodes
        node = 1
        for _d in range(depth):
            i = base + node
            q = np.int64(p[i])
            c = n[i]
            r = np.int64(rates[c])
            bound = (rng >> 16) * (65536 - q)
            if code < bound:
                rng = bound
                q -= (q * r) >> 16
                node = node << 1
            else:
                code -= bound
                rng -= bound
                q += ((65536 - q) * r) >> 16
                node = (node << 1) | 1
            if q < P_MIN:
                q = P_MIN
            elif q > 65536 - P_MIN:
                q = 65536 - P_MIN
            p[i] = q
            if c < cap:
                n[i] = c + 1
            if rng < _TOP:
                rng <<= 8
                code = ((code << 8) & 0xFFFFFFFF) | (int(data[at]) if at < size else 0)
                at += 1
                if rng < _TOP:
                    rng <<= 8
                    code = ((code << 8) & 0xFFFFFFFF) | (int(data[at]) if at < size else 0)
                    at += 1
        prev = node - nodes
        if prev >= k:  # a rank outside the alphabet: corrupt; stop before it indexes a context
            return ranks, at, False
        ranks[t] = prev
    return ranks, at, True


def encode_left(ranks: np.ndarray, left: np.ndarray, k: int, cap: int, up: np.ndarray | None = None) -> bytes:
    """The range-coder bytes of value ``ranks`` (each in [0, k)) with ``left`` flags (1: the
    previous rank is this cell's left neighbour) and, for symbols model 4, ``up``
    (:func:`up_indices`), trailing zero bytes dropped as far as the minimum-length rule allows."""
    r = np.ascontiguousarray(ranks, dtype=np.int64)
    f = np.ascontiguousarray(left, dtype=np.uint8)
    u = _NONE if up is None else np.ascontiguousarray(up, dtype=np.int64)
    out = bytes(_encode(r, f, u, int(k), decisions(k), int(cap), 0 if up is None else 1)[1:])  # LZMA's first byte is always 0
    return out[: max(len(out.rstrip(b"\0")), min(least_bytes(r.size * decisions(k)), len(out)))]


def up_indices(positions: np.ndarray, cols: int, stride: int) -> np.ndarray:
    """Symbols model 4's second context: for each nonzero (flat ``positions``, increasing, in
    rows of ``cols``), the index among the nonzeros of the one ``stride`` positions before it
    in the same row, or -1 (none there, or it is zero)."""
    pos = np.asarray(positions, dtype=np.int64)
    out = np.empty(pos.size, dtype=np.int64)
    for a in range(0, pos.size, _PIECE):  # in pieces, as left_flags
        p = pos[a : a + _PIECE]
        target = p - int(stride)
        at = np.minimum(np.searchsorted(pos, target), pos.size - 1)
        out[a : a + p.size] = np.where((p % cols >= stride) & (pos[at] == target), at, -1)
    return out


_NONE = np.zeros(0, dtype=np.int64)


def least_bytes(count: int) -> int:
    """The fewest bytes a stream of ``count`` decisions may have (``count <= 5672 L + 45376``)."""
    return max(0, -(-(int(count) - 45376) // DECISIONS_PER_BYTE))


def decode_left(data: bytes | memoryview, left: np.ndarray, k: int, cap: int,
                up: np.ndarray | None = None) -> tuple[np.ndarray, int, bool]:
    """Decode ``left.size`` ranks (``up`` as for :func:`encode_left`); return (ranks, bytes
    read including zeros past the end, whether every decoded rank was below k). The caller
    checks the rules."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    f = np.ascontiguousarray(left, dtype=np.uint8)
    u = _NONE if up is None else np.ascontiguousarray(up, dtype=np.int64)
    assert up is None or (u.size == f.size and bool(np.all(u < np.arange(u.size))))
    ranks, at, ok = _decode(buf, f, u, int(k), decisions(k), int(cap), 0 if up is None else 1)
    return ranks, int(at), bool(ok)


class LeftSource:
    """The symbols of a model-3 stream (model 4 with a ``stride``), parsed (cap, length and
    minimum-length rule checked): :meth:`attach` gives the positions (the contexts) and decodes
    them all; :meth:`take` and :meth:`finish` then behave as
    :class:`~weightless.entropy.index_decoder.SymbolSource`'s."""

    needs_positions = True

    def __init__(self, data: bytes | memoryview, count: int, ranks: np.ndarray, cap: int, what: str,
                 stride: int = 0) -> None:
        self.data, self.count, self.cap, self.what, self.stride = data, int(count), int(cap), what, int(stride)
        self.order = np.argsort(np.asarray(ranks, dtype=np.int64)).astype(np.int32)  # rank -> codebook index
        self.k = int(ranks.size)
        if not table_allowed(self.k, bool(stride), self.count):
            raise FieldError(f"{what}: symbols model {4 if stride else 3} for {self.k} values needs "
                             f"{table_size(self.k, bool(stride))} probabilities; at most "
                             f"{min(MAX_TABLE, max(TABLE_FLOOR, self.count))} for {self.count} symbols")
        if self.count * decisions(self.k) > DECISIONS_PER_BYTE * len(data) + 45376:
            raise TruncatedError(f"{what}: {len(data)} bytes cannot hold {self.count} symbols of "
                                 f"{decisions(self.k)} decisions; truncated data or a lying count")
        self.symbols: np.ndarray | None = None
        self.at = 0

    def attach(self, positions: np.ndarray, cols: int) -> None:
        """Decode every symbol, the contexts from the flat ``positions`` of the nonzeros in
        rows of ``cols`` cells."""
        up = None
        if self.stride:
            if self.stride >= cols:
                raise FieldError(f"{self.what}: a symbols stride must be 1 .. {cols - 1}, got {self.stride}")
            up = up_indices(positions, cols, self.stride)
        ranks, used, ok = decode_left(self.data, left_flags(positions, cols), self.k, self.cap, up)
        if not ok:
            raise FieldError(f"{self.what}: a decoded symbol is outside the alphabet of {self.k} (corrupt)")
        if used < len(self.data):
            raise FieldError(f"{self.what}: the range coder left {len(self.data) - used} bytes unread (corrupt)")
        self.symbols = self.order[ranks]

    def take(self, n: int) -> np.ndarray:
        if self.symbols is None or n > self.count - self.at:
            raise FieldError(f"{self.what}: {n} symbols asked before decoding or beyond the count")
        out = self.symbols[self.at : self.at + n]
        self.at += n
        return out

    def finish(self) -> None:
        if self.at != self.count:
            raise FieldError(f"{self.what}: {self.count - self.at} symbols were not used")

