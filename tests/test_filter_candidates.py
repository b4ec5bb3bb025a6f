"""Per-shard candidate tables (``build_candidates``): any choice is a valid filter of the same
keys, the first choice is what ``build`` makes, and a mixed choice survives the file format."""

from __future__ import annotations

import numpy as np
import pytest

from weightless.entropy import decode_filter, encode_filter
from weightless.errors import InputError
from weightless.filters import BloomierFilter, build, build_candidates

SIZE = 60_000


def _keys(seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.choice(SIZE, 3_000, replace=False))
    return keys, rng.integers(0, 5, keys.size)


@pytest.mark.parametrize("construction", ["paper", "compact"])
def test_first_choice_is_build_and_every_choice_decodes_the_keys(construction):
    keys, vals = _keys()
    kw = dict(k=5, t=7, size=SIZE, seed=11, construction=construction, shards=3)
    cands = build_candidates(keys, vals, per_shard=3, **kw)
    assert [len(o) for o in cands.options] == [3, 3, 3]
    assert cands.filter([0, 0, 0]) == build(keys, vals, **kw)
    for choice in ([2, 0, 1], [1, 2, 2]):
        f = cands.filter(choice)
        assert isinstance(f, BloomierFilter)
        assert [s.seed for s in f.shards] == [cands.options[i][c].seed for i, c in enumerate(choice)]
        idx = f.reconstruct_indices((SIZE,))
        assert np.array_equal(idx[keys], vals)
        assert decode_filter(encode_filter(f)) == f
    seeds = {s.seed for o in cands.options for s in o}
    assert len(seeds) == 9  # every option is a different table


def test_choices_change_the_false_positives():
    keys, vals = _keys(1)
    cands = build_candidates(keys, vals, k=5, t=6, size=SIZE, seed=2, construction="compact", shards=2, per_shard=2)
    a = cands.filter([0, 0]).reconstruct_indices((SIZE,))
    b = cands.filter([1, 0]).reconstruct_indices((SIZE,))
    assert not np.array_equal(a, b)
    assert np.array_equal(a[keys], b[keys])


def test_bad_choices_and_counts_are_input_errors():
    keys, vals = _keys()
    cands = build_candidates(keys, vals, k=5, t=7, size=SIZE, shards=2, per_shard=2)
    for bad in ([0], [0, 2], [-1, 0], [0, 0, 0]):
        with pytest.raises(InputError, match="one index per shard"):
            cands.filter(bad)
    with pytest.raises(InputError, match="per_shard"):
        build_candidates(keys, vals, k=5, t=7, size=SIZE, per_shard=0)
    with pytest.raises(InputError, match="distinct"):
        build_candidates(np.array([3, 3]), np.array([0, 1]), k=5, t=7, size=SIZE)
