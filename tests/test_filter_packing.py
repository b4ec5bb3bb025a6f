from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.filters.packing import pack_cells, packed_size, unpack_cells


@settings(max_examples=60, deadline=None)
@given(t=st.integers(1, 16), m=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1))
def test_pack_roundtrip(t, m, seed):
    cells = np.random.default_rng(seed).integers(0, 1 << t, m).astype(np.uint16)
    data = pack_cells(cells, t)
    assert len(data) == packed_size(m, t) == (m * t + 7) // 8
    assert np.array_equal(unpack_cells(data, m, t), cells)


def test_pack_golden():
    # MSB first: 3-bit cells 5, 3, 7 -> 101 011 111 (0000000) -> 0xAF 0x80
    assert pack_cells(np.array([5, 3, 7]), 3) == b"\xaf\x80"
    assert list(unpack_cells(b"\xaf\x80", 3, 3)) == [5, 3, 7]


def test_pack_large_chunks():
    cells = np.random.default_rng(0).integers(0, 64, (1 << 18) * 2 + 13).astype(np.uint16)
    assert np.array_equal(unpack_cells(pack_cells(cells, 6), cells.shape[0], 6), cells)
