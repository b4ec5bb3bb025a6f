"""Every input error and every corruption of the bytes raises the right exception."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.errors import (
    BadMagicError,
    ChecksumError,
    ConstructionError,
    FieldError,
    FormatError,
    InputError,
    TruncatedError,
    UnsupportedVersionError,
)
from weightless.filters import BloomierFilter, build
from weightless.filters.packing import pack_cells, unpack_cells

KEYS = np.array([1, 5, 9, 20], np.int64)
VALS = np.array([0, 1, 2, 3], np.int64)


def _ok(**kw):
    args = dict(k=4, t=6, size=100)
    args.update(kw)
    return args


@pytest.mark.parametrize(
    "keys,vals,kw,match",
    [
        (np.array([1, 5, 5, 20]), VALS, _ok(), "distinct"),
        (np.array([1, 5, 9, 100]), VALS, _ok(), r"\[0, size\)"),
        (np.array([-1, 5, 9, 20]), VALS, _ok(), r"\[0, size\)"),
        (KEYS, np.array([0, 1, 2, 4]), _ok(), r"\[0, k\)"),
        (KEYS, np.array([0, -1, 2, 3]), _ok(), r"\[0, k\)"),
        (KEYS, VALS, _ok(t=2), "ceil"),
        (KEYS, VALS, _ok(k=5, t=3), "ceil"),
        (KEYS, VALS, _ok(t=17), "t"),
        (KEYS, VALS, _ok(k=0), "k"),
        (KEYS.astype(np.float64), VALS, _ok(), "integer"),
        (KEYS, VALS.astype(np.float32), _ok(), "integer"),
        (KEYS, VALS[:3], _ok(), "same length"),
        (KEYS.reshape(2, 2), VALS, _ok(), "1-D"),
        (KEYS, VALS, _ok(size=0), "size"),
        (KEYS, VALS, _ok(shards=0), "shards"),
        (KEYS, VALS, _ok(seed=-1), "seed"),
        (KEYS, VALS, _ok(construction="nope"), "unknown"),
        (KEYS, VALS, _ok(c=0.9), "c"),
    ],
)
def test_input_errors(keys, vals, kw, match):
    with pytest.raises(InputError, match=match):
        build(keys, vals, **kw)


@pytest.mark.parametrize("use_numba", [True, False])
def test_duplicates_found_on_both_paths(use_numba):
    keys = np.arange(0, 3000, 3)
    keys[700] = keys[100]
    with pytest.raises(InputError, match=f"position {keys[100]}"):
        build(keys, np.zeros(1000, np.int64), k=2, t=3, size=3000, use_numba=use_numba)
    big = np.array([5, 10**12, 5])
    with pytest.raises(InputError, match="distinct"):
        build(big, np.zeros(3, np.int64), k=2, t=3, size=10**13, use_numba=use_numba)


def test_construction_error_after_max_attempts():
    # c barely above 1 cannot be peeled at this n
    rng = np.random.default_rng(0)
    keys = rng.choice(10**6, 5000, replace=False)
    with pytest.raises(ConstructionError, match="3 seeds"):
        build(keys, rng.integers(0, 4, 5000), k=4, t=6, size=10**6, c=1.01, max_attempts=3)


def test_query_and_reconstruct_errors():
    f = build(KEYS, VALS, k=4, t=6, size=100)
    with pytest.raises(InputError):
        f.query([100])
    with pytest.raises(InputError):
        f.query([1.5])
    with pytest.raises(InputError):
        f.reconstruct((10, 11), np.zeros(4))
    with pytest.raises(InputError):
        f.reconstruct((10, 10), np.zeros(3))
    with pytest.raises(InputError):
        f.reconstruct((10, 10), np.zeros(4), out=np.zeros((10, 10), np.float64))
    with pytest.raises(InputError):
        f.reconstruct_indices((99,))


def _filter():
    rng = np.random.default_rng(3)
    keys = rng.choice(5000, 300, replace=False)
    return build(keys, rng.integers(0, 4, 300), k=4, t=6, size=5000, shards=2, workers=1)


def test_format_errors():
    data = _filter().to_bytes()
    with pytest.raises(BadMagicError):
        BloomierFilter.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(UnsupportedVersionError):
        BloomierFilter.from_bytes(data[:4] + b"\x02" + data[5:])
    for cut in (0, 10, 43, 44, 60, len(data) - 1):
        with pytest.raises(TruncatedError):
            BloomierFilter.from_bytes(data[:cut])
    with pytest.raises(FieldError):
        BloomierFilter.from_bytes(data + b"\x00")
    for where in (-1, 35, 55):  # a cell, the header's seed, a shard's seed
        flipped = bytearray(data)
        flipped[where] ^= 0x10
        with pytest.raises(ChecksumError):
            BloomierFilter.from_bytes(bytes(flipped))
    # a huge declared shard count or cell count is rejected before any allocation
    huge = bytearray(data)
    struct.pack_into("<I", huge, 12, 2**31)
    with pytest.raises(FieldError):
        BloomierFilter.from_bytes(bytes(huge))
    huge = bytearray(data)
    struct.pack_into("<I", huge, 44 + 4, 2**32 - 1)  # m of shard 0
    with pytest.raises(FormatError):
        BloomierFilter.from_bytes(bytes(huge))
    with pytest.raises(FormatError):
        BloomierFilter.from_bytes("not bytes")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data):
    try:
        BloomierFilter.from_bytes(data)
    except FormatError:
        pass


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, 300), val=st.integers(0, 255))
def test_fuzz_single_byte_changes(pos, val):
    data = bytearray(_BYTES)
    pos = pos % len(data)
    data[pos] = val
    if bytes(data) == _BYTES:
        return
    with pytest.raises(FormatError):
        BloomierFilter.from_bytes(bytes(data))


_BYTES = _filter().to_bytes()


def test_from_parts_validation():
    f = _filter()
    params = f.params()
    cells = [s.cells for s in f.shards]
    aux = [s.aux for s in f.shards]
    assert BloomierFilter.from_parts(params, cells, aux) == f
    with pytest.raises(FieldError):
        BloomierFilter.from_parts(params, cells[:1], aux)
    with pytest.raises(FieldError):
        BloomierFilter.from_parts(params, [cells[0][:-1], cells[1]], aux)
    bad = [cells[0].copy(), cells[1]]
    bad[0][0] = 64
    with pytest.raises(FieldError):
        BloomierFilter.from_parts(params, bad, aux)
    for key, val in [("k", 0), ("t", 40), ("n", -1), ("construction", "nope"), ("size", "x")]:
        p = dict(params)
        p[key] = val
        with pytest.raises(FieldError):
            BloomierFilter.from_parts(p, cells, aux)
    p = dict(params)
    p["shards"] = [dict(params["shards"][0], n=params["shards"][0]["n"] + 1), params["shards"][1]]
    with pytest.raises(FieldError):
        BloomierFilter.from_parts(p, cells, aux)
    with pytest.raises(FieldError):
        BloomierFilter.from_parts("x", cells, aux)  # type: ignore[arg-type]


def test_params_are_json():
    import json

    f = _filter()
    p = json.loads(json.dumps(f.params()))
    g = BloomierFilter.from_parts(p, [s.cells for s in f.shards], [s.aux for s in f.shards])
    assert g.to_bytes() == f.to_bytes()


def test_packing_errors():
    with pytest.raises(InputError):
        pack_cells(np.array([8]), 3)
    with pytest.raises(TruncatedError):
        unpack_cells(b"\x00", 3, 6)
    with pytest.raises(FieldError):
        unpack_cells(b"\x00\x00\x00\x00", 3, 6)
    with pytest.raises(FieldError):
        unpack_cells(b"\x00\x00\x01", 3, 7)  # 21 bits used, padding bits set
