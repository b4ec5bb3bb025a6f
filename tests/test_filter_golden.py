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


def test_golden_entropy_record_flags_raw():
    """The entropy-coded filter record (magic WLBE) with flags+raw tables (cell record 0x14)."""
    from weightless.entropy import decode_filter, encode_filter
    from weightless.entropy.table_coder import cells_kind

    keys = np.arange(7, 400_000, 37)
    f = build(keys, (keys * 7919) % 5, k=5, t=6, size=400_000, seed=42, shards=2, workers=1)
    data = encode_filter(f)
    assert data[:5] == b"WLBE\x01" and data[5:5 + 64 + 20] == f.header_bytes()
    first = data[5 + 84 :]
    # varint length of shard 0's cell record, then the record: kind 0x14
    length, i = 0, 0
    while True:
        length |= (first[i] & 0x7F) << (7 * i)
        i += 1
        if first[i - 1] < 0x80:
            break
    assert cells_kind(first[i : i + length]) == "flags+raw"
    assert hashlib.sha256(data).hexdigest() == GOLDEN_WLBE, hashlib.sha256(data).hexdigest()
    assert decode_filter(data) == f


GOLDEN_WLBE = "3ea6743b098d84b7a4e470ed52797c1ddb08031c0669370733ab698db6a5bd68"
