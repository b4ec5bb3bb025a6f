"""weightless.convenience: default layer choice, default t, encode_tensors, compress()."""

import math

import numpy as np
import pytest

from weightless.io import files as api
from weightless.io.files import EncodedLayer
from weightless.convenience import default_filter_layers, default_t, encode_tensors
from weightless.errors import InputError


def _sparse(shape=(40, 60), k=5, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    cb = np.sort(rng.standard_normal(k)).astype(np.float32)
    return np.where(rng.random(shape) < density, cb[rng.integers(0, k, shape)], 0).astype(np.float32)


def test_default_t():
    assert [default_t(k) for k in (1, 2, 3, 4, 9, 16, 17, 256)] == [4, 5, 6, 6, 8, 8, 9, 12]
    assert default_t(40000) == 16
    with pytest.raises(InputError):
        default_t(0)


def test_default_filter_layers_criteria():
    rng = np.random.default_rng(1)
    many = np.where(rng.random((40, 60)) < 0.2, rng.standard_normal((40, 60)), 0).astype(np.float32)
    half = _sparse(density=0.0)
    half.reshape(-1)[: half.size // 2] = 1.0  # exactly 50% nonzero, k = 1
    t = {
        "ok": _sparse(),
        "ok_at_limits": half,
        "k257": many,  # hundreds of distinct values
        "dense": _sparse(density=0.9),
        "vector": _sparse((2400,)),
        "ints": (_sparse() * 10).astype(np.int32),
        "zeros": np.zeros((4, 4), np.float32),
    }
    assert default_filter_layers(t) == ["ok", "ok_at_limits"]


def test_encode_tensors_exact_nonzeros_and_defaults():
    w = _sparse()
    res = encode_tensors({"b": np.ones(3, np.float32), "w": w})
    assert isinstance(res.tensors["w"], EncodedLayer) and isinstance(res.tensors["b"], np.ndarray)
    (rep,) = res.layers
    assert rep.k == 5 and rep.t == default_t(5) == math.ceil(math.log2(5)) + 4
    enc = res.tensors["w"]
    back = enc.filter.reconstruct(enc.shape, enc.codebook)
    assert np.array_equal(back[w != 0], w[w != 0])
    assert int(np.count_nonzero(back[w == 0])) == rep.false_positives
    assert np.array_equal(enc.codebook, np.unique(w[w != 0]))


def test_encode_tensors_t_forms_and_errors():
    t = {"a": _sparse(seed=1), "b": _sparse(seed=2)}
    res = encode_tensors(t, t={"a": 4})
    assert [r.t for r in res.layers] == [4, default_t(5)]
    assert [r.t for r in encode_tensors(t, t=7).layers] == [7, 7]
    with pytest.raises(InputError, match="t = 3"):
        encode_tensors(t, t=3)  # k = 5 needs t >= 4
    with pytest.raises(InputError, match="not filter-encoded"):
        encode_tensors(t, t={"c": 8})
    with pytest.raises(InputError):
        encode_tensors(t, layers=["zz"])
    with pytest.raises(InputError):
        encode_tensors({"z": np.zeros((3, 3), np.float32)}, layers=["z"])
    with pytest.raises(InputError):
        encode_tensors(t, t="8")


def test_encode_tensors_deterministic_and_seeded():
    t = {"a": _sparse(seed=1)}
    assert api.to_bytes(encode_tensors(t, seed=5).tensors) == api.to_bytes(encode_tensors(t, seed=5).tensors)
    assert api.to_bytes(encode_tensors(t, seed=5).tensors) != api.to_bytes(encode_tensors(t, seed=6).tensors)


@pytest.mark.slow
def test_compress_convenience_on_a_tiny_run(load_data):
    torch = pytest.importorskip("torch")
    from weightless.pipeline.api import compress
    from weightless_lab.data.mnist import load_mnist
    from weightless_lab.models import get_model
    from weightless.pipeline import EncodeConfig, FilterSearch, Retraining
    from weightless.simplify import LayerRecipe, PruneSchedule, Recipe
    from weightless.training import TrainConfig

    data = load_data(load_mnist, "MNIST").subset(1000, 500)
    short = TrainConfig(epochs=0.2, lr=1e-3, threads=1)
    recipe = Recipe(model="lenet300", layers=(LayerRecipe("fc1.weight", nonzero=0.1, k=4),),
                    prune=PruneSchedule(steps=1, retrain=short), finetune=None)
    from weightless.pipeline import CompressConfig

    res = compress(get_model("lenet300"), data, config=CompressConfig(
        recipe=recipe, encode=EncodeConfig(filters=FilterSearch(t={"fc1.weight": 5}), retraining=Retraining(train=short)), reference="simplified",
        max_error_increase=100.0, progress=False))
    assert [r.t for r in res.layers] == [5]
    enc = res.tensors["fc1.weight"]
    w = dict(res.model.named_parameters())["fc1.weight"].detach().numpy()
    assert np.array_equal(w, enc.filter.reconstruct(enc.shape, enc.codebook))
    assert tuple(res.tensors["fc3.weight"].shape) == (10, 100)  # stored as the model holds it
    del torch


def test_encode_save_load_need_numpy_only(tmp_path):
    """encode_tensors, save, load_arrays and reading safetensors never import torch."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np
from weightless.convenience import encode_tensors, read_checkpoint
from weightless.io import files as api
w = np.where(np.random.default_rng(0).random((20, 30)) < .1, 1.5, 0).astype(np.float32)
api.save({str(tmp_path / 'a.wl')!r}, encode_tensors({{'w': w, 'b': np.ones(3, np.float32)}}).tensors)
back = api.load({str(tmp_path / 'a.wl')!r}, framework='numpy')
assert back['w'][w != 0].tolist() == w[w != 0].tolist()
try:
    from safetensors.numpy import save_file
    save_file({{'w': w}}, {str(tmp_path / 'a.safetensors')!r})
    read_checkpoint({str(tmp_path / 'a.safetensors')!r})
except ImportError:
    pass
sys.exit(3 if 'torch' in sys.modules else 0)
"""
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_read_checkpoint_widens_bfloat16(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from weightless.convenience import read_checkpoint

    w = torch.randn(3, 4).bfloat16()
    save_file({"w": w, "b": torch.ones(2)}, str(tmp_path / "m.safetensors"))
    torch.save({"w": w}, tmp_path / "m.pt")
    for name in ("m.safetensors", "m.pt"):
        tensors, clustered = read_checkpoint(tmp_path / name)
        assert tensors["w"].dtype == np.float32 and clustered == {}
        assert np.array_equal(tensors["w"], w.float().numpy())


def test_read_checkpoint_errors(tmp_path):
    from weightless.convenience import read_checkpoint
    from weightless.errors import DataError

    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 20)
    (tmp_path / "x.npy").write_bytes(b"")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError):
        read_checkpoint(tmp_path / "x.safetensors")
    with pytest.raises(InputError):
        read_checkpoint(tmp_path / "x.npy")
    with pytest.raises(InputError):
        read_checkpoint(tmp_path / "d")  # a folder without model.safetensors
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")
