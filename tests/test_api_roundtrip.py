"""API: save/load round trips, determinism, inspect, and fuzzing of load_arrays."""

import os
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightless.io import files as api
from weightless.io.files import EncodedLayer
from weightless.container import container_from_bytes, container_to_bytes
from weightless.errors import FormatError, InputError
from weightless.filters import build


def _tensors(seed=0, t=7):
    rng = np.random.default_rng(seed)
    shape = (30, 64)
    size = 30 * 64
    keys = np.sort(rng.choice(size, 150, replace=False))
    values = rng.integers(0, 9, keys.size)
    cb = np.sort(rng.standard_normal(9)).astype(np.float32)
    f = build(keys, values, k=9, t=t, size=size, seed=seed)
    return {
        "fc1.weight": EncodedLayer(f, cb, shape),
        "fc1.bias": rng.standard_normal(30).astype(np.float32),
        "fc2.weight": rng.standard_normal((10, 30)).astype(np.float32),
        "steps": np.array([3, 4], dtype=np.int64),
    }


def test_save_load_every_tensor_bit_for_bit(tmp_path):
    t = _tensors()
    path = tmp_path / "m.wl"
    n = api.save(path, t, metadata={"model": "x"})
    assert n == os.path.getsize(path)
    back = api.load(path, framework="numpy")
    assert list(back) == list(t)
    enc = t["fc1.weight"]
    assert back["fc1.weight"].tobytes() == enc.filter.reconstruct(enc.shape, enc.codebook).tobytes()
    for name in ("fc1.bias", "fc2.weight", "steps"):
        assert back[name].dtype == t[name].dtype
        assert back[name].tobytes() == t[name].tobytes()
    assert api.load_arrays(path).keys() == back.keys()


def test_load_torch_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    t = _tensors()
    api.save(tmp_path / "m.wl", t)
    sd = api.load(tmp_path / "m.wl")
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert sd["fc2.weight"].numpy().tobytes() == t["fc2.weight"].tobytes()
    assert sd["steps"].dtype == torch.int64
    sd["fc1.bias"] += 1  # writeable, owns its memory


def test_save_accepts_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    w = torch.randn(4, 5)
    api.save(tmp_path / "m.wl", {"w": w})
    assert api.load(tmp_path / "m.wl", framework="numpy")["w"].tobytes() == w.numpy().tobytes()


def test_float16_dense_storage(tmp_path):
    t = _tensors()
    api.save(tmp_path / "h.wl", t, dense_dtype="float16")
    back = api.load(tmp_path / "h.wl", framework="numpy")
    assert back["fc1.bias"].dtype == np.float32
    assert np.array_equal(back["fc1.bias"], t["fc1.bias"].astype(np.float16).astype(np.float32))
    assert back["steps"].tobytes() == t["steps"].tobytes()  # only float32 tensors are halved
    enc = t["fc1.weight"]
    assert np.array_equal(back["fc1.weight"], enc.filter.reconstruct(enc.shape, enc.codebook))
    assert os.path.getsize(tmp_path / "h.wl") < api.save(tmp_path / "f.wl", t)


def test_same_inputs_same_bytes(tmp_path):
    a, b = _tensors(seed=3), _tensors(seed=3)  # filters built twice from the same inputs
    assert api.to_bytes(a, metadata={"m": 1}) == api.to_bytes(b, metadata={"m": 1})
    api.save(tmp_path / "a.wl", a, metadata={"m": 1})
    assert (tmp_path / "a.wl").read_bytes() == api.to_bytes(b, metadata={"m": 1})
    assert api.to_bytes(_tensors(seed=4)) != api.to_bytes(a)


def test_inspect_reports_records(tmp_path):
    api.save(tmp_path / "m.wl", _tensors(), metadata={"model": "x"})
    s = api.inspect(tmp_path / "m.wl")
    assert s["metadata"] == {"model": "x"}
    recs = {r["name"]: r for r in s["records"]}
    assert recs["fc1.weight"]["encoding"] == "bloomier" and recs["fc1.weight"]["filter"]["t"] == 7
    assert recs["fc1.bias"]["payload_bytes"] == 120
    assert s["file_bytes"] == os.path.getsize(tmp_path / "m.wl")


def test_api_input_errors(tmp_path):
    with pytest.raises(InputError):
        api.save(tmp_path / "m.wl", _tensors(), dense_dtype="bfloat16")
    with pytest.raises(InputError):
        api.load(tmp_path / "m.wl", framework="jax")
    with pytest.raises(InputError):
        api.save(tmp_path / "m.wl", {"c": np.zeros(3, dtype=np.complex64)})
    assert not (tmp_path / "m.wl").exists()


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        api.load_arrays(tmp_path / "nope.wl")


# ------------------------------------------------------------------ fuzzing

_VALID = api.to_bytes(_tensors(seed=5, t=6), metadata={"model": "fuzz"})
_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    """One folder for the module (module scope: hypothesis runs each test body many times)."""
    return tmp_path_factory.mktemp("wl-api-fuzz")


def _load_bytes(folder, data: bytes):
    path = folder / "f.wl"
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        return api.load_arrays(path)
    except FormatError:
        return None


@_FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_only_format_error(fuzz_dir, data):
    _load_bytes(fuzz_dir, data)


@_FUZZ
@given(st.binary(max_size=400))
def test_valid_prefix_then_random_bytes_only_format_error(fuzz_dir, tail):
    _load_bytes(fuzz_dir, _VALID[:48] + tail)


@_FUZZ
@given(st.data())
def test_mutated_file_only_format_error(fuzz_dir, data):
    buf = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    _load_bytes(fuzz_dir, bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf))


@_FUZZ
@given(st.data())
def test_mutated_payload_with_valid_checksums_only_format_error(fuzz_dir, data):
    """Corrupt one record's payload (or params) and rebuild a container whose checksums are
    valid, so the record decoders themselves see the damage."""
    c = container_from_bytes(_VALID)
    recs = list(c.records)
    j = data.draw(st.integers(0, len(recs) - 1))
    r = recs[j]
    p = bytearray(r.payload)
    choice = data.draw(st.sampled_from(["flip", "cut", "params"]))
    if choice == "flip" and p:
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(p) - 1))
            p[i] ^= 1 << data.draw(st.integers(0, 7))
        r = replace(r, payload=bytes(p))
    elif choice == "cut":
        r = replace(r, payload=bytes(p[: data.draw(st.integers(0, len(p)))]))
    else:
        key = data.draw(st.sampled_from(sorted(r.params) + ["k", "stored"]))
        val = data.draw(st.one_of(st.integers(-3, 70000), st.text(max_size=5), st.none(), st.booleans()))
        r = replace(r, params={**r.params, key: val})
    recs[j] = r
    _load_bytes(fuzz_dir, container_to_bytes(recs, c.metadata))
