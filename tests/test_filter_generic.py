"""The filter's generic paths: a construction that implements only the core of the protocol.

A test construction ("generic-test", code 250) wraps the paper construction's numpy paths and
takes every hook (``decode_lut``, ``decode_into``, ``prepare``, ``decode_layer``,
``count_below``, ``validate``) from :class:`ConstructionBase`, so the filter must drive it
through ``solve`` / ``lookup`` alone: sharding runs, lookups by shard, the byte format and
``from_parts``.
"""

from __future__ import annotations

import numpy as np
import pytest

from weightless.filters import BloomierFilter, build
from weightless.errors import InputError
from weightless.filters import base
from weightless.filters.paper import PAPER


class _GenericTest(base.ConstructionBase):
    name = "generic-test"
    code = 250

    def num_cells(self, n, c):
        return PAPER.num_cells(n, c)

    def solve(self, keys, values, t, m, seed, *, use_numba=None):
        return PAPER.solve(keys, values, t, m, seed, use_numba=False)

    def lookup(self, cells, aux, t, seed, keys, *, use_numba=None):
        return PAPER.lookup(cells, aux, t, seed, keys, use_numba=False)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    base.register(_GenericTest())
    yield
    base._REGISTRY.pop("generic-test", None)  # leave the registry as other tests expect it


def test_register_rejects_an_incomplete_construction():
    class _Bare:
        name = "bare-test"
        code = 251

        def num_cells(self, n, c):
            return n

    with pytest.raises(InputError, match="ConstructionBase"):
        base.register(_Bare())
    assert "bare-test" not in base.constructions()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shards", [1, 3])
def test_generic_construction_through_the_filter(shards, threads):
    rng = np.random.default_rng(11)
    size = 60_000
    keys = rng.choice(size, 3000, replace=False)
    vals = rng.integers(0, 6, 3000)
    f = build(keys, vals, k=6, t=7, size=size, seed=4, construction="generic-test", shards=shards, workers=1)
    assert f.construction == "generic-test"
    assert np.array_equal(f.query(keys), vals)
    data = f.to_bytes()
    assert data[5] == 250  # construction code in the header
    g = BloomierFilter.from_bytes(data)
    assert g.construction == "generic-test" and g.to_bytes() == data
    cb = np.linspace(1, 2, 6).astype(np.float32)
    w = g.reconstruct((300, 200), cb, threads=threads).reshape(-1)
    idx = g.reconstruct_indices((size,), threads=threads)
    assert np.array_equal(w, np.where(idx >= 0, cb[np.maximum(idx, 0)], 0).astype(np.float32))
    assert np.array_equal(idx[keys], vals)
    assert np.array_equal(g.query(np.arange(size)), idx.astype(np.int64))
    assert g.count_false_positives() == int(np.count_nonzero(idx >= 0)) - 3000
    # the same tables as the paper construction (same solver), so the same decode
    p = build(keys, vals, k=6, t=7, size=size, seed=4, shards=shards, workers=1)
    assert [s.cells.tobytes() for s in p.shards] == [s.cells.tobytes() for s in f.shards]
    assert np.array_equal(p.reconstruct_indices((size,)), idx)
