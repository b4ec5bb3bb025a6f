"""Size accounting of a layer, and the entropy-coded filter record it measures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightless.accounting import (
    information_bound_bytes,
    layer_sizes,
    weightless_layer_bytes,
    weightless_layer_decode,
)
from weightless.entropy.filter_record import decode_filter, encode_filter
from weightless.errors import FormatError, InputError
from weightless.filters import build


def make_layer(seed, shape, density, k):
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    idx = np.full(n, -1, dtype=np.int16)
    mask = rng.random(n) < density
    idx[mask] = rng.integers(0, k, int(mask.sum()))
    return idx.reshape(shape), rng.standard_normal(k).astype(np.float32)


@pytest.mark.parametrize("shape,density,k,t,conv", [
    ((300, 100), 0.05, 9, 9, False),
    ((50, 20, 5, 5), 0.07, 9, 8, True),
    ((40, 30), 0.2, 1, 2, False),
])
def test_layer_sizes(shape, density, k, t, conv):
    idx, cb = make_layer(1, shape, density, k)
    r = layer_sizes(idx, cb, k=k, t=t, conv=conv)
    b = r["bytes"]
    assert b["dense"] == 4 * math.prod(shape)
    assert r["csr_index_bits"] == (8 if conv else 5)
    assert r["nonzeros"] == int((idx >= 0).sum())
    assert b["csr_huffman"] < b["csr"] < b["dense"]
    assert b["csr_huffman_auto"] <= b["csr_huffman"]
    assert b["weightless_entropy"] <= b["weightless_raw"] < b["dense"]
    if k > 1:
        assert b["weightless_entropy"] < b["weightless_raw"]
    for name, size in b.items():
        assert r["factor"][name] == pytest.approx(b["dense"] / size)
    cells = r["cells"][0]
    # paper tables: m = 1.25 n, so ~20% of cells are never assigned, the rest uniform on t bits
    assert cells["zero_fraction"] == pytest.approx(0.2 + 0.8 / 2**t, abs=0.06)
    # Weightless raw = layer header + codebook + 64-byte filter header + ceil(m t / 8)
    head = 1 + len(shape) + sum(d >= 128 for d in shape) + 1 + 4 * k
    assert b["weightless_raw"] == head + 64 + (cells["m"] * t + 7) // 8
    assert r["information_bound_bytes"] == pytest.approx(information_bound_bytes(idx, k))


def test_layer_sizes_rejects_bad_input():
    idx, cb = make_layer(2, (10, 10), 0.1, 4)
    with pytest.raises(InputError):
        layer_sizes(idx, cb, k=5, t=4, conv=False)
    with pytest.raises(InputError):
        layer_sizes(idx, cb, k=4, t=2, conv=False)  # t must exceed log2 k


def test_information_bound():
    idx = np.array([0, -1, 1, -1], dtype=np.int16)  # p = 1/2, two equally likely values
    assert information_bound_bytes(idx, 2) == pytest.approx((4 * 1 + 2 * 1) / 8)


@pytest.mark.parametrize("shards", [1, 3])
def test_filter_record_roundtrip_and_corruption(shards):
    idx, cb = make_layer(3, (200, 60), 0.05, 6)
    flat = idx.reshape(-1)
    keys = np.flatnonzero(flat >= 0)
    f = build(keys, flat[keys], k=6, t=7, size=flat.size, shards=shards, seed=5)
    rec = encode_filter(f)
    assert decode_filter(rec).to_bytes() == f.to_bytes()
    assert len(rec) < len(f.to_bytes())
    for cut in range(0, len(rec), 7):
        with pytest.raises(FormatError):
            decode_filter(rec[:cut])
    rng = np.random.default_rng(0)
    for _ in range(100):
        bad = bytearray(rec)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            g = decode_filter(bytes(bad))
        except FormatError:
            continue
        assert g.to_bytes() == f.to_bytes()  # only an unused bit could have changed
    layer = weightless_layer_bytes(f, idx.shape, cb, entropy=True)
    g, shape, cb2 = weightless_layer_decode(layer, entropy=True)
    assert shape == idx.shape and np.array_equal(cb2, cb) and g.to_bytes() == f.to_bytes()
    with pytest.raises(FormatError):
        weightless_layer_decode(layer[:-1], entropy=True)
