"""Deep Compression baseline: CSR with relative indices (+ filler zeros), plain and Huffman."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.baselines import csr_decode, csr_encode, dc_decode, dc_encode, dense_weights
from weightless.baselines.csr import layer_entries
from weightless.errors import FormatError, InputError

CODECS = [(csr_encode, csr_decode), (dc_encode, dc_decode)]


def make_layer(rng, shape, density, k):
    n = math.prod(shape)
    idx = np.full(n, -1, dtype=np.int16)
    mask = rng.random(n) < density
    idx[mask] = rng.integers(0, k, int(mask.sum()))
    return idx.reshape(shape), rng.standard_normal(k).astype(np.float32)


def roundtrip(enc, dec, idx, cb, **kw):
    data = enc(idx, idx.shape, cb, **kw)
    out, shape, cb2 = dec(data)
    assert shape == idx.shape
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, idx)
    np.testing.assert_array_equal(cb2.view(np.uint32), cb.view(np.uint32))
    return data


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(0, 40),
    cols=st.integers(0, 70),
    density=st.sampled_from([0.0, 0.003, 0.05, 0.3, 0.9, 1.0]),
    k=st.sampled_from([1, 2, 3, 7, 9, 16, 33]),
    index_bits=st.sampled_from([1, 2, 3, 5, 8, "auto"]),
    seed=st.integers(0, 2**16),
)
def test_roundtrip_property(rows, cols, density, k, index_bits, seed):
    idx, cb = make_layer(np.random.default_rng(seed), (rows, cols), density, k)
    for enc, dec in CODECS:
        roundtrip(enc, dec, idx, cb, index_bits=index_bits)


@pytest.mark.parametrize("enc,dec", CODECS)
def test_empty_dense_conv_and_long_gaps(enc, dec):
    rng = np.random.default_rng(1)
    cb = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    roundtrip(enc, dec, np.full((7, 9), -1, dtype=np.int16), cb)           # all zero
    roundtrip(enc, dec, rng.integers(0, 3, (7, 9)).astype(np.int16), cb)   # fully dense
    roundtrip(enc, dec, np.zeros((0, 5), dtype=np.int16), cb)              # no positions
    conv, cbc = make_layer(rng, (50, 20, 5, 5), 0.07, 9)
    roundtrip(enc, dec, conv, cbc, index_bits=8)
    # Gaps far longer than the code range: only two non-zeros in 10_000 positions, 3-bit gaps.
    long = np.full(10_000, -1, dtype=np.int16)
    long[[0, 9_999]] = [2, 1]
    data = roundtrip(enc, dec, long, cb, index_bits=3)
    assert len(data) > 1249 * 2 // 8  # 1249 fillers, each >= 1 bit in each of the two streams


def test_filler_entries_follow_han_et_al():
    flat = np.full(40, -1, dtype=np.int64)
    flat[[1, 4, 20, 39]] = [0, 1, 2, 0]
    ent = layer_entries(flat, (40,), 3, 3)  # 3-bit gaps: codes 0..7 (differences 1..8)
    # gaps 1, 2, 15 (-> filler after 7 zeros, then 7), 18 (-> 2 fillers, then 2)
    assert ent.gaps.tolist() == [1, 2, 7, 7, 7, 7, 2]
    assert ent.values.tolist() == [0, 1, 3, 2, 3, 3, 0]
    assert ent.has_filler and ent.value_alphabet == 4


def test_plain_csr_field_widths():
    # 5-bit gaps, k = 9 and no filler -> 4-bit values: header + ceil(E*5/8) + ceil(E*4/8).
    idx = np.full((10, 10), -1, dtype=np.int16)
    idx.flat[::3] = 4
    cb = np.arange(9, dtype=np.float32)
    data = csr_encode(idx, idx.shape, cb, index_bits=5)
    e = 34
    header = 4 + 3 + 1 + 1 + 1 + 1 + 1 + 4 * 9
    assert len(data) == header + math.ceil(e * 5 / 8) + math.ceil(e * 4 / 8)


def test_huffman_beats_plain_and_nears_bound():
    rng = np.random.default_rng(3)
    idx, cb = make_layer(rng, (784, 300), 0.05, 9)
    plain = csr_encode(idx, idx.shape, cb, index_bits=5)
    huff = dc_encode(idx, idx.shape, cb, index_bits=5)
    auto = dc_encode(idx, idx.shape, cb, index_bits="auto")
    n, p = (idx >= 0).sum(), (idx >= 0).mean()
    c = np.bincount(idx[idx >= 0], minlength=9) / n
    bound = (idx.size * -(p * np.log2(p) + (1 - p) * np.log2(1 - p)) - n * (c * np.log2(c)).sum()) / 8
    assert len(huff) < len(plain)
    assert bound < len(auto) <= len(huff) < 1.15 * bound


def test_dense_weights():
    idx = np.array([[-1, 0], [1, -1]], dtype=np.int16)
    w = dense_weights(idx, np.array([2.0, -3.0], dtype=np.float32))
    np.testing.assert_array_equal(w, [[0, 2], [-3, 0]])


@pytest.mark.parametrize("enc", [csr_encode, dc_encode])
def test_bad_inputs(enc):
    cb = np.ones(3, dtype=np.float32)
    with pytest.raises(InputError):
        enc(np.array([0, 3]), (2,), cb)             # index >= k
    with pytest.raises(InputError):
        enc(np.array([0, -2]), (2,), cb)            # below -1
    with pytest.raises(InputError):
        enc(np.array([0, 1]), (3,), cb)             # shape mismatch
    with pytest.raises(InputError):
        enc(np.array([0, 1]), (2,), cb, k=4)        # k disagrees with codebook
    with pytest.raises(InputError):
        enc(np.array([0, 1]), (2,), cb, index_bits=0)
    with pytest.raises(InputError):
        enc(np.array([0.0, 1.0]), (2,), cb)         # not integers


@pytest.mark.parametrize("enc,dec", CODECS)
def test_truncation_and_corruption_raise_formaterror(enc, dec):
    rng = np.random.default_rng(5)
    idx, cb = make_layer(rng, (30, 20), 0.1, 5)
    data = enc(idx, idx.shape, cb, index_bits=3)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            dec(data[:cut])
    with pytest.raises(FormatError):
        dec(data + b"\x00")
    for _ in range(300):  # random byte flips: FormatError or some valid layer, nothing else
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            out, shape, _ = dec(bytes(bad))
        except FormatError:
            continue
        assert out.size == math.prod(shape)


def test_wrong_magic_and_giant_header():
    cb = np.ones(2, dtype=np.float32)
    data = csr_encode(np.array([0, -1, 1]), (3,), cb)
    with pytest.raises(FormatError):
        dc_decode(data)
    with pytest.raises(FormatError):
        csr_decode(b"WCSR\x01\x05\x00\x02\xff\xff\xff\xff\x0f\xff\xff\xff\xff\x0f\x01\x00")
    with pytest.raises(FormatError):  # dims fit, but more positions than the cap
        csr_decode(data, max_positions=2)


def test_golden_bytes():
    idx = np.array([[-1, 1, -1, -1], [-1, -1, -1, -1], [-1, -1, 0, 2]], dtype=np.int16)
    cb = np.array([1.0, -0.5, 0.25], dtype=np.float32)
    assert csr_encode(idx, idx.shape, cb, index_bits=2).hex() == GOLDEN_CSR
    assert dc_encode(idx, idx.shape, cb, index_bits=2).hex() == GOLDEN_DC


# Layout: 3 entries + 2 fillers (gap 8 with 2-bit codes); see test_filler_entries_follow_han_et_al.
GOLDEN_CSR = "5743535201020102030403050000803f000000bf0000803e7c007c80"
GOLDEN_DC = "5744434801020102030403050000803f000000bf0000803e04e2704004e20001ca7c80"
