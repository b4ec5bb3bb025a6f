"""Golden bytes of the compact construction (sharded Ribbon retrieval): any silent change of its
hashing, banding, solver, aux bytes or byte format fails here. The paper construction's are
pinned in test_filter_golden.py.

The files in tests/golden/ were written by this module from the code at the time; if a change of
the format is intended, bump ``filter.VERSION`` and rewrite them with
``python tests/test_filter_golden_compact.py --write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from weightless._compat import HAVE_NUMBA
from weightless.entropy import decode_filter, encode_filter
from weightless.filters import BloomierFilter, build

GOLDEN = Path(__file__).resolve().parent / "golden"
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="the compact solver needs numba")


def _single():
    """540 keys, one shard, t = 6 (the inputs of test_filter_golden.py's paper filters)."""
    keys = np.arange(7, 20000, 37)
    return keys, (keys * 7919) % 5, dict(k=5, t=6, size=20000, seed=42, construction="compact")


def _sharded():
    """10,811 keys in two shards (the second with a derived seed), 2/3 of the values 0."""
    keys = np.arange(7, 400_000, 37)
    vals = np.where(keys % 3 == 0, (keys * 7919) % 5, 0)
    return keys, vals, dict(k=5, t=6, size=400_000, seed=42, construction="compact", shards=2, workers=1)


CASES = {"compact_single.wlbf": _single, "compact_sharded.wlbf": _sharded, "compact_sharded.wlbe": _sharded}


def _written(name: str) -> bytes:
    """The bytes the current code writes for golden file ``name`` (raw WLBF or entropy-coded WLBE)."""
    keys, vals, kw = CASES[name]()
    f = build(keys, vals, **kw)
    return encode_filter(f) if name.endswith(".wlbe") else f.to_bytes()


@needs_numba
@pytest.mark.parametrize("name", sorted(CASES))
def test_build_writes_the_golden_bytes(name):
    data = _written(name)
    golden = (GOLDEN / name).read_bytes()
    assert len(data) == len(golden)
    diff = [i for i in range(len(data)) if data[i] != golden[i]]
    assert not diff, f"{name}: {len(diff)} bytes differ, the first at offset {diff[0]}"


def test_golden_headers():
    single = (GOLDEN / "compact_single.wlbf").read_bytes()
    # magic, version 1, construction 2 (compact), t 6, block_bits 12, k 5, 1 shard
    assert single[:16] == bytes.fromhex("574c42460102060c0500000001000000")
    f = BloomierFilter.from_bytes(single)
    assert (f.n, f.m) == (541, 556) and [len(s.aux) for s in f.shards] == [7]
    g = BloomierFilter.from_bytes((GOLDEN / "compact_sharded.wlbf").read_bytes())
    assert [(s.n, s.m, s.seed) for s in g.shards] == [(5500, 5599, 42), (5311, 5408, 14425704711537617148)]
    coded = (GOLDEN / "compact_sharded.wlbe").read_bytes()
    assert coded[:5] == b"WLBE\x01" and decode_filter(coded) == g


@pytest.mark.parametrize("use_numba", [True, False] if HAVE_NUMBA else [False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_files_query_their_values(name, use_numba):
    """Both lookup paths read the golden tables back to every key's value."""
    keys, vals, _ = CASES[name]()
    data = (GOLDEN / name).read_bytes()
    f = decode_filter(data) if name.endswith(".wlbe") else BloomierFilter.from_bytes(data)
    assert np.array_equal(f.query(keys, use_numba=use_numba), vals)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_filter_golden_compact.py --write  (rewrites tests/golden/compact_*)")
    for name in CASES:
        data = _written(name)
        (GOLDEN / name).write_bytes(data)
        print(f"wrote {GOLDEN / name} ({len(data)} bytes)")
