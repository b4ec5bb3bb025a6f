"""Entropy coding of filter tables (constriction ANS) and the canonical Huffman coder."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.entropy import cells_kind, decode_cells, empirical_entropy_bits, encode_cells
from weightless.entropy import huffman
from weightless.entropy._bits import Reader, pack_fixed, unpack_fixed
from weightless.errors import FormatError, InputError
from weightless.filters.packing import pack_cells

GOLDEN_FLAGS_RAW = "9ee1a0350917987128c1b79fb7dd92236b8806914fe160030e4c97f589f09909"  # SHA-256


def paper_like(rng, m, t, zero_frac):
    cells = rng.integers(0, 1 << t, m).astype(np.uint16)
    cells[rng.random(m) < zero_frac] = 0
    return cells


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 3000),
    t=st.integers(1, 16),
    zero_frac=st.sampled_from([0.0, 0.2, 0.5, 0.99, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_roundtrip_property(m, t, zero_frac, seed):
    cells = paper_like(np.random.default_rng(seed), m, t, zero_frac)
    data = encode_cells(cells, t)
    out = decode_cells(data, m, t)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, cells)
    assert len(data) <= 1 + (m * t + 7) // 8  # never worse than raw + tag


def test_kinds_and_near_entropy():
    rng = np.random.default_rng(0)
    big = paper_like(rng, 200_000, 8, 0.2)
    data = encode_cells(big, 8)
    assert cells_kind(data) == "flags+raw"  # within 0.5% of zero+uniform, and fast to decode
    bound = empirical_entropy_bits(big, 8) / 8
    assert bound <= len(data) < 1.01 * bound
    slow = encode_cells(big, 8, fast=False)
    assert cells_kind(slow) == "zero+uniform"
    assert len(slow) <= len(data) <= 1.005 * len(slow)
    np.testing.assert_array_equal(decode_cells(slow, big.size, 8), big)
    np.testing.assert_array_equal(decode_cells(data, big.size, 8), big)
    uniform = rng.integers(0, 256, 5000).astype(np.uint16)  # nothing to gain: raw fallback
    assert cells_kind(encode_cells(uniform, 8)) == "raw"
    skewed = np.minimum(rng.geometric(0.3, 20_000) - 1, 15).astype(np.uint16)
    data = encode_cells(skewed, 4)
    assert cells_kind(data) == "histogram"
    np.testing.assert_array_equal(decode_cells(data, skewed.size, 4), skewed)
    assert encode_cells(np.zeros(10**6, dtype=np.uint16), 8) == b"\x12\xc0\x84\x3d"  # 1e6 zeros


def test_deterministic_and_golden():
    cells = np.array([0, 5, 0, 7, 1, 0, 0, 3], dtype=np.uint16)
    a = encode_cells(cells, 3)
    assert a == encode_cells(cells.copy(), 3)
    assert a.hex() == "11147203"  # raw: tag 0x11, then 000 101 000 111 001 000 000 011
    sparse = np.zeros(40, dtype=np.uint16)
    sparse[[3, 17, 30]] = [9, 2, 15]
    b = encode_cells(sparse, 4)
    # zero+uniform: tag 0x12, varint 37 zeros, then two little-endian ANS words.
    assert b.hex() == "12257d627e9d05040000"
    np.testing.assert_array_equal(decode_cells(b, 40, 4), sparse)


def test_golden_flags_raw():
    """The flags+raw layout (kind 0x14): tag, varint zeros, varint ANS length, ANS words of the
    nonzero flags (8 per symbol), then the nonzero cells packed at t bits."""
    rng = np.random.default_rng(3)
    cells = paper_like(rng, 4000, 6, 0.2)
    data = encode_cells(cells, 6)
    assert cells_kind(data) == "flags+raw"
    z = int(np.count_nonzero(cells == 0))
    assert data[0] == 0x14
    nz = cells[cells != 0]
    tail = (nz.size * 6 + 7) // 8
    assert data[-tail:] == pack_cells(nz, 6)  # nonzero cells stored raw
    assert hashlib.sha256(data).hexdigest() == GOLDEN_FLAGS_RAW, z
    np.testing.assert_array_equal(decode_cells(data, 4000, 6), cells)


def test_flags_raw_with_clustered_zeros():
    """Zeros in runs (as at the ends of compact shards) code below m H(z/m); they still load."""
    cells = np.random.default_rng(5).integers(1, 256, 20_000).astype(np.uint16)
    cells[1000:1400] = 0
    cells[7000:7003] = 0
    for fast in (True, False):
        data = encode_cells(cells, 8, fast=fast)
        np.testing.assert_array_equal(decode_cells(data, cells.size, 8), cells)


@pytest.mark.parametrize("cut", [1, 5, 40, 300])
def test_flags_raw_truncated_or_wrong_m(cut):
    cells = paper_like(np.random.default_rng(9), 5000, 6, 0.25)
    data = encode_cells(cells, 6)
    assert cells_kind(data) == "flags+raw"
    with pytest.raises(FormatError):
        decode_cells(data[:-cut], 5000, 6)
    with pytest.raises(FormatError):
        decode_cells(data, 5000 + cut, 6)
    with pytest.raises(FormatError):
        decode_cells(data, 5000 - cut, 6)


def test_bad_inputs():
    with pytest.raises(InputError):
        encode_cells(np.array([8], dtype=np.uint16), 3)
    with pytest.raises(InputError):
        encode_cells(np.array([1], dtype=np.uint16), 0)
    with pytest.raises(InputError):
        encode_cells(np.zeros((2, 2), dtype=np.uint16), 3)
    with pytest.raises(InputError):
        decode_cells(b"\x11", -1, 3)


@pytest.mark.parametrize("zero_frac,t", [(0.2, 8), (0.0, 8), (0.3, 4)])
def test_truncation_and_corruption(zero_frac, t):
    rng = np.random.default_rng(7)
    cells = paper_like(rng, 400, t, zero_frac)
    if t == 4:
        cells = np.minimum(rng.geometric(0.4, 400) - 1, 15).astype(np.uint16)
    data = encode_cells(cells, t)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            decode_cells(data[:cut], cells.size, t)
    with pytest.raises(FormatError):
        decode_cells(data + b"\x00\x00\x00\x00", cells.size, t)
    with pytest.raises(FormatError):  # wrong m
        decode_cells(data, cells.size + 1000, t)
    for _ in range(200):
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            out = decode_cells(bytes(bad), cells.size, t)
        except FormatError:
            continue
        assert out.size == cells.size


def test_size_caps_before_allocation():
    with pytest.raises(FormatError):
        decode_cells(b"\x12\x00", 10**15, 8)  # far above the default cap
    with pytest.raises(FormatError):  # under the cap but the payload cannot hold m cells
        decode_cells(b"\x12\x00" + b"\x01\x00\x00\x00", 10**7, 8)
    with pytest.raises(FormatError):
        decode_cells(b"\x21", 3, 8)  # unknown version
    with pytest.raises(FormatError):
        decode_cells(b"\x14", 3, 8)  # unknown kind


@settings(max_examples=40, deadline=None)
@given(
    alphabet=st.integers(1, 300),
    n=st.integers(0, 2000),
    concentration=st.sampled_from([0.05, 0.5, 5.0]),
    seed=st.integers(0, 2**16),
)
def test_huffman_roundtrip(alphabet, n, concentration, seed):
    rng = np.random.default_rng(seed)
    sym = rng.choice(alphabet, size=n, p=rng.dirichlet(np.full(alphabet, concentration)))
    counts = np.bincount(sym, minlength=alphabet)
    lengths = huffman.code_lengths(counts)
    data = huffman.encode(sym, lengths)
    assert len(data) == (huffman.encoded_bits(counts, lengths) + 7) // 8
    np.testing.assert_array_equal(huffman.decode(data, lengths, n, "test"), sym)
    table = huffman.write_lengths(lengths)
    r = Reader(table, "t")
    np.testing.assert_array_equal(huffman.read_lengths(r, alphabet, "t"), lengths)
    assert r.remaining == 0


def test_huffman_length_limit_and_optimality():
    counts = np.array([2**i for i in range(40)], dtype=np.int64)  # Fibonacci-like skew
    lengths = huffman.code_lengths(counts)
    assert lengths.max() <= huffman.MAX_LEN
    assert np.sum(2.0 ** -lengths.astype(float)) <= 1.0
    assert huffman.code_lengths(np.array([5, 5, 5, 5])).tolist() == [2, 2, 2, 2]
    assert huffman.code_lengths(np.array([1, 1, 2])).tolist() == [2, 2, 1]


@pytest.mark.parametrize("width", [1, 3, 5, 8, 13, 16])
def test_pack_fixed(width):
    rng = np.random.default_rng(width)
    v = rng.integers(0, 1 << width, 1001)
    data = pack_fixed(v, width)
    np.testing.assert_array_equal(unpack_fixed(data, v.size, width, "t"), v)
    with pytest.raises(FormatError):
        unpack_fixed(data[:-1], v.size, width, "t")


def test_filter_record_old_and_new_kinds_load():
    """A filter written with the ANS kinds (before flags+raw existed) and with the default
    flags+raw both decode to the same filter; the new one is within 0.5% of the old size."""
    from weightless.entropy import decode_filter, encode_filter
    from weightless.entropy.filter_record import MAGIC
    from weightless.filters import build

    rng = np.random.default_rng(2)
    keys = rng.choice(400_000, 20_000, replace=False)
    f = build(keys, rng.integers(0, 4, 20_000), k=4, t=6, size=400_000, seed=3, shards=2, workers=1)
    old = encode_filter(f, fast=False)
    new = encode_filter(f)
    assert old[:4] == new[:4] == MAGIC and old != new
    assert len(old) <= len(new) <= 1.005 * len(old)
    assert decode_filter(old) == f and decode_filter(new) == f


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_flags_raw_corruption_gives_format_error(data):
    """Any flipped byte of a flags+raw record decodes to something or raises FormatError."""
    cells = paper_like(np.random.default_rng(9), 5000, 6, 0.25)
    rec = bytearray(encode_cells(cells, 6))
    assert rec[0] == 0x14
    i = data.draw(st.integers(0, len(rec) - 1))
    rec[i] ^= data.draw(st.integers(1, 255))
    try:
        out = decode_cells(bytes(rec), 5000, 6)
    except FormatError:
        return
    assert out.shape == (5000,) and out.dtype == np.uint16 and int(out.max()) < 64


def test_flags_raw_without_numba_in_subprocess():
    """The numpy path (WEIGHTLESS_DISABLE_NUMBA=1) writes and reads the same flags+raw bytes."""
    import os
    import subprocess
    import sys

    cells = paper_like(np.random.default_rng(12), 5000, 7, 0.25)
    data = encode_cells(cells, 7)
    assert cells_kind(data) == "flags+raw"
    code = (
        "import sys, numpy as np\n"
        "from weightless._compat import HAVE_NUMBA\n"
        "from weightless.entropy import encode_cells, decode_cells\n"
        "assert not HAVE_NUMBA\n"
        "cells = np.frombuffer(bytes.fromhex(sys.argv[1]), np.uint16)\n"
        "data = encode_cells(cells, 7)\n"
        "assert (decode_cells(bytes.fromhex(sys.argv[2]), cells.size, 7) == cells).all()\n"
        "print(data.hex())\n"
    )
    env = dict(os.environ, WEIGHTLESS_DISABLE_NUMBA="1")
    res = subprocess.run([sys.executable, "-c", code, cells.astype("<u2").tobytes().hex(), data.hex()],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == data.hex()
