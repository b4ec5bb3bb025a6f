"""weightless.compress on a model that is not a LeNet: a small CNN with BatchNorm, DataLoaders in,
a .wl file out, loaded back into a fresh model with the reported error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import weightless
from weightless import CompressConfig, EncodeConfig, FilterSearch, InputError, LayerSelect, Recipe, Retraining, TrainConfig
from weightless.pipeline.contract import paired_difference
from weightless.simplify import PruneSchedule
from weightless.training import evaluate


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _images(n: int, seed: int) -> TensorDataset:
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, n)
    x = g.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for c in range(3):  # each class lights up its own band of rows
        x[y == c, 0, 2 * c : 2 * c + 3, :] += 1.0
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def _dict_batches(items: list) -> dict:
    return {"image": torch.stack([x for x, _ in items]), "label": torch.stack([y for _, y in items])}


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, DataLoader, DataLoader, DataLoader]:
    torch.manual_seed(0)
    # a loader that makes dict batches stays a loader (its examples cannot be addressed); the
    # plain tensor loaders of val and test are read as their tensors
    train = DataLoader(_images(600, 0), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0),
                       collate_fn=_dict_batches)
    val = DataLoader(_images(300, 1), batch_size=100)
    test = DataLoader(_images(300, 2), batch_size=100)
    model = SmallCNN()
    weightless.training.train(model, train, TrainConfig(epochs=3, lr=5e-3))
    return model, train, val, test


def _config(**filters) -> CompressConfig:
    quick = TrainConfig(epochs=0.5, lr=1e-3)
    recipe = Recipe(select=LayerSelect(nonzero=0.2, k=8, types=("Linear", "Conv2d"), min_size=50),
                    prune=PruneSchedule(steps=1, retrain=quick), finetune=quick)
    return CompressConfig(recipe=recipe, encode=EncodeConfig(filters=FilterSearch(**{"seed_trials": 2, "t_max": 8, **filters}),
                                                             retraining=Retraining(train=quick)))


def test_dataloaders_in_file_out_exact(trained, tmp_path) -> None:
    model, train, val, test = trained
    res = weightless.compress(model, train, val, _config(), test=test)
    assert {r.name for r in res.layers} == {"conv.weight", "fc1.weight", "fc2.weight"}
    assert res.validation_disjoint is False  # seeds ranked on the decision data (a loader cannot be cut): reported
    path = tmp_path / "cnn.wl"
    weightless.save(path, res.tensors)
    fresh = SmallCNN()
    fresh.load_state_dict(weightless.load(path))
    assert evaluate(fresh, test) == pytest.approx(res.test_error)
    for name, v in fresh.state_dict().items():  # BatchNorm buffers included
        assert torch.equal(v, res.model.state_dict()[name]), name
    assert res.budget["spent_total"] == pytest.approx(res.val_error - res.budget["dense_val_error"])


def test_budget_against_the_users_model(trained) -> None:
    model, train, val, _ = trained
    res = weightless.compress(model, train, val, replace(_config(t={"conv.weight": 6, "fc1.weight": 6, "fc2.weight": 6}),
                                                         max_error_increase=100.0))
    assert res.reference == "user model" and res.budget["within_budget"] is True


def test_config_is_checked_before_training(trained) -> None:
    model, train, val, _ = trained
    with pytest.raises(InputError, match="seed_trials"):
        weightless.compress(model, train, val, _config(seed_trials=0))
    with pytest.raises(InputError, match="nonzero"):
        weightless.compress(model, train, val, CompressConfig(recipe=LayerSelect(nonzero=0)))
    with pytest.raises(InputError, match="matches"):
        weightless.compress(model, train, val, CompressConfig(recipe=LayerSelect(types=("LSTM",))))
    with pytest.raises(InputError, match="validation"):
        weightless.compress(model, train)


def test_layer_select() -> None:
    m = SmallCNN()
    assert [n for n, *_ in LayerSelect().pick(m)] == ["conv.weight", "fc1.weight", "fc2.weight"]
    assert [n for n, *_ in LayerSelect(pattern="fc*").pick(m)] == ["fc1.weight", "fc2.weight"]
    assert [n for n, *_ in LayerSelect(largest_share=0.5).pick(m)] == ["fc1.weight"]
    picked = LayerSelect(overrides={"fc2.weight": {"k": 4, "nonzero": 0.5}}).pick(m)
    assert picked[-1] == ("fc2.weight", "magnitude", 0.5, 4)
    assert dict((n, k) for n, _, _, k in LayerSelect(nonzero=0.1, k=16).pick(m))["conv.weight"] == 7  # 72 weights keep 7
    with pytest.raises(InputError):
        LayerSelect(overrides={"bn.weight": {"k": 4}}).pick(m)
    with pytest.raises(InputError):
        LayerSelect(overrides={"fc2.weight": {"bits": 4}}).pick(m)


def test_paired_rule() -> None:
    ref = np.zeros(1000)
    cand = np.zeros(1000)
    cand[:3] = 1  # +0.3 pp
    assert not paired_difference(cand, ref, 0.1, 0.0).accepted
    assert paired_difference(cand, ref, 0.5, 0.0).accepted
    d = paired_difference(cand, ref, 0.5, 2.0)
    assert d.standard_error > 0 and d.accepted == (d.difference + 2 * d.standard_error <= 0.5)
