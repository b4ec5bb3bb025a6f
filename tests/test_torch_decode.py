"""The optional torch decode path: bit-identical weights on CPU torch; the codec core imports
without torch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from weightless.io import files as api
from weightless.io.files import EncodedLayer
from weightless.filters import build

torch = pytest.importorskip("torch")
from weightless.io.torch_decode import load_tensors, reconstruct_tensor, reconstruct_tensor_torch_ops  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("shards,t,k", [(1, 6, 4), (3, 9, 100), (4, 16, 3)])
def test_torch_ops_decode_is_bit_identical(shards, t, k):
    rng = np.random.default_rng(shards * 100 + t)
    size = 300_000
    keys = rng.choice(size, 20_000, replace=False)
    f = build(keys, rng.integers(0, k, 20_000), k=k, t=t, size=size, seed=7, shards=shards, workers=1)
    cb = rng.standard_normal(k).astype(np.float32)
    ref = f.reconstruct((600, 500), cb)
    got = reconstruct_tensor_torch_ops(f, (600, 500), cb, step=65_536)
    assert got.dtype == torch.float32 and tuple(got.shape) == (600, 500)
    assert got.numpy().tobytes() == ref.tobytes()
    assert reconstruct_tensor(f, (600, 500), cb).numpy().tobytes() == ref.tobytes()


def test_torch_ops_decode_with_an_empty_shard():
    keys = np.arange(0, 4096, 3)  # block 0 only: with 4 shards, some shards get no key
    f = build(keys, keys % 2, k=2, t=5, size=5 * 4096, seed=1, shards=4, workers=1)
    assert any(s.m == 0 for s in f.shards)
    cb = np.array([0.5, -1.0], np.float32)
    ref = f.reconstruct((f.size,), cb)
    assert reconstruct_tensor_torch_ops(f, (f.size,), cb, step=3000).numpy().tobytes() == ref.tobytes()


def test_compact_decodes_on_the_host_into_the_tensor():
    rng = np.random.default_rng(3)
    keys = rng.choice(100_000, 3000, replace=False)
    f = build(keys, rng.integers(0, 4, 3000), k=4, t=7, size=100_000, seed=2, construction="compact")
    cb = np.arange(1, 5, dtype=np.float32)
    assert reconstruct_tensor(f, (100_000,), cb).numpy().tobytes() == f.reconstruct((100_000,), cb).tobytes()
    with pytest.raises(Exception, match="paper"):
        reconstruct_tensor_torch_ops(f, (100_000,), cb)


def test_load_tensors_matches_load_arrays(tmp_path):
    rng = np.random.default_rng(4)
    keys = rng.choice(40_000, 2000, replace=False)
    f = build(keys, rng.integers(0, 3, 2000), k=3, t=6, size=40_000, seed=5, shards=2, workers=1)
    path = tmp_path / "m.wl"
    api.save(path, {"w": EncodedLayer(f, np.array([1, 2, 3], np.float32), (200, 200)), "b": np.ones(7, np.float32)})
    arrays = api.load_arrays(path)
    for tensors in (load_tensors(path), api.load(path, device="cpu")):
        assert set(tensors) == set(arrays)
        for name, a in arrays.items():
            assert tensors[name].numpy().tobytes() == a.tobytes()


def test_codec_core_imports_without_torch():
    code = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch blocked')\n"
        "sys.meta_path.insert(0, _Block())\n"
        "import numpy as np\n"
        "import weightless.filters, weightless.entropy, weightless.container, weightless.io.files\n"
        "f = weightless.filters.build(np.arange(0, 1000, 7), np.arange(0, 1000, 7) % 3, k=3, t=5, size=1000)\n"
        "f.reconstruct((1000,), np.ones(3, np.float32), threads=2)\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
