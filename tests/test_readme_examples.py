"""The README's Python examples, executed as written (with small stand-ins for the user's model
and data): if an example stops working, this fails."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _easy(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = np.random.default_rng(seed)
    y = g.integers(0, 4, n)
    x = g.normal(0, 0.2, (n, 32)).astype(np.float32)
    x[np.arange(n), y * 8] += 3.0  # each class lights one input: easy, so a budget can hold
    return torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def _make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))


def test_the_readme_has_the_two_examples() -> None:
    blocks = _blocks()
    assert any("weightless.compress(" in b for b in blocks) and any("build(" in b for b in blocks)


def test_own_model_example_runs(tmp_path, monkeypatch) -> None:
    from weightless.training import TrainConfig, train

    (block,) = [b for b in _blocks() if "weightless.compress(" in b]
    trainset = _easy(2000, 0)
    loader = torch.utils.data.DataLoader(trainset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = _make_model()
    train(model, loader, TrainConfig(epochs=3, lr=3e-3))
    monkeypatch.chdir(tmp_path)
    ns = {"model": model, "train": loader, "val": _easy(2000, 1), "test": _easy(1000, 2), "make_model": _make_model}
    exec(compile(block, "README.md", "exec"), ns)
    assert (tmp_path / "model.wl").stat().st_size > 0 and ns["result"].within_budget
    for name, v in ns["fresh"].state_dict().items():
        assert torch.equal(v, ns["result"].model.state_dict()[name]), name


def test_codec_example_runs(tmp_path, monkeypatch) -> None:
    (block,) = [b for b in _blocks() if "build(" in b]
    g = np.random.default_rng(0)
    keys = np.sort(g.choice(784 * 300, 12000, replace=False)).astype(np.int64)
    indices = np.full((300, 784), -1, np.int64)
    indices.ravel()[keys] = g.integers(0, 9, keys.size)
    ns = {"keys": keys, "values": indices.ravel()[keys], "codebook": np.linspace(-1, 1, 9, dtype=np.float32),
          "indices": indices, "bias": np.zeros(300, np.float32)}
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["state"]["fc1.weight"].shape == (300, 784)
    assert np.array_equal(ns["state"]["fc1.weight"].numpy(), ns["W"])
