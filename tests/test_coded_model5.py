"""Positions model 5 (context with a stride: the pixel above, for a layer reading images row by
row): golden file (in weightless and in the spec-only reference decoder; the writer writes it
byte for byte), round trips, the stride the writer picks, and corruption."""

from __future__ import annotations

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
from weightless.entropy.index_coder import STRIDED, _stride, encode_positions
from weightless.errors import FieldError
from weightless.io.clustered import Clustered, clustered_candidates, coded_record, decode_coded

GOLDEN = Path(__file__).parent / "golden"
CODEBOOK = np.array([-0.5, -0.25, 0.25, 0.5])


def image_blobs(rng: np.random.Generator, rows: int, side: int, k: int) -> np.ndarray:
    """Indices (-1 = zero) of a layer reading side x side images row by row: each row (unit)
    keeps most pixels of one rectangle of the image and a few elsewhere."""
    y0, x0 = rng.integers(0, side - 2, rows), rng.integers(0, side - 2, rows)
    h, w = rng.integers(2, side // 2 + 1, rows), rng.integers(2, side // 2 + 1, rows)
    yy, xx = np.divmod(np.arange(side * side), side)
    inside = ((yy[None, :] >= y0[:, None]) & (yy[None, :] < (y0 + h)[:, None])
              & (xx[None, :] >= x0[:, None]) & (xx[None, :] < (x0 + w)[:, None]))
    mask = np.where(inside, rng.random(inside.shape) < 0.8, rng.random(inside.shape) < 0.01)
    return np.where(mask, rng.integers(0, k, inside.shape), -1)


def golden_record() -> Record:
    """The record of tests/golden/coded_v5.wl, written now from the committed indices."""
    return coded_record("blobs", Clustered(np.load(GOLDEN / "coded_v5_indices.npz")["blobs"], CODEBOOK, "float32"), "sparse")


def test_golden_model5_file():
    """tests/golden/coded_v5.wl: a sparse record with positions model 5 (stride 12: images of
    12 x 12 pixels); weightless and the reference decoder decode it to the committed tensor,
    and the writer writes exactly these bytes."""
    data = (GOLDEN / "coded_v5.wl").read_bytes()
    recs = read_container(GOLDEN / "coded_v5.wl").records
    assert [_models(r) for r in recs] == [(STRIDED, 2)]
    assert container_to_bytes([golden_record()], {}) == data
    want = Clustered(np.load(GOLDEN / "coded_v5_indices.npz")["blobs"], CODEBOOK).values().astype(np.float32)
    for got in (wl.load_arrays(GOLDEN / "coded_v5.wl"), ref.load(data)):
        assert got["blobs"].tobytes() == want.tobytes()


def test_the_writer_picks_the_image_width():
    rng = np.random.default_rng(1)
    idx = image_blobs(rng, 60, 12, 4)
    assert _stride(idx >= 0) == 12
    assert _stride(np.zeros((5, 12), dtype=bool)) == 0  # nothing to tell: no stride, no model 5


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(2, 40), side=st.integers(4, 14), k=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_round_trip_in_weightless_and_reference(rows, side, k, seed):
    rng = np.random.default_rng(seed)
    c = Clustered(image_blobs(rng, rows, side, k), np.sort(rng.normal(size=k)).astype(np.float32).astype(np.float64), "float32")
    want = c.values().astype(np.float32)
    for rec in clustered_candidates("w", c):
        assert np.array_equal(decode_coded(rec), want)
        assert np.array_equal(ref.load(container_to_bytes([rec], {}))["w"], want)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(2, 50), density=st.sampled_from([0.02, 0.3, 0.8]),
       stride=st.integers(1, 49), cap=st.integers(1, 255), seed=st.integers(0, 2**32 - 1))
def test_context_stream_round_trip_any_stride(rows, cols, density, stride, cap, seed):
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


def test_corruption_is_a_format_error():
    assert_corruption_is_a_format_error(golden_record())


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
