"""Positions models 3 (blocks) and 4 (context) and symbols model 3 (left) of coded records, written from
docs/FORMAT.md section 8 alone, for tests/reference_decoder.py (numpy and the standard library;
nothing of weightless). Plain loops: clarity over speed.
"""

from __future__ import annotations

import bisect
import math

import numpy as np


class Ans:
    """constriction's AnsCoder (32-bit words, 64-bit state) decoding symbols of several models
    one after the other from one stream (FORMAT.md, "Cell records", 6.4)."""

    def __init__(self, words: list[int]) -> None:
        self.stack = list(words)
        self.state = 0
        if self.stack:
            self.state = self.stack.pop()
            if self.state == 0:
                raise ValueError("ANS: last word is zero")
            while self.stack and self.state < (1 << 32):
                self.state = (self.state << 32) | self.stack.pop()

    def decode(self, cdf: list[int]) -> int:
        q = self.state & ((1 << 24) - 1)
        s = bisect.bisect_right(cdf, q, 0, len(cdf) - 1) - 1
        self.state = (self.state >> 24) * (cdf[s + 1] - cdf[s]) + (q - cdf[s])
        if self.state < (1 << 32) and self.stack:
            self.state = (self.state << 32) | self.stack.pop()
        return s

    def end(self) -> None:
        if self.state != 0 or self.stack:
            raise ValueError("ANS: stream not consumed exactly")


