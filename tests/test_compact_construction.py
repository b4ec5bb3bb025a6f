"""Tests of the compact construction (sharded Ribbon retrieval) through the Construction protocol
and through the public filter API."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless._compat import HAVE_NUMBA
from weightless.errors import ConstructionError, FormatError, InputError
from weightless.filters import base, compact
from weightless.filters.hashing import derive_seed

CON = compact.COMPACT
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="the compact solver needs numba")


def _keys(n: int, seed: int, universe: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    universe = universe or max(10 * n, 16)
    return rng.choice(universe, size=n, replace=False).astype(np.uint64)


def _solve(keys, values, t, c=None, seed=0, attempts=8):
    m = CON.num_cells(int(keys.shape[0]), c)
    for a in range(attempts):
        s = derive_seed(seed, a)
        sol = CON.solve(keys, values, t, m, s)
        if sol is not None:
            return sol, s
    raise AssertionError("no seed solved")


def test_registered_with_name_and_code():
    assert base.get_construction("compact") is CON
    assert base.get_construction(2) is CON
    assert CON.name == "compact" and CON.code == 2


@needs_numba
@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 500, 1000, 3000, 20000])
@pytest.mark.parametrize("t", [3, 8, 12])
def test_every_key_returns_its_value(n, t):
    keys = _keys(n, n + t)
    values = np.random.default_rng(n).integers(0, min(1 << t, 6), n)
    sol, s = _solve(keys, values, t)
    assert sol.cells.dtype == np.uint16 and sol.aux.dtype == np.uint8
    assert sol.cells.shape[0] == CON.num_cells(n, None)
    assert int(sol.cells.max()) < (1 << t)
    got = CON.lookup(sol.cells, sol.aux, t, s, keys)
    np.testing.assert_array_equal(got, values)
    got_np = CON.lookup(sol.cells, sol.aux, t, s, keys, use_numba=False)
    np.testing.assert_array_equal(got_np, values)


@needs_numba
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3000),
    t=st.integers(1, 16),
    seed=st.integers(0, 2**64 - 1),
    c=st.sampled_from([None, 1.05, 1.25, 2.0]),
)
def test_roundtrip_property(n, t, seed, c):
    keys = _keys(n, seed % 1000)
    values = np.random.default_rng(seed % 997).integers(0, 1 << t, n)
    sol, s = _solve(keys, values, t, c=c, seed=seed, attempts=16)
    np.testing.assert_array_equal(CON.lookup(sol.cells, sol.aux, t, s, keys), values)


@needs_numba
def test_deterministic_for_a_seed():
    keys = _keys(5000, 1)
    values = np.random.default_rng(1).integers(0, 4, 5000)
    m = CON.num_cells(5000, None)
    a = CON.solve(keys, values, 8, m, 1234)
    b = CON.solve(keys.copy(), values.copy(), 8, m, 1234)
    assert a is not None and b is not None
    assert a.cells.tobytes() == b.cells.tobytes() and a.aux.tobytes() == b.aux.tobytes()
    c = CON.solve(keys, values, 8, m, 1235)
    assert c is not None and c.cells.tobytes() != a.cells.tobytes()


@needs_numba
def test_false_positive_rate_within_4_sigma():
    n, t, k = 20000, 8, 4
    keys = _keys(n, 7, universe=400000)
    values = np.random.default_rng(7).integers(0, k, n)
    sol, s = _solve(keys, values, t)
    mask = np.ones(400000, bool)
    mask[keys.astype(np.int64)] = False
    others = np.flatnonzero(mask).astype(np.uint64)
    raw = CON.lookup(sol.cells, sol.aux, t, s, others)
    p = k / 2**t
    sigma = np.sqrt(p * (1 - p) / others.shape[0])
    assert abs((raw < k).mean() - p) < 4 * sigma
    # raw words of non-keys are uniform over [0, 2^t): chi-square over the 256 bins
    counts = np.bincount(raw, minlength=1 << t)
    exp = others.shape[0] / (1 << t)
    chi2 = float(((counts - exp) ** 2 / exp).sum())
    assert chi2 < 255 + 6 * np.sqrt(2 * 255)


@needs_numba
@pytest.mark.parametrize("t", [5, 8, 11])
def test_decode_into_matches_lookup_numba_and_numpy(t):
    n, size, k = 3000, 50000, 5
    keys = _keys(n, 3, universe=size)
    values = np.random.default_rng(3).integers(0, k, n)
    sol, s = _solve(keys, values, t)
    codebook = np.linspace(-1, 1, k).astype(np.float32)
    start = 1000
    raw = CON.lookup(sol.cells, sol.aux, t, s, np.arange(start, size, dtype=np.uint64))
    expect = np.where(raw < k, codebook[np.minimum(raw, k - 1)], 0).astype(np.float32)
    for use in (True, False):
        out = np.full(size - start, 9.0, np.float32)
        CON.decode_into(sol.cells, sol.aux, t, k, s, start, codebook, out, use_numba=use)
        np.testing.assert_array_equal(out, expect)
    full = np.zeros(size, np.float32)
    CON.decode_into(sol.cells, sol.aux, t, k, s, 0, codebook, full)
    np.testing.assert_array_equal(full[keys.astype(np.int64)], codebook[values])


@needs_numba
@pytest.mark.parametrize("n", [1000, 3000, 10000, 100000])
def test_size_bounds(n):
    """m*t + aux bits within 5% of n*t (2% from 1e5 keys) at t = 8."""
    t = 8
    keys = _keys(n, 11)
    values = np.random.default_rng(11).integers(0, 4, n)
    sol, s = _solve(keys, values, t)
    bits = sol.cells.shape[0] * t + sol.aux.shape[0] * 8
    bound = 1.02 if n >= 100_000 else 1.05
    assert bits <= bound * n * t
    np.testing.assert_array_equal(CON.lookup(sol.cells, sol.aux, t, s, keys), values)


def test_num_cells_validation():
    assert CON.num_cells(0, None) == 0
    assert CON.num_cells(1000, 1.25) == 1250
    with pytest.raises(InputError):
        CON.num_cells(10, 0.9)
    with pytest.raises(InputError):
        CON.num_cells(-1, None)


@needs_numba
def test_solve_reports_failure_instead_of_hanging():
    keys = _keys(2000, 5)
    values = np.random.default_rng(5).integers(0, 4, 2000)
    assert CON.solve(keys, values, 8, 2000, 0) is None  # no spare cells at all
    dup = np.concatenate([keys[:100], keys[:1]])  # a duplicate key with another value
    vals = np.concatenate([values[:100], [(values[0] + 1) % 4]])
    assert CON.solve(dup, vals, 8, 200, 0) is None


@needs_numba
def test_solve_input_errors():
    keys = _keys(10, 1)
    with pytest.raises(InputError):
        CON.solve(keys, np.zeros(9), 8, 20, 0)
    with pytest.raises(InputError):
        CON.solve(keys, np.full(10, 256), 8, 20, 0)
    with pytest.raises(InputError):
        CON.solve(keys, np.zeros(10), 17, 20, 0)


@needs_numba
def test_malformed_aux_raises_format_errors():
    keys = _keys(5000, 2)
    values = np.random.default_rng(2).integers(0, 4, 5000)
    sol, s = _solve(keys, values, 8)
    q = keys[:10]
    for bad in (sol.aux[:3], sol.aux[:-1], np.concatenate([sol.aux, [0]])):
        with pytest.raises(FormatError):
            CON.lookup(sol.cells, bad, 8, s, q)
    v = sol.aux.copy()
    v[0] = 9
    with pytest.raises(FormatError):
        CON.lookup(sol.cells, v, 8, s, q)
    v = sol.aux.copy()
    v[5] = 3
    with pytest.raises(FormatError):
        CON.lookup(sol.cells, v, 8, s, q)
    with pytest.raises(FormatError):  # shard counts exceed the table
        CON.lookup(sol.cells[:100], sol.aux, 8, s, q)


@needs_numba
def test_empty_table():
    sol = CON.solve(np.zeros(0, np.uint64), np.zeros(0), 8, 0, 0)
    assert sol is not None and sol.cells.shape[0] == 0
    raw = CON.lookup(sol.cells, sol.aux, 8, 0, np.arange(5, dtype=np.uint64))
    assert (raw == 255).all()


@needs_numba
def test_public_filter_both_constructions_roundtrip_bytes():
    filters = pytest.importorskip("weightless.filters")
    from weightless.filters.filter import BloomierFilter

    size, n, k, t = 60000, 3000, 4, 8
    keys = _keys(n, 21, universe=size).astype(np.int64)
    values = np.random.default_rng(21).integers(0, k, n)
    codebook = np.array([-0.5, -0.1, 0.1, 0.5], np.float32)
    sizes = {}
    for name in ("paper", "compact"):
        f = filters.build(keys, values, k=k, t=t, size=size, seed=3, construction=name)
        data = f.to_bytes()
        g = BloomierFilter.from_bytes(data)
        assert g.construction == name
        np.testing.assert_array_equal(g.query(keys), values)
        w = g.reconstruct((size,), codebook)
        np.testing.assert_array_equal(w[keys], codebook[values])
        sizes[name] = len(data)
    assert sizes["compact"] < 0.85 * sizes["paper"]


def test_lookup_without_numba_matches_in_subprocess(tmp_path):
    """WEIGHTLESS_DISABLE_NUMBA=1: lookups and decodes take the numpy path, same words."""
    if not HAVE_NUMBA:
        pytest.skip("needs numba to build the reference table")
    keys = _keys(2000, 4)
    values = np.random.default_rng(4).integers(0, 4, 2000)
    sol, s = _solve(keys, values, 8)
    probe = np.arange(0, 30000, dtype=np.uint64)
    ref = CON.lookup(sol.cells, sol.aux, 8, s, probe)
    np.savez(tmp_path / "t.npz", cells=sol.cells, aux=sol.aux, probe=probe, ref=ref, keys=keys, values=values)
    code = f"""
