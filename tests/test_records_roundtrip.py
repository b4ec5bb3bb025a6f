"""Records: every tensor back bit for bit, float16 rounding, filter layers, corrupt records."""

from dataclasses import replace

import numpy as np
import pytest

from weightless.errors import FieldError, FormatError, InputError
from weightless.filters import build
from weightless.io.records import decode_filter_of, decode_record, dense_record, filter_record, filter_summary


def _layer(shape=(40, 50), k=7, t=6, density=0.1, seed=1):
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    keys = np.sort(rng.choice(size, int(density * size), replace=False)).astype(np.int64)
    values = rng.integers(0, k, keys.size)
    cb = np.sort(rng.standard_normal(k)).astype(np.float32)
    f = build(keys, values, k=k, t=t, size=size, seed=seed)
    return f, cb, shape, keys, values


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"])
def test_dense_round_trip_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 5, 7)) * 50).astype(dtype)
    back = decode_record(dense_record("x", a))
    assert back.dtype == a.dtype and back.shape == a.shape
    assert back.tobytes() == a.tobytes()


def test_dense_f32_special_values_bit_for_bit():
    a = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38], dtype=np.float32)
    assert decode_record(dense_record("x", a)).tobytes() == a.tobytes()


def test_dense_float16_storage_rounds_as_numpy():
    a = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    rec = dense_record("x", a, stored="float16")
    assert len(rec.payload) == 2000 and rec.dtype == "float32"
    back = decode_record(rec)
    assert back.dtype == np.float32
    assert np.array_equal(back, a.astype(np.float16).astype(np.float32))
    assert not np.array_equal(back, a)  # it is lossy


def test_dense_float16_only_for_float32():
    with pytest.raises(InputError):
        dense_record("x", np.zeros(3, np.int32), stored="float16")


def test_bloomier_record_equals_filter_reconstruct():
    f, cb, shape, keys, values = _layer()
    rec = filter_record("w", f, cb, shape)
    back = decode_record(rec)
    assert back.dtype == np.float32 and back.shape == shape
    assert back.tobytes() == f.reconstruct(shape, cb).tobytes()
    assert np.array_equal(back.reshape(-1)[keys], cb[values])  # every true key decodes exactly
    f2, cb2 = decode_filter_of(rec)
    assert f2 == f and np.array_equal(cb2, cb)


def test_bloomier_raw_and_entropy_coded_decode_the_same():
    f, cb, shape, *_ = _layer(k=3, t=8)
    ra, rb = filter_record("w", f, cb, shape, entropy=True), filter_record("w", f, cb, shape, entropy=False)
    assert filter_summary(ra)["coding"] == "ans" and filter_summary(rb)["coding"] == "raw"
    assert ra.params == rb.params == {"k": 3}  # the rest lives in the filter's header
    assert len(ra.payload) < len(rb.payload) == 12 + len(f.to_bytes())
    assert decode_record(ra).tobytes() == decode_record(rb).tobytes()


def test_filter_record_rejects_bad_inputs():
    f, cb, shape, *_ = _layer()
    with pytest.raises(InputError):
        filter_record("w", f, cb[:-1], shape)
    with pytest.raises(InputError):
        filter_record("w", f, cb, (shape[0] + 1, shape[1]))
    bad = cb.copy()
    bad[0] = np.nan
    with pytest.raises(InputError):
        filter_record("w", f, bad, shape)


def _bloomier():
    f, cb, shape, *_ = _layer()
    return filter_record("w", f, cb, shape)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: replace(r, params={**r.params, "k": 8}), id="k-too-big"),
        pytest.param(lambda r: replace(r, params={**r.params, "k": 6}), id="k-too-small"),
        pytest.param(lambda r: replace(r, params={**r.params, "k": 0}), id="k-zero"),
        pytest.param(lambda r: replace(r, params={**r.params, "k": "7"}), id="k-string"),
        pytest.param(lambda r: replace(r, params={**r.params, "k": True}), id="k-bool"),
        pytest.param(lambda r: replace(r, params={k: v for k, v in r.params.items() if k != "k"}), id="k-missing"),
        pytest.param(lambda r: replace(r, params={**r.params, "t": 9}), id="t-mismatch"),
        pytest.param(lambda r: replace(r, params={**r.params, "n": 1}), id="n-mismatch"),
        pytest.param(lambda r: replace(r, params={**r.params, "m": 1}), id="m-mismatch"),
        pytest.param(lambda r: replace(r, params={**r.params, "seed": 12345}), id="seed-mismatch"),
        pytest.param(lambda r: replace(r, params={**r.params, "construction": "compact"}), id="construction"),
        pytest.param(lambda r: replace(r, payload=np.float32(np.nan).tobytes() + r.payload[4:]), id="codebook-nan"),
        pytest.param(lambda r: replace(r, payload=np.float32(np.inf).tobytes() + r.payload[4:]), id="codebook-inf"),
        pytest.param(lambda r: replace(r, payload=r.payload[:20]), id="payload-short"),
        pytest.param(lambda r: replace(r, payload=r.payload[:28]), id="codebook-only"),
        pytest.param(lambda r: replace(r, payload=r.payload[:-1]), id="truncated-filter"),
        pytest.param(lambda r: replace(r, payload=r.payload + b"\0"), id="trailing-byte"),
        pytest.param(lambda r: replace(r, payload=r.payload[:28] + b"XXXX" + r.payload[32:]), id="filter-magic"),
        pytest.param(lambda r: replace(r, shape=(50, 40 + 1)), id="shape"),
        pytest.param(lambda r: replace(r, dtype="int32"), id="dtype"),
        pytest.param(lambda r: replace(r, encoding="bloomier2"), id="encoding"),
    ],
)
def test_corrupt_bloomier_record_raises_format_error(mutate):
    rec = mutate(_bloomier())
    with pytest.raises(FormatError):
        decode_record(rec)


def test_codebook_and_params_errors_are_field_errors():
    rec = _bloomier()
    with pytest.raises(FieldError, match="k"):
        decode_record(replace(rec, params={**rec.params, "k": 8}))
    with pytest.raises(FieldError, match="non-finite"):
        decode_record(replace(rec, payload=np.float32(np.nan).tobytes() + rec.payload[4:]))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: replace(r, payload=r.payload[:-1]), id="short"),
        pytest.param(lambda r: replace(r, payload=r.payload + b"\0\0\0\0"), id="long"),
        pytest.param(lambda r: replace(r, params={}), id="no-stored"),
        pytest.param(lambda r: replace(r, params={"stored": "complex64"}), id="bad-stored"),
        pytest.param(lambda r: replace(r, params={"stored": 4}), id="stored-int"),
        pytest.param(lambda r: replace(r, dtype="bfloat16"), id="bfloat16"),
        pytest.param(lambda r: replace(r, shape=(13,)), id="shape"),
    ],
)
def test_corrupt_dense_record_raises_format_error(mutate):
    rec = dense_record("b", np.arange(12, dtype=np.float32))
    with pytest.raises(FormatError):
        decode_record(mutate(rec))
