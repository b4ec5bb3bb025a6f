"""Positions model 5 and symbols model 4 (contexts with a stride: the pixel above, for a layer
reading images row by row): golden file (in weightless and in the spec-only reference decoder;
the writer writes it byte for byte), round trips, the stride the writer picks, and corruption."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_decoder as ref
import weightless as wl
from test_coded_models3 import _models, assert_corruption_is_a_format_error
from weightless.container import Record, container_to_bytes, read_container
from weightless.entropy._bits import write_varint
from weightless.entropy.context_positions import back_columns, decode_context, encode_context
from weightless.entropy.range_coder import LeftSource, decode_left, encode_left, up_indices
from weightless.entropy.index_coder import LEFT_UP, STRIDED, STRIDED_FLAGS, encode_positions, mask_stride
from weightless.errors import FieldError
from weightless.io.clustered import Clustered, clustered_candidates, coded_record, decode_coded

GOLDEN = Path(__file__).parent / "golden"
CODEBOOK = np.array([-0.5, -0.25, 0.25, 0.5])


def image_blobs(rng: np.random.Generator, rows: int, side: int, k: int, smooth: bool = False) -> np.ndarray:
    """Indices (-1 = zero) of a layer reading side x side images row by row: each row (unit)
    keeps most pixels of one rectangle of the image and a few elsewhere; ``smooth``: a unit's
    indices change with the image row (a pixel's index is mostly the one above's)."""
    y0, x0 = rng.integers(0, side - 2, rows), rng.integers(0, side - 2, rows)
    h, w = rng.integers(2, side // 2 + 1, rows), rng.integers(2, side // 2 + 1, rows)
    yy, xx = np.divmod(np.arange(side * side), side)
    inside = ((yy[None, :] >= y0[:, None]) & (yy[None, :] < (y0 + h)[:, None])
              & (xx[None, :] >= x0[:, None]) & (xx[None, :] < (x0 + w)[:, None]))
    mask = np.where(inside, rng.random(inside.shape) < 0.8, rng.random(inside.shape) < 0.01)
    values = (np.arange(rows)[:, None] + xx[None, :] // 3) % k if smooth else rng.integers(0, k, inside.shape)
    return np.where(mask, values, -1)


def golden_records(flag_models: bool = False) -> list[Record]:
    """The records of tests/golden/coded_v5.wl (tests/golden/coded_v7.wl with ``flag_models``:
    today's writer), written now from the committed indices."""
    from test_coded_models3 import writer_before_flag_models

    arrays = np.load(GOLDEN / "coded_v5_indices.npz")
    with contextlib.nullcontext() if flag_models else writer_before_flag_models():
        return [coded_record(name, Clustered(arrays[name], CODEBOOK, "float32"), "sparse") for name in ("blobs", "smooth")]


def golden_record() -> Record:
    """The first record of tests/golden/coded_v5.wl (positions model 5)."""
    return golden_records()[0]


def test_golden_stride_file():
    """tests/golden/coded_v5.wl: sparse records with positions model 5 (stride 12: images of
    12 x 12 pixels), the second with symbols model 4 too; weightless and the reference decoder
    decode them to the committed tensors, and the writer writes exactly these bytes."""
    data = (GOLDEN / "coded_v5.wl").read_bytes()
    recs = read_container(GOLDEN / "coded_v5.wl").records
    assert [_models(r) for r in recs] == [(STRIDED, 2), (STRIDED, LEFT_UP)]
    assert container_to_bytes(golden_records(), {}) == data
    arrays = np.load(GOLDEN / "coded_v5_indices.npz")
    for got in (wl.load_arrays(GOLDEN / "coded_v5.wl"), ref.load(data)):
        for name in ("blobs", "smooth"):
            want = Clustered(arrays[name], CODEBOOK).values().astype(np.float32)
            assert got[name].tobytes() == want.tobytes(), name


def test_golden_coded_flags_file():
    """tests/golden/coded_v7.wl: the same tensors as coded_v5.wl from today's writer, which
    codes the row and column flags with the context coder (positions model 7); weightless and
    the reference decoder decode them to the committed tensors."""
    data = (GOLDEN / "coded_v7.wl").read_bytes()
    recs = read_container(GOLDEN / "coded_v7.wl").records
    assert [_models(r)[0] for r in recs] == [STRIDED, STRIDED_FLAGS]  # the first's flags gain nothing
    assert container_to_bytes(golden_records(flag_models=True), {}) == data
    assert len(data) < len((GOLDEN / "coded_v5.wl").read_bytes())
    arrays = np.load(GOLDEN / "coded_v5_indices.npz")
    for got in (wl.load_arrays(GOLDEN / "coded_v7.wl"), ref.load(data)):
        for name in ("blobs", "smooth"):
            want = Clustered(arrays[name], CODEBOOK).values().astype(np.float32)
            assert got[name].tobytes() == want.tobytes(), name


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(3, 30), groups=st.integers(4, 30), density=st.sampled_from([0.1, 0.4]), seed=st.integers(0, 2**32 - 1))
def test_coded_flags_round_trip_in_weightless_and_reference(rows, groups, density, seed):
    """Whole groups of 25 columns empty (a convolution's input channels no output reads): the
    coded flags win (models 6 or 7), and both decoders read them back."""
    from weightless.entropy._bits import Reader
    from weightless.entropy.index_decoder import parse_positions

    rng = np.random.default_rng(seed)
    dead = np.repeat(rng.random(groups) < 0.5, 25)
    mask = (rng.random((rows, groups * 25)) < density) & ~dead[None, :]
    mask[rng.integers(0, rows), rng.integers(0, groups * 25)] = True
    data = encode_positions(mask, rows)
    flat = mask.reshape(-1)
    assert np.array_equal(parse_positions(Reader(data, "w"), flat.size, "w", rows).mask(), flat)
    got, _ = ref._positions(data, 0, flat.size, rows)
    assert np.array_equal(got, flat)


