"""Positions model 3 (blocks) and symbols model 3 (left) of coded records: golden file (in
weightless and in the spec-only reference decoder; the writer writes it byte for byte), round
trips, the minimum-length rules and corruption."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_decoder as ref
import weightless as wl
from weightless.container import Record, container_to_bytes, read_container
from weightless.entropy._bits import Reader, write_varint
from weightless.entropy.blocks import encode_blocks, parse_blocks
from weightless.entropy.index_decoder import parse_positions
from weightless.entropy.range_coder import LeftSource, decode_left, encode_left, left_flags
from weightless.errors import FormatError, TruncatedError
from weightless.io.clustered import Clustered, clustered_candidates, coded_record, decode_coded

GOLDEN = Path(__file__).parent / "golden"


def structured(rng: np.random.Generator, shape: tuple[int, int], k: int) -> np.ndarray:
    """Indices (-1 = zero) with column and row densities and values close to their left neighbours'."""
    rows, cols = shape
    col_p = np.where((np.arange(cols) // 5) % 2 == 0, 0.7, 0.03)  # runs of dense neighbouring columns
    row_p = np.where(np.arange(rows) < rows // 4, 0.2, 1.0)
    mask = rng.random(shape) < col_p[None, :] * row_p[:, None]
    steps = rng.choice([-1, 0, 0, 0, 1], shape)
    return np.where(mask, np.clip(k // 2 + np.cumsum(steps, axis=1), 0, k - 1), -1)


def _models(rec: Record) -> tuple[int | None, int]:
    """(positions model, symbols model) of a coded record (None: no positions stream or n in {0, size})."""
    r = Reader(rec.payload, "w")
    k = r.varint("k", 65536)
    r.take(1 + k * (4, 2, 2, 8)[r.data[r.pos]], "codebook")
    pmodel = None
    if rec.encoding == "sparse":
        start = r.pos
        r.varint("n", 1 << 40)
        pmodel = r.u8("model")
        r.pos = start
        parse_positions(r, int(np.prod(rec.shape)), "w", rec.shape[0])
    return pmodel, r.u8("symbols model")


def pixel_runs(rng: np.random.Generator, shape: tuple[int, int], k: int) -> np.ndarray:
    """Indices (-1 = zero) kept in one run of neighbouring columns per row (receptive fields)."""
    rows, cols = shape
    start, length = rng.integers(0, cols, rows), rng.integers(2, 8, rows)
    j = np.arange(cols)[None, :]
    inside = (j >= start[:, None]) & (j < (start + length)[:, None])
    mask = np.where(inside, rng.random(shape) < 0.7, rng.random(shape) < 0.005)
    return np.where(mask, rng.integers(0, k, shape), -1)


@contextmanager
def writer_before_flag_models():
    """The writer as before positions models 6 and 7 (coded flags), which wrote the golden
    files of models 3 to 5: they stay what such a writer writes, byte for byte."""
    import weightless.io.clustered as cl
    from weightless.entropy import index_coder

    with mock.patch.object(cl, "encode_positions", functools.partial(index_coder.encode_positions, flag_models=False)):
        yield


def golden_records() -> list[Record]:
    """The records of tests/golden/coded_v3.wl, written now from the committed indices."""
    arrays = np.load(GOLDEN / "coded_v3_indices.npz")
    cb = arrays["codebook"]
    with writer_before_flag_models():
        return [coded_record(name, Clustered(arrays[name], cb, "float32"), enc)
                for name, enc in (("blocks", "sparse"), ("context", "sparse"), ("left", "indexed"))]


def test_golden_models3_file():
    """tests/golden/coded_v3.wl: sparse records with positions model 3 (and symbols model 3)
    and model 4, an indexed record with symbols model 3; in weightless and in the reference
    decoder they decode to the committed tensors, and the writer writes exactly these bytes."""
    data = (GOLDEN / "coded_v3.wl").read_bytes()
    recs = read_container(GOLDEN / "coded_v3.wl").records
    assert [_models(r) for r in recs] == [(3, 3), (4, 0), (None, 3)]
    assert container_to_bytes(golden_records(), {}) == data
    arrays = np.load(GOLDEN / "coded_v3_indices.npz")
    for got in (wl.load_arrays(GOLDEN / "coded_v3.wl"), ref.load(data)):
        for name in ("blocks", "context", "left"):
            want = Clustered(arrays[name], arrays["codebook"]).values().astype(np.float32)
            assert got[name].tobytes() == want.tobytes(), name


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(2, 30), cols=st.integers(2, 40), k=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_models3_round_trip_in_weightless_and_reference(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    cb = np.sort(rng.normal(size=k)).astype(np.float32).astype(np.float64)
    idx = (structured if seed % 2 else pixel_runs)(rng, (rows, cols), k)
    c = Clustered(idx, cb, "float32")
    want = c.values().astype(np.float32)
    for rec in clustered_candidates("w", c):
        assert np.array_equal(decode_coded(rec), want)
        data = container_to_bytes([rec], {})
        assert np.array_equal(ref.load(data)["w"], want)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(2, 50), cols=st.integers(2, 60), density=st.sampled_from([0.01, 0.1, 0.5, 0.9]),
       seed=st.integers(0, 2**32 - 1))
def test_blocks_stream_round_trip(rows, cols, density, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density * rng.random(cols)[None, :] * 2
    n = int(mask.sum())
    if 0 < n < mask.size:
        body = encode_blocks(mask.reshape(-1), rows)
        assert body is not None
        pos = parse_blocks(Reader(body, "b"), mask.size, n, rows, "b")
        assert np.array_equal(pos, np.flatnonzero(mask))


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 400), k=st.integers(2, 70), cols=st.integers(1, 30), cap=st.integers(1, 255),
       seed=st.integers(0, 2**32 - 1))
def test_left_stream_round_trip(count, k, cols, cap, seed):
    rng = np.random.default_rng(seed)
    ranks = rng.integers(0, k, count)
    pos = np.sort(rng.choice(count * 3 + 1, count, replace=False))
    flags = left_flags(pos, cols)
    data = encode_left(ranks, flags, k, cap)
    back, used, ok = decode_left(data, flags, k, cap)
    assert ok and used >= len(data) and np.array_equal(back, ranks)


def test_minimum_length_rules():
    """A stream too short for what it declares is refused before anything is decoded."""
    with pytest.raises(TruncatedError):  # left: 10^6 symbols of 4 decisions in 2 bytes
        LeftSource(b"\x01\x02", 10**6, np.arange(9), 255, "w")
    rng = np.random.default_rng(3)
    mask = rng.random((50, 80)) < np.where(np.arange(80) % 2, 0.3, 0.01)[None, :]
    body = encode_blocks(mask.reshape(-1), 50)
    head_len = len(body) - 4
    with pytest.raises(FormatError):
        parse_blocks(Reader(body[:head_len], "b"), mask.size, int(mask.sum()), 50, "b")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_models3_corruption_is_a_format_error(which):
    assert_corruption_is_a_format_error(golden_records()[which])


def assert_corruption_is_a_format_error(rec: Record) -> None:
    """Every truncation of ``rec``'s payload, and a byte more, is a FormatError; a flipped
    byte decodes or is a FormatError, never anything else."""
    p = rec.payload
    for cut in range(len(p)):
        with pytest.raises(FormatError):
            decode_coded(Record("w", rec.encoding, rec.shape, "float32", {}, p[:cut]))
    for i in range(len(p)):
        for flip in (0x01, 0x80, 0xFF):
            bad = Record("w", rec.encoding, rec.shape, "float32", {}, p[:i] + bytes([p[i] ^ flip]) + p[i + 1 :])
            try:
                decode_coded(bad)  # a flip may still decode: never anything but a FormatError
            except FormatError:
                pass
    with pytest.raises(FormatError):
        decode_coded(Record("w", rec.encoding, rec.shape, "float32", {}, p + write_varint(0)))


def test_models3_without_numba_same_bytes():
    """WEIGHTLESS_DISABLE_NUMBA=1: the range coder's kernels run as plain Python and write
    and read the golden files' bytes (positions models 3 to 5 and 7, symbols models 3 and 4)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from weightless._compat import HAVE_NUMBA\n"
        "assert not HAVE_NUMBA\n"
        "from test_coded_models3 import GOLDEN, golden_records\n"
        "from weightless.container import container_to_bytes\n"
        "from weightless.io.clustered import decode_coded\n"
        "from test_coded_stride import golden_records as stride_records\n"
        "recs, more = golden_records(), stride_records()\n"
        "assert container_to_bytes(recs, {}) == (GOLDEN / 'coded_v3.wl').read_bytes()\n"
        "assert container_to_bytes(more, {}) == (GOLDEN / 'coded_v5.wl').read_bytes()\n"
        "flags = stride_records(flag_models=True)\n"
        "assert container_to_bytes(flags, {}) == (GOLDEN / 'coded_v7.wl').read_bytes()\n"
        "for r in recs + more + flags: decode_coded(r)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, WEIGHTLESS_DISABLE_NUMBA="1")
    res = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
