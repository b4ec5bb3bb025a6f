"""Distillation from cached teacher outputs (SoftTargets) trains as distillation from the teacher."""

import numpy as np
import pytest
import torch
from torch import nn

from weightless.errors import InputError
from weightless.training import TrainConfig, train
from weightless.training.loop import SoftTargets, soft_targets


def _data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))


CFG = TrainConfig(epochs=2, batch_size=64, lr=1e-2, distill=0.5, seed=3)


def test_cached_outputs_train_like_the_teacher() -> None:
    data, teacher = _data(), _net(1)
    a, b, c = _net(2), _net(2), _net(2)
    train(a, data, CFG, teacher=teacher)
    cached = soft_targets(teacher, data)
    assert isinstance(cached, SoftTargets) and cached.outputs.shape == (600, 2)
    train(b, data, CFG, teacher=cached)
    train(c, data, CFG)  # no teacher: a different model, so the comparison can fail
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4)
    assert any(not torch.allclose(pa, pc, atol=1e-3) for pa, pc in zip(a.parameters(), c.parameters()))


def test_cached_outputs_refuse_other_data() -> None:
    cached = soft_targets(_net(1), _data())
    with pytest.raises(InputError, match="other training data"):
        train(_net(2), _data(seed=1), CFG, teacher=cached)
    with pytest.raises(InputError, match="other training data"):
        train(_net(2), _data(n=500), CFG, teacher=cached)


def test_loader_data_keeps_the_teacher() -> None:  # unless the loader only batches tensors
    x, y = _data()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=64, collate_fn=lambda b: (torch.stack([i[0] for i in b]), torch.stack([i[1] for i in b])))
    teacher = _net(1)
    assert soft_targets(teacher, loader) is teacher
    plain = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True)  # only batches its tensors
    assert isinstance(soft_targets(teacher, plain), SoftTargets)
