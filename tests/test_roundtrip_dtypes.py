"""Exact round trips: every tensor's dtype and shape back (0-d, empty, bfloat16, float16 filter
layers, integer and bool buffers), bfloat16 byte layout pinned, clear errors for the rest."""

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightless.io import files as api
from weightless.container import container_from_bytes, container_to_bytes
from weightless.convenience import encode_tensors
from weightless.errors import FieldError, InputError
from weightless.io.records import (
    bfloat16_to_float32,
    decode_record,
    dense_record,
    filter_record,
    float32_to_bfloat16,
)

torch = pytest.importorskip("torch")

_PROP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMPY_DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8",
                "uint64", "uint32", "uint16", "uint8", "bool"]
TORCH_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                torch.int16, torch.int8, torch.uint8, torch.bool]
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)  # 0-d and empty included


@pytest.fixture(scope="module")
def wl_dir(tmp_path_factory):
    """One folder for the module (module scope: hypothesis runs each test body many times)."""
    return tmp_path_factory.mktemp("wl-dtypes")


def _save_load(folder, tensors, **kw):
    path = folder / "t.wl"
    api.save(path, tensors, **kw)
    return path


def _random_bits(draw, shape, dtype):
    """Any bit pattern (NaNs, infinities, subnormals included) for floats; any value otherwise."""
    n = int(np.prod(shape, dtype=np.int64))
    raw = draw(st.binary(min_size=n * np.dtype(dtype).itemsize, max_size=n * np.dtype(dtype).itemsize))
    a = np.frombuffer(raw, dtype=np.uint8).copy()
    if dtype == "bool":
        return (a & 1).astype(bool).reshape(shape)
    return a.view(dtype).reshape(shape)


@_PROP
@given(st.data(), st.sampled_from(NUMPY_DTYPES), shapes)
def test_numpy_dense_round_trip_bit_for_bit(wl_dir, data, dtype, shape):
    a = _random_bits(data.draw, shape, dtype)
    back = api.load_arrays(_save_load(wl_dir, {"x": a}))["x"]
    assert back.dtype == a.dtype and back.shape == a.shape
    assert back.tobytes() == a.tobytes()


@_PROP
@given(st.data(), st.sampled_from(TORCH_DTYPES), shapes)
def test_torch_round_trip_bit_for_bit(wl_dir, data, dtype, shape):
    a = _random_bits(data.draw, shape, "uint16" if dtype == torch.bfloat16 else str(dtype).split(".")[1])
    t = torch.from_numpy(a.view(np.int16) if dtype == torch.bfloat16 else a)
    t = t.view(torch.bfloat16) if dtype == torch.bfloat16 else t
    path = _save_load(wl_dir, {"x": t, "y": t.clone()})
    back = api.load(path)["x"]
    assert back.dtype == t.dtype and back.shape == t.shape
    assert back.numpy().tobytes() == a.tobytes() if dtype != torch.bfloat16 else \
        back.view(torch.int16).numpy().tobytes() == a.tobytes()
    arrays = api.load_arrays(path)  # numpy has no bfloat16: float32 of the same values
    if dtype == torch.bfloat16:
        assert arrays["x"].dtype == np.float32 and arrays["x"].shape == tuple(shape)
        assert np.array_equal(arrays["x"], t.float().numpy(), equal_nan=True)
    else:
        assert arrays["x"].dtype == a.dtype


@_PROP
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=20))
def test_bfloat16_rounding_matches_torch(values):
    a = np.array(values, dtype=np.float32)
    ours = float32_to_bfloat16(a)
    ref = torch.from_numpy(a).bfloat16().view(torch.int16).numpy().view(np.uint16)
    finite = np.isfinite(a)
    assert np.array_equal(ours[finite], ref[finite])
    assert np.all(np.isnan(bfloat16_to_float32(ours[np.isnan(a)])))
    assert np.array_equal(bfloat16_to_float32(ref), torch.from_numpy(ref.view(np.int16)).view(torch.bfloat16)
                          .float().numpy(), equal_nan=True)


