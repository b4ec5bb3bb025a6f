"""Structure-aware fuzzing of whole files (seeded, fast): only FormatError subclasses or a
correct decode, and the numba and numpy decode paths accept and reject the same files with
the same bytes. benchmarks/fuzz_files.py runs the same generator on 100,000+ inputs."""

from __future__ import annotations

import os
import random

import pytest

from weightless._compat import HAVE_NUMBA

from fuzzing import FUZZ_LIMITS, decode, mutate, outcome, seed_files

N = int(os.environ.get("WL_FUZZ_FILES", "200"))


@pytest.fixture(scope="module")
def seeds():
    return seed_files(use_compact=HAVE_NUMBA)


def test_seed_files_decode(seeds):
    for data in seeds:
        kind, _ = outcome(lambda: decode(data, FUZZ_LIMITS))
        assert kind == "ok"


def test_mutated_files_only_raise_format_errors(seeds):
    rng = random.Random(14)
    counts: dict[str, int] = {}
    for _ in range(N):
        data = seeds[rng.randrange(len(seeds))]
        for _ in range(rng.randint(1, 3)):
            data = mutate(rng, data)
        kind, value = outcome(lambda: decode(data, FUZZ_LIMITS, use_numba=False))
        counts[kind] = counts.get(kind, 0) + 1
        assert not kind.startswith("CRASH"), (kind, value)
        if HAVE_NUMBA:
            kind2, value2 = outcome(lambda: decode(data, FUZZ_LIMITS, use_numba=True))
            assert kind2 == kind, (kind, kind2, value2)
            if kind == "ok":
                assert value.keys() == value2.keys()
                assert all(value[k].tobytes() == value2[k].tobytes() for k in value)
    # the mutations reach past the checksums: decodes and several distinct rejections
    assert counts.get("ok", 0) > 0 and len(counts) >= 4, counts


def test_paper_table_of_one_cell_is_rejected_on_both_paths():
    """0 keys and 1 cell: the numpy path raised IndexError, numba decoded it; now both reject."""
    from crafted import bloomier_record, packed_zero_cells, params_for, raw_filter, wl_bytes

    def file_of(m: int) -> bytes:
        filt = raw_filter(k=1, t=2, size=10, shards=[(0, m, 0, packed_zero_cells(m, 2), b"")])
        return wl_bytes([bloomier_record("w", (10,), [0.5], filt, params_for(k=1, t=2, shards=[(0, m, 0)]))])

    for use in (False, True):
        assert outcome(lambda: decode(file_of(1), FUZZ_LIMITS, use_numba=use))[0] == "FieldError"
    # the control: the same file with 3 cells (one per hash) decodes, to the same bytes on both
    # paths, so the rejection above is the cell count and not another defect of the crafted file
    kinds, values = zip(*(outcome(lambda: decode(file_of(3), FUZZ_LIMITS, use_numba=use)) for use in (False, True)))
    assert kinds == ("ok", "ok"), values
    assert values[0]["w"].shape == (10,) and values[0]["w"].tobytes() == values[1]["w"].tobytes()
