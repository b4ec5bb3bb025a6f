"""Golden bytes: any silent change of the hashing, the peeling or the byte format fails here.

If a change of the format is intended, bump ``filter.VERSION`` and update these digests.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from weightless.filters import BloomierFilter, build

KEYS = np.arange(7, 20000, 37)
VALS = (KEYS * 7919) % 5


@pytest.mark.parametrize("use_numba", [True, False])
def test_golden_single_shard(use_numba):
    f = build(KEYS, VALS, k=5, t=6, size=20000, seed=42, use_numba=use_numba)
    data = f.to_bytes()
    assert len(data) == 64 + (f.m * 6 + 7) // 8 == 572
    assert hashlib.sha256(data).hexdigest() == "f1f8494c77c17c800cd02732332e460a6f22f1626232cdf9888ab1993ea7f36d"


def test_golden_three_shards():
    f = build(KEYS, VALS, k=5, t=6, size=20000, seed=42, shards=3, workers=1)
    data = f.to_bytes()
    assert [s.seed for s in f.shards] == [42, 14425704711537617148, 17005090055042294371]
    assert hashlib.sha256(data).hexdigest() == "abd1096f46e614db8e8116daf173c3354703f3d1191f0558665db03a560af8b4"
    # the header: magic, version 1, construction 1 (paper), t 6, block_bits 12, k 5, 3 shards
    assert data[:16] == bytes.fromhex("574c42460101060c0500000003000000")
    g = BloomierFilter.from_bytes(data)
    assert np.array_equal(g.query(KEYS), VALS)
