"""The spec-only decoder (tests/reference_decoder.py) agrees bit for bit with load_arrays on
generated files of every kind the writer produces."""

from __future__ import annotations

import numpy as np
import pytest

import weightless as wl
from weightless._compat import HAVE_NUMBA
from weightless.io.files import EncodedLayer
from weightless.entropy import cells_kind, decode_cells, encode_cells
from weightless.filters import build

import reference_decoder as ref


def _layer(construction, shards, density, t, k, size=9000, seed=0, shape=None):
    rng = np.random.default_rng(seed)
    keys = np.flatnonzero(rng.random(size) < density)
    f = build(keys, rng.integers(0, k, keys.size), k=k, t=t, size=size, seed=seed,
              construction=construction, shards=shards)
    cb = np.sort(rng.standard_normal(k)).astype(np.float32)
    return EncodedLayer(f, cb, shape or (size,))


KINDS = [
    ("paper", 1, 0.05, 6, 5), ("paper", 4, 0.05, 5, 3), ("paper", 1, 0.5, 3, 2), ("paper", 3, 0.0005, 4, 1),
    ("paper", 1, 0.02, 16, 300), ("paper", 2, 0.1, 9, 200), ("compact", 1, 0.05, 6, 5), ("compact", 2, 0.4, 3, 3),
    ("compact", 1, 0.02, 12, 1000),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entropy", [True, False])
def test_bloomier_records_agree(tmp_path, kind, entropy):
    con, shards, density, t, k = kind
    if con == "compact" and not HAVE_NUMBA:
        pytest.skip("the compact construction's solver needs numba")
    layer = _layer(con, shards, density, t, k, shape=(90, 100))
    p = tmp_path / "f.wl"
    wl.save(p, {"w": layer, "b": np.arange(4, dtype=np.float32)}, entropy=entropy)
    mine, theirs = wl.load_arrays(p), ref.load(p.read_bytes())
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert mine[name].dtype == theirs[name].dtype and mine[name].shape == theirs[name].shape
        assert mine[name].tobytes() == theirs[name].tobytes(), name


def test_dense_records_agree(tmp_path):
    rng = np.random.default_rng(2)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32), "f64": rng.standard_normal(4),
        "f16": rng.standard_normal(6).astype(np.float16), "i64": np.arange(-3, 3), "i32": np.arange(5, dtype=np.int32),
        "i16": np.arange(-2, 2, dtype=np.int16), "i8": np.arange(-4, 4, dtype=np.int8),
        "u8": np.arange(250, 256, dtype=np.uint8), "bool": np.array([True, False]), "empty": np.zeros((0, 2), np.float32),
        "u16": np.arange(3, dtype=np.uint16), "u32": np.arange(3, dtype=np.uint32), "u64": np.arange(3, dtype=np.uint64),
        "scalar": np.float32(2.5).reshape(()),
    }
    for dense_dtype in ("float32", "float16"):
        p = tmp_path / f"d{dense_dtype}.wl"
        wl.save(p, tensors, dense_dtype=dense_dtype)
        mine, theirs = wl.load_arrays(p), ref.load(p.read_bytes())
        for name in tensors:
            assert mine[name].dtype == theirs[name].dtype and mine[name].tobytes() == theirs[name].tobytes(), name