def test_runs_of_empty_columns_take_the_coded_flags():
    from weightless.entropy.index_coder import CONTEXT_FLAGS

    rng = np.random.default_rng(3)
    dead = np.repeat(rng.random(20) < 0.4, 25)
    mask = (rng.random((50, 500)) < 0.06) & ~dead[None, :]
    data = encode_positions(mask, 50)
    assert data[len(write_varint(int(mask.sum())))] in (CONTEXT_FLAGS, STRIDED_FLAGS)
    assert len(data) < len(encode_positions(mask, 50, flag_models=False))


def test_the_writer_picks_the_image_width():
    rng = np.random.default_rng(1)
    idx = image_blobs(rng, 60, 12, 4)
    assert mask_stride(idx >= 0) == 12
    assert mask_stride(np.zeros((5, 12), dtype=bool)) == 0  # nothing to tell: no stride, no model 5


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(2, 40), side=st.integers(4, 14), k=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_round_trip_in_weightless_and_reference(rows, side, k, seed):
    rng = np.random.default_rng(seed)
    idx = image_blobs(rng, rows, side, k, smooth=seed % 2 == 1)
    c = Clustered(idx, np.sort(rng.normal(size=k)).astype(np.float32).astype(np.float64), "float32")
    want = c.values().astype(np.float32)
    for rec in clustered_candidates("w", c):
        assert np.array_equal(decode_coded(rec), want)
        assert np.array_equal(ref.load(container_to_bytes([rec], {}))["w"], want)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(2, 50), density=st.sampled_from([0.02, 0.3, 0.8]),
       stride=st.integers(1, 49), cap=st.integers(1, 255), seed=st.integers(0, 2**32 - 1))