def test_zero_d_and_empty_keep_shape(tmp_path):
    tensors = {"s": np.float32(2.5), "n": np.array(7, dtype=np.int64), "e": np.zeros((0, 3), np.float16),
               "e0": np.zeros(0, bool)}
    back = api.load_arrays(_save_load(tmp_path, tensors))
    for k, v in tensors.items():
        v = np.asarray(v)
        assert back[k].shape == v.shape and back[k].dtype == v.dtype and back[k].tobytes() == v.tobytes()


def test_float16_storage_leaves_other_dtypes_alone(tmp_path):
    tensors = {"w": np.float32(1 / 3), "h": np.array([1 / 3], np.float16), "d": np.array(1 / 3)}
    back = api.load_arrays(_save_load(tmp_path, tensors, dense_dtype="float16"))
    assert back["w"].dtype == np.float32 and back["w"].shape == () and back["w"] == np.float32(np.float16(1 / 3))
    assert back["h"].tobytes() == tensors["h"].tobytes() and back["d"].tobytes() == tensors["d"].tobytes()


def _sparse_layer(dtype, shape=(20, 30), seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros(shape, np.float32)
    mask = rng.random(shape) < 0.2
    w[mask] = rng.choice(np.float32([-0.75, -0.1, 0.3, 1.25, 0.013]), mask.sum())
    t = torch.from_numpy(w).to(dtype)
    return t, mask


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.float32])
def test_filter_layer_comes_back_in_its_dtype(tmp_path, dtype):
    w, mask = _sparse_layer(dtype)
    enc = encode_tensors({"fc.weight": w, "fc.bias": torch.ones(20, dtype=dtype)})
    assert isinstance(enc.tensors["fc.weight"], api.EncodedLayer)
    assert enc.tensors["fc.weight"].dtype == str(dtype).split(".")[1]
    path = _save_load(tmp_path, enc.tensors)
    back = api.load(path)
    assert back["fc.weight"].dtype == dtype and back["fc.bias"].dtype == dtype
    assert back["fc.weight"].shape == w.shape
    assert torch.equal(back["fc.weight"][torch.from_numpy(mask)], w[torch.from_numpy(mask)])  # exact at keys
    assert torch.equal(back["fc.bias"], torch.ones(20, dtype=dtype))
    rec = {r["name"]: r for r in api.inspect(path)["records"]}
    assert rec["fc.weight"]["encoding"] == "bloomier" and rec["fc.weight"]["dtype"] == str(dtype).split(".")[1]


def test_filter_codebook_rounded_to_layer_dtype():
    w, _ = _sparse_layer(torch.float32)
    enc = encode_tensors({"w": w}).tensors["w"]
    cb = enc.codebook + np.float32(1e-4)  # not representable in float16
    rec = filter_record("w", enc.filter, cb, enc.shape, dtype="float16")
    back = decode_record(rec)
    assert back.dtype == np.float16
    assert set(np.unique(back[back != 0]).tolist()) <= set(cb.astype(np.float16).tolist())
    with pytest.raises(InputError, match="float16"):
        filter_record("w", enc.filter, enc.codebook * np.float32(1e6), enc.shape, dtype="float16")
    with pytest.raises(InputError, match="int8"):
        filter_record("w", enc.filter, enc.codebook, enc.shape, dtype="int8")


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


def test_batchnorm_model_load_state_dict_exact(tmp_path):
    torch.manual_seed(0)
    net = _Net()
    net.train()
    for _ in range(3):  # running stats and num_batches_tracked move off their defaults
        net(torch.randn(8, 1, 6, 6))
    net.eval()
    sd = net.state_dict()
    assert sd["bn.num_batches_tracked"].shape == () and sd["bn.num_batches_tracked"].dtype == torch.int64
    api.save(tmp_path / "n.wl", sd)
    back = api.load(tmp_path / "n.wl")
    fresh = _Net().eval()
    fresh.load_state_dict(back)  # strict: every key, shape and dtype
    for k, v in fresh.state_dict().items():
        assert v.dtype == sd[k].dtype and v.shape == sd[k].shape and torch.equal(v, sd[k]), k
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(fresh(x), net(x))