def test_bfloat16_and_narrow_filter_layers_agree(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "b.wl"
    layer = _layer("paper", 2, 0.05, 6, 5, shape=(90, 100))
    tensors = {"bf": torch.tensor([1.5, -2.25, 3.0e-3]).to(torch.bfloat16)}
    for dt in ("float16", "bfloat16", "float64"):
        tensors[f"w_{dt}"] = layer
    recs = wl.io.files.build_records({"bf": tensors["bf"]})
    from weightless.io.records import filter_record

    recs += [filter_record(f"w_{dt}", layer.filter, layer.codebook, layer.shape, dtype=dt)
             for dt in ("float16", "bfloat16", "float64")]
    from weightless.container import write_container

    write_container(p, recs, {})
    mine, theirs = wl.load_arrays(p), ref.load(p.read_bytes())
    for name in mine:
        assert mine[name].dtype == theirs[name].dtype and mine[name].tobytes() == theirs[name].tobytes(), name


@pytest.mark.parametrize("t", [1, 2, 5, 8, 12, 13, 16])
def test_every_cell_record_kind_agrees(t):
    """raw, zero+uniform and histogram cell records, including z = m and tiny tables."""
    rng = np.random.default_rng(t)
    seen = set()
    for m, zero_frac, skew in [(0, 0, 0), (1, 1.0, 0), (7, 0.5, 0), (3000, 0.2, 0), (3000, 0.9, 0), (5000, 0.2, 1),
                               (4000, 1.0, 0), (2000, 0.0, 0)]:
        if skew:
            cells = np.minimum(rng.geometric(0.3, m) - 1, (1 << t) - 1)
        else:
            cells = rng.integers(1, 1 << t, m) if t > 1 else np.ones(m, np.int64)
        cells = np.where(rng.random(m) < zero_frac, 0, cells).astype(np.uint16)
        rec = encode_cells(cells, t)
        seen.add(cells_kind(rec))
        got = ref.decode_cell_record(rec, m, t)
        assert np.array_equal(got, decode_cells(rec, m, t)) and np.array_equal(got, cells)
    assert seen >= {"raw", "zero+uniform"} and (t > 8 or t == 1 or "histogram" in seen), seen


def test_reference_rejects_a_corrupt_ans_stream():
    cells = np.where(np.random.default_rng(0).random(3000) < 0.8, 0, 3).astype(np.uint16)
    rec = bytearray(encode_cells(cells, 4))
    assert rec[0] in (0x12, 0x13)
    rec[-3] ^= 0x40
    with pytest.raises(ValueError):
        ref.decode_cell_record(bytes(rec), 3000, 4)


def test_worked_example_in_the_spec_is_what_the_writer_writes():
    """docs/FORMAT.md's worked example: payload bytes, params and decoded values (golden)."""
    import os
    import re

    from weightless.container import container_from_bytes

    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "FORMAT.md"), encoding="utf-8").read()
    part = doc[doc.index("## Worked example"):]
    part = part[: part.index("\n## ")]
    hexes = []
    for line in part.splitlines():
        if re.match(r"^    [0-9a-f]{2} ", line):
            for tok in line.split():
                if not re.fullmatch(r"[0-9a-f]{2}", tok):
                    break
                hexes.append(tok)
    want = bytes.fromhex("".join(hexes))
    f = build(np.array([1, 5]), np.array([0, 1]), k=2, t=3, size=8, seed=0)
    data = wl.to_bytes({"w": EncodedLayer(f, np.array([-0.5, 0.25], np.float32), (2, 4))}, entropy=False)
    rec = container_from_bytes(data).records[0]
    assert rec.payload == want and len(want) == 77
    assert ref.load(data)["w"].tolist() == [[0, -0.5, 0, 0.25], [0, 0.25, 0, 0]]


GOLDEN = __import__("pathlib").Path(__file__).parent / "golden"


def test_golden_model_file_agrees():
    """A committed model file (dense and bloomier records, raw and entropy-coded filters; the
    records' bytes were written by an earlier writer) loads to the committed tensors, in
    weightless and in the reference decoder, and is what the writer writes for its records."""
    from weightless.container import container_to_bytes, read_container

    path = GOLDEN / "model_v2.wl"
    want = dict(np.load(GOLDEN / "model_v2_arrays.npz"))
    c = read_container(path)
    assert c.version == (2, 0)
    assert container_to_bytes(c.records, c.metadata) == path.read_bytes()
    for got in (wl.load_arrays(path), ref.load(path.read_bytes())):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].tobytes() == want[name].tobytes(), name
    with pytest.raises(ValueError, match="version 1"):  # format 1 is not read
        ref.load((GOLDEN / "model_v1.wl").read_bytes())


def test_reference_reads_the_v2_example():
    data = bytes.fromhex("".join((GOLDEN / "container_v2_small.hex").read_text().split()))
    meta, recs = ref.read_container(data)
    assert meta == {"model": "demo"}
    assert [(e["name"], e["encoding"], e["shape"], e["dtype"], e["params"], len(p)) for e, p in recs] == [
        ("fc1.bias", "raw", [2], "uint8", {}, 2),
        ("fc1.weight", "dense", [2, 3], "float32", {"stored": "float32"}, 24),
        ("fc2.weight", "dense", [], "float32", {"stored": "float32"}, 4),
    ]
    with pytest.raises(ValueError):
        ref.read_container(data[:-1] + bytes([data[-1] ^ 1]))