def run_model(cells: int, marks: int) -> tuple[int, list[float]]:
    """8.2 model 3: (E, probabilities) of a coded block."""
    b = min(8, max(1, (-(-2 * cells // marks) - 1).bit_length()))
    e = (1 << b) - 1
    p = marks / cells
    w = [1.0]
    for _ in range(e):
        w.append(w[-1] * (1.0 - p))
    return e, [w[e]] + [p * w[s - 1] for s in range(1, e + 1)]


def blocks_mask(b: bytes, p: int, size: int, n: int, rows: int, read_varint, decode_symbols, quantized_cdf,
                words, min_length) -> tuple[np.ndarray, int]:
    """8.2 model 3 after its model byte: (mask, next offset)."""
    cols = size // rows
    gr, gc = b[p], b[p + 1]
    if not (1 <= gr <= 16 and 1 <= gc <= 16) or rows < 2 or cols < 2:
        raise ValueError("8.2: blocks groups")
    rl, p = decode_symbols(b, p + 2, rows, gr)
    cl, p = decode_symbols(b, p, cols, gc)
    rows_of = [[i for i in range(rows) if rl[i] == a] for a in range(gr)]
    cols_of = [[j for j in range(cols) if cl[j] == c] for c in range(gc)]
    counts = {}
    for a in range(gr):
        for c in range(gc):
            counts[a, c], p = read_varint(b, p)
            if counts[a, c] > len(rows_of[a]) * len(cols_of[c]):
                raise ValueError("8.2: block count")
    if sum(counts.values()) != n:
        raise ValueError("8.2: block counts")
    coded = [(a, c) for a in range(gr) for c in range(gc) if 0 < counts[a, c] < len(rows_of[a]) * len(cols_of[c])]
    models, runs = {}, {}
    for a, c in coded:
        cells = len(rows_of[a]) * len(cols_of[c])
        models[a, c] = run_model(cells, min(counts[a, c], cells - counts[a, c]))
        runs[a, c], p = read_varint(b, p)
    length, p = read_varint(b, p)
    min_length(length, sum(min(counts[ab], len(rows_of[ab[0]]) * len(cols_of[ab[1]]) - counts[ab])
                           * -math.log2(models[ab][1][1] + 2.0**-23) for ab in coded))
    ans = Ans(words(b[p : p + length]))
    mask = np.zeros((rows, cols), bool)
    for a in range(gr):
        for c in range(gc):
            cells = len(rows_of[a]) * len(cols_of[c])
            block = np.full(cells, counts[a, c] == cells)
            if (a, c) in models:
                e, probs = models[a, c]
                cdf = quantized_cdf(probs)
                marks = min(counts[a, c], cells - counts[a, c])
                marked = np.zeros(cells, bool)
                cursor = found = s = 0
                for _ in range(runs[a, c]):
                    s = ans.decode(cdf)
                    if s:
                        marked[cursor + s - 1] = True
                        found += 1
                    cursor += s if s else e
                    if cursor > cells:
                        raise ValueError("8.2: run past the block")
                if found != marks or s == 0:
                    raise ValueError("8.2: block marks")
                block = marked if 2 * counts[a, c] <= cells else ~marked
            mask[np.ix_(rows_of[a], cols_of[c])] = block.reshape(len(rows_of[a]), len(cols_of[c]))
    ans.end()
    return mask.reshape(-1), p + length


class RangeDecoder:
    """8.3 model 3's range decoder and adaptive probabilities."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.code, self.rng = data, 0, 0, (1 << 32) - 1
        for _ in range(4):
            self.code = (self.code << 8) | self.byte()

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at - 1 < len(self.data) else 0

    def bit(self, prob: list[int], seen: list[int], i: int, cap: int) -> int:
        bound = (self.rng >> 16) * (65536 - prob[i])
        if self.code < bound:
            self.rng, bit = bound, 0
        else:
            self.code, self.rng, bit = self.code - bound, self.rng - bound, 1
        while self.rng < (1 << 24):
            self.rng <<= 8
            self.code = ((self.code << 8) & 0xFFFFFFFF) | self.byte()
        adapt(prob, seen, i, bit, cap)
        return bit


def adapt(prob: list[int], seen: list[int], i: int, bit: int, cap: int) -> None:
    step = 131072 // (2 * min(seen[i], cap) + 3)
    prob[i] = prob[i] + (((65536 - prob[i]) * step) >> 16) if bit else prob[i] - ((prob[i] * step) >> 16)
    prob[i] = min(max(prob[i], 64), 65472)
    seen[i] += 1


def context_grid(b: bytes, p: int, rows: int, cols: int, read_varint,
                 kept_columns: np.ndarray | None = None, columns: int = 0, cap: int | None = None) -> tuple[np.ndarray, int]:
    """8.2 model 4 after its flags: (the kept grid, next offset); model 5 when
    ``kept_columns`` (the tensor columns of the kept columns, of ``columns``) is given; models 6
    and 7 (and their coded flags, a one-row grid) pass the ``cap`` read before the flags."""
    if cap is None:
        cap = b[p]
        p += 1
    back = None
    if kept_columns is not None:
        stride, p = read_varint(b, p)
        if not 1 <= stride < columns:
            raise ValueError("8.2: stride")
        where = {int(c): j for j, c in enumerate(kept_columns)}
        back = [where.get(int(c) - stride, -1) for c in kept_columns]
    length, p = read_varint(b, p)
    if not 1 <= cap <= 255 or rows * cols > 5672 * length + 45376:
        raise ValueError("8.2: context stream")
    dec = RangeDecoder(b[p : p + length])
    octave = [min(12 - (v >> 4).bit_length(), 7) for v in range(65536)]
    pc, nc, pr, nr = [32768] * cols, [0] * cols, [32768] * rows, [0] * rows
    px, nx = [32768] * 256, [0] * 256
    grid = np.zeros((rows, cols), bool)
    for i in range(rows):
        left = 0
        for j in range(cols):
            c = (octave[pc[j]] * 8 + octave[pr[i]]) * 2 + left
            if back is not None:
                c = 2 * c + int(back[j] >= 0 and grid[i, back[j]])
            left = dec.bit(px, nx, c, cap)
            adapt(pc, nc, j, left, 1023)
            adapt(pr, nr, i, left, 1023)
            grid[i, j] = left
    if dec.at < length:
        raise ValueError("8.2: unused bytes")
    return grid, p + length


def coded_flags(b: bytes, p: int, size: int, cap: int, read_varint) -> tuple[np.ndarray, int]:
    """8.2 models 6 and 7: one flag mask (varint count, then unless all or none a one-row grid)."""
    n, p = read_varint(b, p)
    if n in (0, size):
        return np.full(size, n == size), p
    if n > size:
        raise ValueError("8.2: flag count")
    grid, p = context_grid(b, p, 1, size, read_varint, cap=cap)
    if int(grid.sum()) != n:
        raise ValueError("8.2: coded flags")
    return grid[0], p


def left_symbols(b: bytes, p: int, count: int, k: int, codebook: np.ndarray, positions: np.ndarray, cols: int,
                 read_varint, up: bool = False) -> tuple[np.ndarray, int]:
    """8.3 model 3 (model 4 when ``up``) after its model byte: (indices, next offset)."""
    cap = b[p]
    p += 1
    stride = 0
    if up:
        stride, p = read_varint(b, p)
        if not 1 <= stride < cols:
            raise ValueError("8.3: stride")
    length, p = read_varint(b, p)
    if not 1 <= cap <= 255:
        raise ValueError("8.3: cap")
    depth = max(k - 1, 0).bit_length()
    if count * depth > 5672 * length + 45376:
        raise ValueError("8.4: left stream too short")
    order = np.argsort(codebook, kind="stable")  # rank -> index
    nodes = 1 << depth
    contexts = (k + 1) * (k + 1) if up else k + 1
    prob = [32768] * (contexts * nodes)
    seen = [0] * (contexts * nodes)
    dec = RangeDecoder(b[p : p + length])
    ranks: list[int] = []
    where = {int(q): t for t, q in enumerate(positions)}  # position -> its symbol
    for t in range(count):
        left = t > 0 and positions[t] - positions[t - 1] == 1 and positions[t] % cols != 0
        x = ranks[-1] + 1 if left else 0
        if up:
            above = where.get(int(positions[t]) - stride) if positions[t] % cols >= stride else None
            x = x * (k + 1) + (ranks[above] + 1 if above is not None else 0)
        base = x * nodes
        node = 1
        for _ in range(depth):
            node = 2 * node + dec.bit(prob, seen, base + node, cap)
        if node - nodes >= k:
            raise ValueError("8.3: rank outside the alphabet")
        ranks.append(node - nodes)
    if dec.at < length:
        raise ValueError("8.3: unused bytes")
    return order[np.array(ranks, dtype=np.int64)] if count else np.zeros(0, np.int64), p + length