import numpy as np
from weightless._compat import HAVE_NUMBA
from weightless.errors import ConstructionError
from weightless.filters import compact
assert not HAVE_NUMBA
d = np.load({str(tmp_path / "t.npz")!r})
raw = compact.COMPACT.lookup(d["cells"], d["aux"], 8, {s}, d["probe"])
assert (raw == d["ref"]).all()
out = np.zeros(30000, np.float32)
cb = np.array([1, 2, 3, 4], np.float32)
compact.COMPACT.decode_into(d["cells"], d["aux"], 8, 4, {s}, 0, cb, out)
assert (out == np.where(d["ref"] < 4, cb[np.minimum(d["ref"], 3)], 0)).all()
try:
    compact.COMPACT.solve(d["keys"], d["values"], 8, 2100, 0)
except ConstructionError as e:
    assert "numba" in str(e)
else:
    raise SystemExit("solve without numba should raise")
"""
    env = dict(os.environ, WEIGHTLESS_DISABLE_NUMBA="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_solve_without_numba_raises_clear_error():
    keys = _keys(10, 1)
    with pytest.raises(ConstructionError, match="numba"):
        CON.solve(keys, np.zeros(10), 8, 20, 0, use_numba=False)


@needs_numba
@pytest.mark.parametrize("t", [4, 8, 9, 16])
def test_three_lookup_paths_agree_on_non_keys(t):
    """Row-major numba (few keys), bit-sliced numba (many keys) and numpy give the same words."""
    keys = _keys(4000, 8)
    values = np.random.default_rng(8).integers(0, 2, 4000)
    sol, s = _solve(keys, values, t)
    probe = np.arange(10**6, 10**6 + 9000, dtype=np.uint64)
    sliced = CON.lookup(sol.cells, sol.aux, t, s, probe)
    rowmajor = np.concatenate([CON.lookup(sol.cells, sol.aux, t, s, probe[i : i + 1000]) for i in range(0, 9000, 1000)])
    nump = CON.lookup(sol.cells, sol.aux, t, s, probe, use_numba=False)
    np.testing.assert_array_equal(sliced, rowmajor)
    np.testing.assert_array_equal(sliced, nump)


@needs_numba
def test_public_filter_sharded_compact():
    filters = pytest.importorskip("weightless.filters")
    size, n, k = 200000, 9000, 6
    keys = _keys(n, 31, universe=size).astype(np.int64)
    values = np.random.default_rng(31).integers(0, k, n)
    codebook = np.linspace(0.1, 0.6, k).astype(np.float32)
    f = filters.build(keys, values, k=k, t=8, size=size, seed=5, construction="compact", shards=3, workers=1)
    np.testing.assert_array_equal(f.query(keys), values)
    w = f.reconstruct((size,), codebook)
    np.testing.assert_array_equal(w[keys], codebook[values])
    fp = (np.count_nonzero(w) - n) / (size - n)
    p = k / 256
    assert abs(fp - p) < 4 * np.sqrt(p * (1 - p) / (size - n))
