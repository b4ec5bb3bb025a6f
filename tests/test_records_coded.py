"""Lossless "sparse" / "indexed" records of clustered tensors: round trips, choice, layout, corruption."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.io import files as api
from weightless.container import Record
from weightless.errors import FormatError, InputError
from weightless.io.records import _filter_params, decode_filter_of, decode_record, filter_record, filter_summary
from weightless.io.clustered import Clustered, as_clustered, clustered_candidates, coded_record, decode_coded


def _clustered(rng, shape, k, density, dtype="float32"):
    idx = np.where(rng.random(shape) < density, rng.integers(0, k, shape), -1)
    cb = np.sort(rng.normal(size=k)).astype(np.float32).astype(np.float64)
    if dtype == "float16":
        cb = cb.astype(np.float16).astype(np.float64)
    return Clustered(idx, cb, dtype)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple),
    k=st.integers(1, 40),
    density=st.sampled_from([0.0, 0.01, 0.2, 0.7, 1.0]),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(["float32", "float16", "float64"]),
)
def test_coded_records_round_trip(shape, k, density, seed, dtype):
    c = _clustered(np.random.default_rng(seed), shape, k, density, dtype)
    want = c.values().astype(dtype)
    for rec in clustered_candidates("w", c):
        back = decode_record(rec)
        assert back.dtype == want.dtype and back.shape == want.shape
        assert back.tobytes() == want.tobytes()


def test_save_picks_the_smallest_lossless_encoding(tmp_path):
    rng = np.random.default_rng(0)
    sparse = _clustered(rng, (300, 784), 9, 0.018).values().astype(np.float32)
    bias16 = (np.round(rng.normal(size=300) * 4) / 4).astype(np.float32)  # 16-ish distinct values
    plain = rng.normal(size=50).astype(np.float32)  # 50 distinct values: dense is smallest
    n = api.save(tmp_path / "m.wl", {"w": sparse, "b": bias16, "p": plain, "z": np.zeros(7, np.float32)})
    info = api.inspect(tmp_path / "m.wl")
    enc = {r["name"]: (r["encoding"], r["payload_bytes"], r["params"]) for r in info["records"]}
    assert enc["w"][0] == "sparse" and enc["w"][1] < sparse.nbytes / 30
    assert enc["w"][2] == {} and enc["b"][2] == {}  # no header byte that nothing needs
    assert enc["b"][0] == "indexed" and enc["p"][0] == "dense" and enc["z"][0] == "sparse"
    back = api.load_arrays(tmp_path / "m.wl")
    for name, a in {"w": sparse, "b": bias16, "p": plain}.items():
        assert back[name].tobytes() == a.tobytes()
    plain_bytes = api.save(tmp_path / "d.wl", {"w": sparse}, compact=False)
    assert n < plain_bytes


def test_signed_zero_and_bfloat16_stay_bit_exact(tmp_path):
    import torch

    a = np.array([0.0, -0.0, 1.5, 0.0, 1.5], dtype=np.float32)
    c = as_clustered(a, "float32")
    assert c is not None
    for rec in clustered_candidates("a", c):
        assert decode_record(rec).tobytes() == a.tobytes()
    b = torch.zeros(40, 50, dtype=torch.bfloat16)
    b[::7, ::3] = 2.0
    b[1::11, ::5] = -1.25
    p = tmp_path / "b.wl"
    api.save(p, {"b": b})
    assert api.inspect(p)["records"][0]["encoding"] == "sparse"
    back = api.load(p)["b"]
    assert back.dtype == torch.bfloat16 and torch.equal(back.view(torch.int16), b.view(torch.int16))


def test_golden_sparse_layout():
    """Pins the bytes of a sparse record: varint k, codebook format (1 = float16), codebook,
    positions (count, model 0 = flat, ANS length, words), symbols (model byte, data)."""
    idx = np.full(64, -1)
    idx[[3, 10, 40]] = [0, 1, 1]
    rec = coded_record("w", Clustered(idx, np.array([-0.5, 0.25]), "float32"), "sparse")
    assert rec.payload[:6] == bytes([2, 1]) + np.array([-0.5, 0.25], "<f2").tobytes()
    assert rec.payload[6:8] == bytes([3, 0])  # three nonzeros, flat positions model
    assert hashlib.sha256(rec.payload).hexdigest() == GOLDEN_SPARSE
    assert decode_record(rec).tolist() == [0.0] * 3 + [-0.5] + [0.0] * 6 + [0.25] + [0.0] * 29 + [0.25] + [0.0] * 23


GOLDEN_SPARSE = "1ac85b53b5d2ce2bccc12c6c690c7432fa534a9a788517edf3030cf89d0d21e7"


def test_every_corruption_is_a_format_error():
    rng = np.random.default_rng(1)
    c = _clustered(rng, (20, 30), 5, 0.1)
    for rec in clustered_candidates("w", c):
        p = rec.payload
        for cut in range(len(p)):
            bad = Record(rec.name, rec.encoding, rec.shape, rec.dtype, {}, p[:cut])
            with pytest.raises(FormatError):
                decode_coded(bad)
        for i in range(len(p)):
            for flip in (0x01, 0x80, 0xFF):
                bad = Record(rec.name, rec.encoding, rec.shape, rec.dtype, {}, p[:i] + bytes([p[i] ^ flip]) + p[i + 1 :])
                try:
                    decode_coded(bad)  # a flip may still decode (e.g. a codebook value): never crash
                except FormatError:
                    pass
        with pytest.raises(FormatError):
            decode_coded(Record(rec.name, rec.encoding, rec.shape, rec.dtype, {"x": 1}, p))
        with pytest.raises(FormatError):
            decode_coded(Record(rec.name, rec.encoding, rec.shape, "int32", {}, p))


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError):
        coded_record("w", Clustered(np.array([0, 5]), np.array([1.0, 2.0])), "sparse")
    with pytest.raises(InputError):
        coded_record("w", Clustered(np.array([0, -1]), np.array([1.0])), "indexed")
    with pytest.raises(InputError):
        coded_record("w", Clustered(np.array([0]), np.array([0.1]), "float16"), "sparse")  # not exact
    with pytest.raises(InputError):
        coded_record("w", Clustered(np.array([0]), np.array([np.inf])), "sparse")


def test_filter_records_of_format_1_still_decode():
    """Files before format 2 carry a full copy of the filter's parameters in params."""
    from weightless.filters import build

    rng = np.random.default_rng(2)
    keys = rng.choice(2000, 100, replace=False)
    f = build(keys, rng.integers(0, 4, 100), size=2000, k=4, t=6, seed=1)
    rec = filter_record("w", f, np.arange(1, 5, dtype=np.float32), (40, 50))
    coding = filter_summary(rec)["coding"]
    old = Record(rec.name, rec.encoding, rec.shape, rec.dtype, _filter_params(f, coding), rec.payload)
    assert decode_record(old).tobytes() == decode_record(rec).tobytes()
    wrong = dict(_filter_params(f, coding), t=7)
    with pytest.raises(FormatError):
        decode_filter_of(Record(rec.name, rec.encoding, rec.shape, rec.dtype, wrong, rec.payload))


