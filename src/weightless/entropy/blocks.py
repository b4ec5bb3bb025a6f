"""Positions model 3, blocks: the mask as a ``rows`` x ``cols`` grid whose rows and columns
are each sorted into a few groups, so that every (row group, column group) block is a
uniform density (numpy + constriction). Layout in docs/FORMAT.md, section 8.2.

Pruned weights are structured: inputs that every neuron ignores (empty columns), busy and
quiet neurons, conv kernel positions that survive more often. The encoder finds the groups
by co-clustering (alternately moving each row, then each column, to the group that codes it
in the fewest bits, from density-quantile groups) for a few group counts and keeps the
shortest stream. Each block's marked cells (its nonzeros, or its zeros when it is mostly
nonzero) are coded as runs with the geometric model of its density, all blocks in one ANS
stream, so decoding costs a few vectorised calls per block, whatever the cell count.

Stream (after ``varint n`` and ``u8 model = 3``): ``u8 G_r``, ``u8 G_c`` (1..16), the row
groups as a symbols stream of ``rows`` symbols in ``[0, G_r)``, the column groups as a
symbols stream of ``cols`` symbols in ``[0, G_c)``, ``G_r * G_c`` varint counts (nonzeros in
block (a, b), row-major), a varint run-symbol count per coded block (``0 < count <
cells``), ``varint L`` and ``L`` bytes of ANS words: every coded block's run symbols, in
order (its cells: its rows ascending, each over its columns ascending).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import FieldError
from ._bits import Reader, write_varint
from .table_coder import AnsStream, _ans_encode_segments

__all__ = ["encode_blocks", "parse_blocks", "MAX_GROUPS", "GROUP_CHOICES"]

MAX_GROUPS = 16
#: (row groups, column groups) the encoder tries: more groups rarely pay for their labels on
#: LeNet-sized layers (measured: 8 x 8 within 0.3% of 4 x 4) and cost decode time per block.
GROUP_CHOICES = ((2, 2), (2, 4), (4, 2), (4, 4))
_ITERATIONS = 4
#: Widest run symbol: escapes of 255 cells cost nothing in size (the escape's probability is
#: exactly that of 255 unmarked cells) and keep the alphabets small, so decoding is fast.
RUN_BITS = 8


def _quantile_groups(density: np.ndarray, groups: int) -> np.ndarray:
    if groups == 1:
        return np.zeros(density.size, dtype=np.int64)
    edges = np.quantile(density, np.linspace(0.0, 1.0, groups + 1)[1:-1])
    return np.searchsorted(edges, density, side="right").astype(np.int64)


def _block_counts(nz: tuple[np.ndarray, ...], rl: np.ndarray, cl: np.ndarray, gr: int,
                  gc: int) -> tuple[np.ndarray, np.ndarray]:
    """(ones, cells) per block, int64 (gr x gc), of the matrix whose nonzeros are at ``nz``."""
    rr, cc = nz
    ones = np.bincount(rl[rr] * gc + cl[cc], minlength=gr * gc).reshape(gr, gc)
    cells = np.outer(np.bincount(rl, minlength=gr), np.bincount(cl, minlength=gc))
    return ones.astype(np.int64), cells


def _log_probs(ones: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = (ones + 0.5) / (cells + 1.0)
    return np.log2(p), np.log2(1.0 - p)


def _regroup(lines: np.ndarray, other: np.ndarray, n_lines: int, groups: int, other_labels: np.ndarray,
             l1: np.ndarray, l0: np.ndarray) -> np.ndarray:
    """Each line's cheapest group: ``lines``/``other`` are the nonzeros' coordinates along
    this axis and the other, ``l1``/``l0`` (groups x other groups) the bits of a 1/0 cell."""
    og = l1.shape[1]
    per_group = np.bincount(lines * og + other_labels[other], minlength=n_lines * og).reshape(n_lines, og)
    width = np.bincount(other_labels, minlength=og)
    return np.argmin(-(per_group @ l1.T + (width - per_group) @ l0.T), axis=1)


def cocluster(m: np.ndarray, gr: int, gc: int, nz: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column groups of the boolean matrix ``m`` (its nonzeros at ``nz``, found when
    None) that make its blocks uniform (integer counts; the costs in float64)."""
    rows, cols = m.shape
    rr, cc = np.nonzero(m) if nz is None else nz
    rl = _quantile_groups(m.mean(axis=1), gr)
    cl = _quantile_groups(m.mean(axis=0), gc)
    for _ in range(_ITERATIONS):
        if gr > 1:
            l1, l0 = _log_probs(*_block_counts((rr, cc), rl, cl, gr, gc))
            rl = _regroup(rr, cc, rows, gr, cl, l1, l0)
        if gc > 1:
            l1, l0 = _log_probs(*_block_counts((rr, cc), rl, cl, gr, gc))
            cl = _regroup(cc, rr, cols, gc, rl, l1.T, l0.T)
    return rl.astype(np.int64), cl.astype(np.int64)


