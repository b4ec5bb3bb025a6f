import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightless.errors import InputError
from weightless.simplify.cluster import INITS, assign_nearest, cluster_weight, kmeans_1d


def _check_nearest(values, codebook, assign):
    d = np.abs(values[:, None].astype(np.float64) - codebook[None, :].astype(np.float64))
    best = d.min(axis=1)
    chosen = d[np.arange(values.size), assign]
    np.testing.assert_allclose(chosen, best, rtol=0, atol=1e-12)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("k", [2, 9, 10, 16])
def test_k_distinct_centroids_and_nearest(init, k):
    rng = np.random.default_rng(k)
    v = np.concatenate([rng.normal(-0.1, 0.03, 500), rng.normal(0.12, 0.02, 400)]).astype(np.float32)
    cb, a = kmeans_1d(v, k, init, seed=3)
    assert cb.dtype == np.float32 and cb.shape == (k,)
    assert np.unique(cb).size == k and np.all(np.diff(cb) > 0)
    assert a.shape == v.shape and a.min() >= 0 and a.max() < k
    _check_nearest(v, cb, a)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1, 1, allow_nan=False, width=32).filter(lambda x: x != 0), min_size=12, max_size=200),
    st.integers(1, 10),
    st.sampled_from(INITS),
)
def test_kmeans_property(vals, k, init):
    v = np.asarray(vals, dtype=np.float32)
    if np.unique(v).size < k:
        with pytest.raises(InputError):
            kmeans_1d(v, k, init)
        return
    cb, a = kmeans_1d(v, k, init, seed=1)
    assert np.unique(cb).size == k
    _check_nearest(v, cb, a)


def test_density_init_is_lloyd_fixed_point_quality():
    rng = np.random.default_rng(0)
    v = rng.laplace(0, 0.05, 5000)
    for init in INITS:
        cb, a = kmeans_1d(v, 8, init, seed=0)
        # a Lloyd fixed point: every centroid is the mean of its members
        for j in range(8):
            if np.any(a == j):
                assert abs(v[a == j].mean() - cb[j]) < 1e-5


def test_clustering_never_turns_zero_into_nonzero():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (50, 40)).astype(np.float32)
    w[rng.random(w.shape) < 0.9] = 0.0
    cl = cluster_weight(w, 9, "density")
    assert cl.indices.dtype == np.int16 and cl.indices.shape == w.shape
    np.testing.assert_array_equal(cl.indices == -1, w == 0)
    rec = cl.weights()
    assert np.all(rec[w == 0] == 0) and np.all(rec[w != 0] != 0)
    assert np.unique(rec[w != 0]).size <= 9


def test_errors():
    with pytest.raises(InputError):
        kmeans_1d(np.array([1.0, 1.0, 2.0]), 3)
    with pytest.raises(InputError):
        kmeans_1d(np.array([1.0, 2.0]), 0)
    with pytest.raises(InputError):
        kmeans_1d(np.array([1.0, 2.0]), 2, init="kmeans++")
    with pytest.raises(InputError):
        kmeans_1d(np.array([1.0, np.nan]), 1)


def test_deterministic():
    v = np.random.default_rng(2).normal(size=1000)
    for init in INITS:
        a = kmeans_1d(v, 7, init, seed=4)
        b = kmeans_1d(v, 7, init, seed=4)
        assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])


def test_assign_nearest_simple():
    assert list(assign_nearest(np.array([-1.0, 0.1, 0.6, 5.0]), np.array([0.0, 1.0]))) == [0, 0, 1, 1]