def test_lines_model_pays_for_empty_rows_and_columns():
    """A layer whose pruning emptied whole rows and columns codes its positions as row flags,
    column flags and the kept block: smaller than the flat model, same tensor back."""
    from weightless.entropy._bits import Reader
    from weightless.entropy.index_coder import encode_positions
    from weightless.entropy.index_decoder import decode_positions

    rng = np.random.default_rng(3)
    mask = np.zeros((300, 784), dtype=bool)
    rows, cols = rng.random(300) < 0.7, rng.random(784) < 0.6
    mask[np.ix_(rows, cols)] = rng.random((rows.sum(), cols.sum())) < 0.03
    flat, lines = encode_positions(mask, 1), encode_positions(mask, 300)
    assert len(lines) < 0.95 * len(flat)
    back = decode_positions(Reader(lines, "w"), mask.size, "w", 300)
    assert np.array_equal(back, mask.reshape(-1))
    c = Clustered(np.where(mask, rng.integers(0, 9, mask.shape), -1), np.linspace(-1, 1, 9))
    rec = coded_record("w", c, "sparse")
    assert decode_record(rec).tobytes() == c.values().astype(np.float32).tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 30), cols=st.integers(1, 60),
       density=st.sampled_from([0.01, 0.05, 0.3, 0.9]), ramp=st.booleans())