def test_unsupported_dtypes_name_the_tensor(tmp_path):
    with pytest.raises(InputError, match=r"'c'.*complex64"):
        api.save(tmp_path / "m.wl", {"c": np.zeros(3, np.complex64)})
    with pytest.raises(InputError, match=r"'c'.*complex"):
        api.save(tmp_path / "m.wl", {"c": torch.zeros(3, dtype=torch.complex64)})
    with pytest.raises(InputError, match=r"'o'.*object"):
        api.save(tmp_path / "m.wl", {"o": np.array([{}], dtype=object)})
    if hasattr(torch, "float8_e4m3fn"):
        with pytest.raises(InputError, match=r"'f8'.*float8"):
            api.save(tmp_path / "m.wl", {"f8": torch.zeros(3, dtype=torch.float8_e4m3fn)})
    with pytest.raises(InputError, match=r"'sp'"):
        api.save(tmp_path / "m.wl", {"sp": torch.eye(3).to_sparse()})
    with pytest.raises(InputError, match="bfloat16"):
        dense_record("x", np.zeros(3, np.int16), dtype="bfloat16")
    assert not (tmp_path / "m.wl").exists()


def test_inconsistent_dense_dtypes_rejected_on_read():
    rec = dense_record("b", np.arange(4, dtype=np.uint16), dtype="bfloat16")
    from dataclasses import replace

    for bad in (replace(rec, dtype="float32"), replace(rec, params={"stored": "float16"}),
                replace(rec, payload=rec.payload[:-2])):
        with pytest.raises(FieldError):
            decode_record(bad)
    with pytest.raises(InputError):
        decode_record(rec, bfloat16="float16")


# ------------------------------------------------------------------ golden bytes

def _golden_records():
    w, _ = _sparse_layer(torch.float16, shape=(6, 8), seed=3)
    enc = encode_tensors({"w": w}, t=5).tensors["w"]
    return [
        dense_record("b", float32_to_bfloat16(np.float32([1.0, -2.0, 0.5, 3.140625])).reshape(2, 2),
                     dtype="bfloat16"),
        dense_record("n", np.array(3, dtype=np.int64)),
        filter_record("w", enc.filter, enc.codebook, enc.shape, dtype=enc.dtype),
    ]


def test_golden_bfloat16_and_zero_d_layout():
    """Pins the bytes of the dtypes added for exact round trips: bfloat16 as raw little-endian
    16-bit words (stored "bfloat16"), a 0-d tensor with shape [], a float16 filter layer."""
    b, n, w = _golden_records()
    assert b.payload == bytes.fromhex("803f00c0003f4940") and b.params == {"stored": "bfloat16"}
    assert b.dtype == "bfloat16" and b.shape == (2, 2)
    assert n.payload == (3).to_bytes(8, "little") and n.shape == ()
    assert w.dtype == "float16" and w.encoding == "bloomier"
    data = container_to_bytes([b, n, w], {})  # docs/FORMAT.md, "Header"
    # b: shared 0, "b", encoding 0 (dense), dtype 2 (bfloat16), ndim 2, [2, 2], 21 bytes of params
    assert b"\x00\x01b\x00\x02\x02\x02\x02\x2a" + b'{"stored":"bfloat16"}' + b"\x08" in data
    # n: shared 0, "n", dense, dtype 7 (int64), ndim 0, 18 bytes of params, 8 payload bytes
    assert b"\x00\x01n\x00\x07\x00\x24" + b'{"stored":"int64"}' + b"\x08" in data
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256
    back = [decode_record(r) for r in container_from_bytes(data).records]
    assert back[0].tolist() == [[1.0, -2.0], [0.5, 3.140625]] and back[1].shape == ()
    assert back[2].dtype == np.float16


GOLDEN_SHA256 = "e2b6ce287e36fb3973322837940aec6a2597c52dea822eebe7db17400c1191d2"