def _entropy_bits(ones: np.ndarray, cells: np.ndarray) -> float:
    k, n = ones.astype(np.float64), cells.astype(np.float64)
    sel = (k > 0) & (k < n)
    k, n = k[sel], n[sel]
    return float(-(k * np.log2(k / n) + (n - k) * np.log2(1.0 - k / n)).sum())


def _labels_bits(labels: np.ndarray, groups: int) -> float:
    c = np.bincount(labels, minlength=groups).astype(np.float64)
    c = c[c > 0]
    return float(-(c * np.log2(c / labels.size)).sum()) + 12.0 * groups


def _block_cells(rl: np.ndarray, cl: np.ndarray, gr: int, gc: int) -> "Iterator[tuple[int, int, np.ndarray, np.ndarray]]":
    """(a, b, rows of a, columns of b) for every block, row-major."""
    rows = [np.flatnonzero(rl == a) for a in range(gr)]
    cols = [np.flatnonzero(cl == b) for b in range(gc)]
    for a in range(gr):
        for b in range(gc):
            yield a, b, rows[a], cols[b]


def run_bits(cells: int, marks: int) -> int:
    """Width b of a block's run symbols (alphabet 2**b, escape E = 2**b - 1 cells):
    ``ceil(log2(2 cells / marks))`` clamped to [1, 8] (escapes are rare, the alphabet small)."""
    return min(RUN_BITS, max(1, ((2 * cells + marks - 1) // marks - 1).bit_length()))


def run_probs(cells: int, marks: int) -> np.ndarray:
    """The run model of a block: P(0) = (1 - p)**E (escape: E unmarked cells), P(s) =
    p (1 - p)**(s - 1) for s in 1..E (s - 1 unmarked cells, then a marked one), p = marks /
    cells; powers by repeated multiplication, in order (docs/FORMAT.md)."""
    e = (1 << run_bits(cells, marks)) - 1
    p = marks / cells
    q = 1.0 - p
    powers = np.full(e + 1, q)
    powers[0] = 1.0
    powers = np.multiply.accumulate(powers)  # sequential: each the previous times q, rounded
    probs = np.empty(e + 1, dtype=np.float64)
    probs[0] = powers[e]
    probs[1:] = p * powers[:e]
    return probs


def _run_symbols(marked: np.ndarray, e: int) -> np.ndarray:
    """Run symbols of the 0/1 vector ``marked``: per mark, ``g // e`` escapes (0) then ``g % e + 1``
    (``g`` unmarked cells before it)."""
    pos = np.flatnonzero(marked)
    gaps = np.diff(pos, prepend=-1) - 1
    q, r = np.divmod(gaps, e)
    out = np.zeros(int(q.sum()) + pos.size, dtype=np.int32)
    out[np.cumsum(q + 1) - 1] = r + 1
    return out


def _write(m: np.ndarray, rl: np.ndarray, cl: np.ndarray, gr: int, gc: int) -> bytes:
    from .index_coder import encode_symbols

    ones, cells = _block_counts(np.nonzero(m), rl, cl, gr, gc)
    out = [bytes([gr, gc]), encode_symbols(rl, gr), encode_symbols(cl, gc)]
    out += [write_varint(int(c)) for c in ones.reshape(-1)]
    segments = []
    for a, b, ra, cb in _block_cells(rl, cl, gr, gc):
        k, n = int(ones[a, b]), int(cells[a, b])
        if 0 < k < n:
            block = m[np.ix_(ra, cb)].reshape(-1)
            marked, marks = (block, k) if 2 * k <= n else (~block, n - k)
            segments.append((_run_symbols(marked, (1 << run_bits(n, marks)) - 1), run_probs(n, marks)))
    words = _ans_encode_segments(segments) if segments else b""
    out += [write_varint(seg[0].size) for seg in segments]
    return b"".join(out) + write_varint(len(words)) + words


def encode_blocks(mask: np.ndarray, rows: int) -> bytes | None:
    """The shortest blocks-model stream body (after the model byte) of flat boolean ``mask``
    seen as ``rows`` rows, over :data:`GROUP_CHOICES` (at most two written: those with the
    best entropy estimate); None when ``rows`` does not divide the mask into a grid of at
    least 2 x 2."""
    size = mask.size
    if rows < 2 or size % rows or size // rows < 2:
        return None
    m = np.asarray(mask, dtype=bool).reshape(rows, size // rows)
    nz = np.nonzero(m)
    scored = []
    for gr, gc in GROUP_CHOICES:
        if gr > rows or gc > m.shape[1]:
            continue
        rl, cl = cocluster(m, gr, gc, nz)
        ones, cells = _block_counts(nz, rl, cl, gr, gc)
        est = _entropy_bits(ones, cells) + _labels_bits(rl, gr) + _labels_bits(cl, gc) + 12.0 * gr * gc
        scored.append((est, gr, gc, rl, cl))
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    written = [_write(m, rl, cl, gr, gc) for _, gr, gc, rl, cl in scored[:2]]
    return min(written, key=len) if written else None


def parse_blocks(r: Reader, size: int, n: int, rows: int, what: str) -> np.ndarray:
    """Read a blocks-model body (after the model byte) for ``n`` nonzeros in ``size``
    positions as ``rows`` rows; return the flat positions of the nonzeros, increasing (int64). Every count, the minimum-length
    rule and the ANS end state are checked.

    Raises:
        FormatError: group counts out of range, labels or counts inconsistent with the grid
            or ``n``, a stream too short for its counts, a corrupt stream.
    """
    from .index_decoder import _stream, decode_symbols

    cols = size // rows
    gr, gc = r.u8(f"{what} row groups"), r.u8(f"{what} column groups")
    if not (1 <= gr <= MAX_GROUPS and 1 <= gc <= MAX_GROUPS):
        raise FieldError(f"{what}: {gr} x {gc} groups, expected 1..{MAX_GROUPS} each")
    rl = decode_symbols(r, rows, gr, f"{what} row groups")
    cl = decode_symbols(r, cols, gc, f"{what} column groups")
    cells = np.outer(np.bincount(rl, minlength=gr), np.bincount(cl, minlength=gc))
    ones = np.array([r.varint(f"{what} block count", int(c)) for c in cells.reshape(-1)], dtype=np.int64)
    ones = ones.reshape(gr, gc)
    if int(ones.sum()) != n:
        raise FieldError(f"{what}: the blocks hold {int(ones.sum())} nonzeros, the count says {n}")
    coded = [(a, b) for a in range(gr) for b in range(gc) if 0 < ones[a, b] < cells[a, b]]
    marks = {ab: int(min(ones[ab], cells[ab] - ones[ab])) for ab in coded}
    probs = {ab: run_probs(int(cells[ab]), marks[ab]) for ab in coded}
    least = sum(marks[ab] * float(-np.log2(probs[ab][1] + 2.0**-23)) for ab in coded)  # a mark: a symbol >= 1
    runs = {ab: r.varint(f"{what} run symbols", marks[ab] + int(cells[ab]) // (len(probs[ab]) - 1)) for ab in coded}
    if any(runs[ab] < marks[ab] for ab in coded):
        raise FieldError(f"{what}: a block has fewer run symbols than marks")
    stream = _stream(r, probs[coded[0]] if coded else np.full(2, 0.5), sum(runs.values()), least, f"{what} blocks")
    found = []
    for a, b, ra, cb in _block_cells(rl, cl, gr, gc):
        k, n_ab = int(ones[a, b]), int(cells[a, b])
        if k == n_ab:
            found.append((ra[:, None] * cols + cb[None, :]).reshape(-1))
        elif k:
            stream.set_probs(probs[(a, b)])
            cell = _marked_cells(stream, n_ab, marks[(a, b)], runs[(a, b)], f"{what} block ({a}, {b})")
            if 2 * k > n_ab:  # the marks are the zeros
                keep = np.ones(n_ab, dtype=bool)
                keep[cell] = False
                cell = np.flatnonzero(keep)
            found.append(ra[cell // cb.size] * cols + cb[cell % cb.size])
    stream.finish()
    if not found:
        return np.zeros(0, dtype=np.int64)
    out = np.concatenate(found)
    found.clear()  # the blocks' pieces go before the sort, which works in place
    out.sort()
    return out


def _marked_cells(stream: AnsStream, cells: int, marks: int, count: int, what: str) -> np.ndarray:
    """The marked cells of one block (increasing), from its ``count`` run symbols."""
    e = (1 << run_bits(cells, marks)) - 1
    found, cursor = [], 0
    for at in range(0, count, 1 << 16):
        sym = stream.take(min(count - at, 1 << 16)).astype(np.int64)
        ends = cursor + np.cumsum(np.where(sym == 0, e, sym))
        cursor = int(ends[-1])
        if cursor > cells:
            raise FieldError(f"{what}: the runs go past the block's {cells} cells")
        found.append(ends[sym > 0] - 1)
    out = np.concatenate(found)
    if out.size != marks or int(sym[-1]) == 0:
        raise FieldError(f"{what}: {out.size} marks where the count says {marks}, or a trailing escape")
    return out
