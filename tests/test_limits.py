"""Decoding limits: the crafted files of issue 14 fail fast with LimitError, before allocating."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import weightless as wl
from weightless.container import Record, container_from_bytes
from weightless.errors import FieldError, FormatError, InputError, LimitError
from weightless.io.limits import DEFAULT_LIMITS, Limits, check_records

from crafted import bloomier_record, packed_zero_cells, params_for, raw_filter, wl_bytes, zero_ans_filter


def _load(tmp_path, data: bytes, **kw):
    p = tmp_path / "x.wl"
    p.write_bytes(data)
    return wl.load_arrays(p, **kw)


def _fails_fast(tmp_path, data: bytes, limit: str, **kw) -> None:
    """LimitError before the declared sizes are allocated: the peak of traced allocations stays
    under 16 MiB (a bound on the work, independent of the machine's speed; no wall clock)."""
    tracemalloc.start()
    try:
        with pytest.raises(LimitError) as ei:
            _load(tmp_path, data, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ei.value.limit == limit and limit in str(ei.value)
    assert peak < 16 << 20, peak


@pytest.mark.parametrize("size", [2**40, 2**32])
def test_empty_filter_with_huge_size(tmp_path, size):
    """300-byte files: 0 keys, size 2**40 (4 TiB) or 2**32 (16 GiB) positions."""
    filt = raw_filter(k=1, t=2, size=size, shards=[(0, 0, 0, b"", b"")])
    data = wl_bytes([bloomier_record("w", (size,), [0.5], filt)])
    assert len(data) < 400
    _fails_fast(tmp_path, data, "max_tensor_elements")


def test_sixteen_shards_of_2_26_cells(tmp_path):
    """A small file declaring 16 shards of 2**26 zero cells (ANS, 2 bytes each)."""
    size = 1 << 28
    filt = zero_ans_filter(k=1, t=2, size=size, ms=[1 << 26] * 16)
    data = wl_bytes([bloomier_record("w", (size,), [0.5], filt)])
    assert len(data) < 1000
    _fails_fast(tmp_path, data, "max_tensor_cells")


def test_ans_at_t1_with_eight_shards(tmp_path):
    size = 1 << 26
    filt = zero_ans_filter(k=1, t=1 + 1, size=size, ms=[1 << 26] * 8, kind=0x13)
    data = wl_bytes([bloomier_record("w", (size,), [0.5], filt)])
    _fails_fast(tmp_path, data, "max_tensor_cells")


def test_tiny_tensor_with_a_huge_table(tmp_path):
    """A 1-element tensor whose (valid) filter has 2**26 cells: rejected by cells per element."""
    filt = zero_ans_filter(k=1, t=2, size=1, ms=[1 << 26])
    params = params_for(k=1, t=2, shards=[(0, 1 << 26, 0)], coding="ans")
    data = wl_bytes([bloomier_record("w", (1,), [0.5], filt, params)])
    assert len(data) < 500
    _fails_fast(tmp_path, data, "max_cells_per_element")
    # with the limits raised the same file is a valid (all-empty) tensor
    out = _load(tmp_path, data, limits=Limits(max_cells_per_element=1 << 27, max_cells_per_byte=1 << 20))
    assert out["w"].tolist() == [0.0]


def test_too_many_shards(tmp_path):
    shards = [(0, 0, i, b"", b"") for i in range(64)]
    filt = raw_filter(k=1, t=2, size=1 << 20, shards=shards)
    data = wl_bytes([bloomier_record("w", (1 << 20,), [0.5], filt)])
    _fails_fast(tmp_path, data, "max_shards", limits=Limits(max_shards=32))


def test_dense_limits_per_tensor_and_per_file(tmp_path):
    p = tmp_path / "d.wl"
    wl.save(p, {"a": np.ones(1000, np.float32), "b": np.ones(1000, np.float64)})
    assert wl.load_arrays(p)["b"].shape == (1000,)
    with pytest.raises(LimitError, match="max_tensor_bytes"):
        wl.load_arrays(p, limits=Limits(max_tensor_bytes=4000))
    with pytest.raises(LimitError, match="max_file_bytes"):
        wl.load_arrays(p, limits=Limits(max_file_bytes=11000))
    with pytest.raises(LimitError, match="max_file_elements"):
        wl.load_arrays(p, limits=Limits(max_file_elements=1999))
    with pytest.raises(LimitError, match="max_file_bytes"):
        wl.inspect(p, limits=Limits(max_file_bytes=11000))
    assert wl.inspect(p, decode=False, limits=Limits(max_file_bytes=0))["num_records"] == 2


def test_file_cells_and_limit_error_is_a_format_error(tmp_path):
    filt = raw_filter(k=1, t=8, size=64, shards=[(0, 40, 0, packed_zero_cells(40, 8), b"")])
    rec = bloomier_record("a", (64,), [1.0], filt)
    rec2 = Record("b", rec.encoding, rec.shape, rec.dtype, rec.params, rec.payload)
    c = container_from_bytes(wl_bytes([rec, rec2]))
    check_records(c.records, Limits(max_file_cells=80))
    with pytest.raises(FormatError, match="max_file_cells"):
        check_records(c.records, Limits(max_file_cells=79))
    with pytest.raises(LimitError, match="max_tensor_cells"):
        check_records(c.records, Limits(max_tensor_cells=39))


def test_limits_are_validated():
    with pytest.raises(InputError):
        Limits(max_shards=-1)
    with pytest.raises(InputError):
        Limits(max_tensor_bytes=1.5)
    with pytest.raises(InputError):
        check_records([], {"max_shards": 3})
    assert DEFAULT_LIMITS == Limits()
    assert Limits.scaled(1 << 20).max_tensor_cells == 1 << 16


def test_defaults_fit_the_largest_writer_output():
    """A layer of VGG-16's FC-0 size at 10% density, sharded as recommended, fits the defaults."""
    from weightless.filters.filter import recommended_shards

    size = 25088 * 4096
    n = size // 10
    m = int(1.25 * n)
    s = recommended_shards(n, 8)
    assert m <= DEFAULT_LIMITS.max_tensor_cells and s <= DEFAULT_LIMITS.max_shards
    assert m <= DEFAULT_LIMITS.max_cells_per_element * size
    assert size * 4 <= DEFAULT_LIMITS.max_tensor_bytes


def test_bad_filter_header_in_limits_check():
    rec = bloomier_record("w", (4,), [1.0], b"XXXX" + bytes(60))
    with pytest.raises(FieldError, match="no filter record"):
        check_records([rec])