def test_context_stream_round_trip_anymask_stride(rows, cols, density, stride, cap, seed):
    """Any stride and kept columns: the kernels decode what they encoded; with no second
    neighbour anywhere (every back -1) model 5 writes model 4's bytes."""
    rng = np.random.default_rng(seed)
    grid = rng.random((rows, cols)) < density
    kept = np.sort(rng.choice(cols + 20, cols, replace=False))
    back = back_columns(kept, stride)
    assert np.all(back < np.arange(cols))
    data = encode_context(grid, cap, back)
    got, used = decode_context(data, rows, cols, cap, back)
    assert np.array_equal(got.astype(bool), grid) and used >= len(data)
    assert encode_context(grid, cap, np.full(cols, -1)) == encode_context(grid, cap)


@pytest.mark.parametrize("which", [0, 1])
def test_corruption_is_a_format_error(which):
    assert_corruption_is_a_format_error(golden_records()[which])


@pytest.mark.parametrize("stride", [0, 144])
def test_a_stride_outside_the_row_is_refused(stride):
    """The stride is 1 .. C - 1 (C = 144 columns here)."""
    idx = np.load(GOLDEN / "coded_v5_indices.npz")["blobs"]
    body = encode_positions((idx >= 0).reshape(-1), idx.shape[0])
    rec = golden_record()
    start = rec.payload.index(body)
    n_len = len(write_varint(int((idx >= 0).sum())))
    assert body[n_len] == STRIDED
    # the stride's varint follows the two flag masks and the cap: find it by re-encoding them
    from weightless.entropy.index_coder import _flat

    m2 = idx >= 0
    head = n_len + 1 + len(_flat(m2.any(axis=1))) + len(_flat(m2.any(axis=0))) + 1
    assert body[head] == 12
    bad = rec.payload[: start + head] + write_varint(stride) + rec.payload[start + head + 1 :]
    with pytest.raises(FieldError, match="stride"):
        decode_coded(Record("w", rec.encoding, rec.shape, "float32", {}, bad))


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 300), k=st.integers(2, 20), cols=st.integers(2, 30), cap=st.integers(1, 255),
       stride=st.integers(1, 29), seed=st.integers(0, 2**32 - 1))
def test_left_up_stream_round_trip(count, k, cols, cap, stride, seed):
    """Symbols model 4's kernels decode what they encoded, for any positions and stride; with no
    symbol above anywhere (every up -1) they write model 3's bytes."""
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(cols * 12, min(count, cols * 12), replace=False))
    ranks = rng.integers(0, k, pos.size)
    left = (np.diff(pos, prepend=-2) == 1) & (pos % cols != 0)
    up = up_indices(pos, cols, min(stride, cols - 1))
    assert np.all(up < np.arange(pos.size)) and np.all(pos[up[up >= 0]] == (pos - min(stride, cols - 1))[up >= 0])
    data = encode_left(ranks, left, k, cap, up)
    got, used, ok = decode_left(data, left, k, cap, up)
    assert ok and np.array_equal(got, ranks) and used >= len(data)
    assert encode_left(ranks, left, k, cap, np.full(pos.size, -1)) == encode_left(ranks, left, k, cap)


@pytest.mark.parametrize("stride", [0, 144])
def test_a_symbols_stride_outside_the_row_is_refused(stride):
    """The symbols stride is 1 .. C - 1 (C = 144 columns): 0 when parsed, C when the positions
    are known."""
    if stride == 0:
        from weightless.entropy._bits import Reader
        from weightless.entropy.index_decoder import parse_symbols

        with pytest.raises(FieldError, match="stride"):
            parse_symbols(Reader(bytes([LEFT_UP, 64]) + write_varint(0) + write_varint(1) + b"\0", "w"), 5, 4, "w",
                          np.arange(4))
        return
    src = LeftSource(b"\0" * 8, 3, np.arange(4), 64, "w", stride=stride)
    with pytest.raises(FieldError, match="stride"):
        src.attach(np.array([0, 1, 2]), 144)


