"""The filter's generic paths (any registered construction other than "paper")."""

from __future__ import annotations

import numpy as np
import pytest

from weightless.filters import BloomierFilter, build, constructions

OTHERS = [name for name in sorted(constructions()) if name != "paper"]


@pytest.mark.skipif(not OTHERS, reason="no other construction registered")
@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("shards", [1, 3])
def test_other_constructions_through_the_filter(name, shards):
    rng = np.random.default_rng(11)
    size = 60_000
    keys = rng.choice(size, 3000, replace=False)
    vals = rng.integers(0, 6, 3000)
    f = build(keys, vals, k=6, t=7, size=size, seed=4, construction=name, shards=shards, workers=1)
    assert f.construction == name
    assert np.array_equal(f.query(keys), vals)
    g = BloomierFilter.from_bytes(f.to_bytes())
    assert g.construction == name and g.to_bytes() == f.to_bytes()
    cb = np.linspace(1, 2, 6).astype(np.float32)
    w = g.reconstruct((300, 200), cb).reshape(-1)
    idx = g.reconstruct_indices((size,))
    assert np.array_equal(w, np.where(idx >= 0, cb[np.maximum(idx, 0)], 0).astype(np.float32))
    assert np.array_equal(idx[keys], vals)
    q = g.query(np.arange(size))
    assert np.array_equal(q, idx.astype(np.int64))
    assert g.count_false_positives() == int(np.count_nonzero(idx >= 0)) - 3000