def test_positions_streams_round_trip_in_every_model(seed, rows, cols, density, ramp):
    """Whatever model the writer picks (flat, lines, gaps; the lines model's inner block
    nested), the mask comes back exactly and the reader consumes every byte."""
    from weightless.entropy._bits import Reader
    from weightless.entropy.index_coder import _gaps, encode_positions
    from weightless.entropy.index_decoder import decode_positions

    rng = np.random.default_rng(seed)
    p = np.linspace(0, 2 * density, cols)[None, :] if ramp else density
    mask = rng.random((rows, cols)) < p
    for r in (1, rows):
        data = encode_positions(mask, r)
        rd = Reader(data, "m")
        assert np.array_equal(decode_positions(rd, mask.size, "m", r), mask.reshape(-1))
        rd.expect_end()
    g = _gaps(mask.reshape(-1))
    if g is not None and 0 < mask.sum() < mask.size:  # the gaps model on its own
        from weightless.entropy._bits import write_varint

        data = write_varint(int(mask.sum())) + bytes([2]) + g
        assert np.array_equal(decode_positions(Reader(data, "m"), mask.size, "m"), mask.reshape(-1))


def test_gaps_model_pays_where_density_varies_and_rejects_corruption():
    from weightless.entropy._bits import Reader
    from weightless.entropy.index_coder import encode_positions
    from weightless.entropy.index_decoder import decode_positions

    rng = np.random.default_rng(5)
    p = np.where(np.arange(784) % 28 < 4, 0.4, 0.004)  # dense runs in every row, no empty column
    mask = rng.random((300, 784)) < p[None, :]
    data = encode_positions(mask, 300, blocks_model=False)  # (the blocks model wins here: two column densities)
    assert data[2] == 2  # n takes 2 varint bytes; then the model: gaps won
    assert np.array_equal(decode_positions(Reader(data, "m"), mask.size, "m", 300), mask.reshape(-1))
    for i in range(0, len(data), max(1, len(data) // 200)):
        for flip in (0x01, 0x80):
            bad = data[:i] + bytes([data[i] ^ flip]) + data[i + 1 :]
            try:
                decode_positions(Reader(bad, "m"), mask.size, "m", 1)
            except FormatError:
                pass
    for cut in range(0, len(data), max(1, len(data) // 100)):
        with pytest.raises(FormatError):
            r = Reader(data[:cut], "m")
            decode_positions(r, mask.size, "m", 1)
            r.expect_end()


def test_clustered_values_exact_in_float16_may_be_stored_as_float16(tmp_path):
    """A Clustered float32 tensor whose every value is a float16 (e.g. a bias kept exact and
    rounded) is stored as dense float16 when that is the smallest: the same values come back."""
    rng = np.random.default_rng(7)
    v = rng.normal(size=300).astype(np.float16).astype(np.float64)
    u, idx = np.unique(v, return_inverse=True)
    api.save(tmp_path / "b.wl", {"b": Clustered(idx, u, "float32")})
    rec = api.inspect(tmp_path / "b.wl")["records"][0]
    assert rec["encoding"] == "dense" and rec["params"] == {"stored": "float16"} and rec["payload_bytes"] == 600
    back = api.load_arrays(tmp_path / "b.wl")["b"]
    assert back.dtype == np.float32 and np.array_equal(back.astype(np.float64), v)


def test_readers_accept_the_alt_of_earlier_writers_and_nothing_else():
    """Writers before 2026-12-07 gave coded records ``{"alt": N}``; readers take it as it was
    specified (an integer >= 0) and refuse anything else in params."""
    from dataclasses import replace

    from weightless.errors import FieldError
    from weightless.io.clustered import clustered_candidates, smallest_record

    c = _clustered(np.random.default_rng(1), (20, 30), 5, 0.2, "float32")
    rec = smallest_record("w", clustered_candidates("w", c))
    assert rec.params == {}
    want = decode_record(rec).tobytes()
    assert decode_record(replace(rec, params={"alt": 123})).tobytes() == want
    for bad in ({"alt": -1}, {"alt": True}, {"alt": 1.5}, {"alt": 1, "k": 2}):
        with pytest.raises(FieldError):
            decode_record(replace(rec, params=bad))