@pytest.mark.parametrize("k, model", [(40000, 3), (300, 4), (400, 3), (100, 4)])
def test_a_hostile_alphabet_is_refused_before_its_table_is_allocated(k, model):
    """k = 40,000 values with symbols model 3 would need 40,001 x 2^16 probabilities (10 GB),
    k = 300 with model 4 301^2 x 2^9: a FieldError, at once, instead; k = 400 (model 3, 205,312
    probabilities) and k = 100 (model 4, 1.3 M) for 2 symbols: more than max(2^17, 2)."""
    mask = np.zeros(100, dtype=bool)
    mask[[3, 4]] = True
    cb = (np.arange(1, k + 1, dtype=np.float32) / 1024).astype("<f4")
    stream = bytes([model, 64]) + (write_varint(2) if model == 4 else b"") + write_varint(1) + b"\0"
    payload = write_varint(k) + bytes([0]) + cb.tobytes() + encode_positions(mask, 1) + stream
    with pytest.raises(FieldError, match="probabilities"):
        decode_coded(Record("w", "sparse", (100,), "float32", {}, payload))


def test_the_table_may_grow_with_the_symbol_count_only():
    from weightless.entropy.index_coder import encode_symbols
    from weightless.entropy.index_coder import LEFT
    from weightless.entropy.range_coder import table_allowed

    assert table_allowed(256, False, 0) and not table_allowed(257, False, 1 << 17)
    assert table_allowed(257, False, 132_096) and not table_allowed(4096, False, 1 << 30)
    assert table_allowed(44, True, 0) and not table_allowed(45, True, 0) and table_allowed(255, True, 1 << 24)
    s = np.repeat(np.arange(300), 3)  # runs: model 3 would be the shortest, but 300 values need a larger table
    out = encode_symbols(s, 300, (np.arange(300), np.r_[0, (np.diff(s) == 0)].astype(np.int64)))
    assert out[0] != LEFT
    assert encode_symbols(s[:90] % 30, 30, (np.arange(30), np.r_[0, (np.diff(s[:90]) == 0)].astype(np.int64)))[0] == LEFT


def test_symbols_model_4_only_when_one_percent_shorter():
    """Model 4 decodes slower: at 0.5% shorter than the other symbols models it is not written
    (LeNet5 FC-0 would have gained 15 of 21,704 bytes for 0.6 ms of decoding), at 15% it is."""
    from weightless.entropy.index_coder import encode_symbols
    from weightless.entropy.range_coder import left_flags

    for share, written in ((0.46, False), (0.8, True)):  # of the indices that follow the one above
        rng = np.random.default_rng(7)
        smooth = image_blobs(rng, 400, 12, 4, smooth=True)
        idx = np.where(rng.random(smooth.shape) < share, smooth, np.where(smooth >= 0, rng.integers(0, 4, smooth.shape), -1))
        pos = np.flatnonzero(idx >= 0)
        sym, context, up = idx.reshape(-1)[pos], (np.arange(4), left_flags(pos, 144)), up_indices(pos, 144, 12)
        without = encode_symbols(sym, 4, context)
        alone = min(len(encode_left(sym, context[1], 4, cap, up)) + 3 for cap in (64, 255))
        assert alone < len(without)  # model 4 is shorter either way
        got = encode_symbols(sym, 4, context, (12, up))
        assert (got[0] == LEFT_UP) == written and (written or got == without)


@pytest.mark.parametrize("model", [4, 5])
def test_nonzeros_in_no_kept_row_are_refused_before_the_columns_are_sized(model):
    """Row flags saying no row holds a nonzero, for n = 1: refused right after the flags (before,
    the context models' column states were allocated first: 41 bytes a column, 164 MB for a
    15-byte payload declaring 4 M columns)."""
    pos = write_varint(1) + bytes([model]) + write_varint(0) + write_varint(1000) + bytes([64])
    pos += (write_varint(1) if model == 5 else b"") + write_varint(1) + b"\0"
    payload = write_varint(1) + bytes([1]) + np.ones(1, "<f2").tobytes() + pos
    with pytest.raises(FieldError, match="0 rows and 1000 columns"):
        decode_coded(Record("w", "sparse", (2, 1000), "float16", {}, payload))
