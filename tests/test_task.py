"""The task interface: every data form gives the same batches, losses and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from weightless import InputError
from weightless.training import Task, TrainConfig, as_source, as_task, evaluate, per_example, train


def _data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0.5)
    return x, y


class DictDS(Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"input": self.x[i], "target": self.y[i]}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


def test_every_form_gives_the_same_error() -> None:
    x, y = _data()
    net = _net()
    ref = evaluate(net, x, y)
    tds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for form in ((x, y), tds, DataLoader(tds, batch_size=33), DictDS(x, y), DataLoader(DictDS(x, y), batch_size=50)):
        assert evaluate(net, form) == pytest.approx(ref)


def test_per_example_matches_batch_mean() -> None:
    x, y = _data()
    net = _net()
    errs, losses = per_example(net, (x, y))
    assert errs.shape == losses.shape == (len(y),)
    full = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).item()
    assert losses.mean() == pytest.approx(full, rel=1e-5)
    assert 100 * errs.mean() == pytest.approx(evaluate(net, x, y))


def test_training_is_deterministic_and_learns() -> None:
    x, y = _data(512)
    task = Task(train=(x, y), val=_data(256, 1))
    a, b = _net(), _net()
    before = evaluate(a, task, split="val")
    cfg = TrainConfig(epochs=5, lr=1e-2, seed=3)
    train(a, task, cfg)
    train(b, task, cfg)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert evaluate(a, task, split="val") < before - 10


def test_dataset_and_loader_train() -> None:
    x, y = _data(300)
    for form in (DictDS(x, y), DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64, shuffle=True)):
        net = _net()
        rep = train(net, Task(train=form, val=(x, y)), TrainConfig(epochs=2, lr=1e-2))
        assert rep.steps > 0 and len(rep.epoch_losses) == 2


def test_custom_loss_metric_and_batch_fn() -> None:
    x, y = _data()
    calls = []

    def metric(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.zeros(len(t))

    task = Task(train=[(x, y, "extra")], val=[{"a": x, "b": y}], metric=metric,
                batch_fn=lambda item: (item["a"], item["b"]) if isinstance(item, dict) else (item[0], item[1]))
    assert evaluate(_net(), task, split="val") == 0.0 and calls


def test_distillation_changes_training() -> None:
    x, y = _data(256)
    teacher = _net(5)
    a, b = _net(), _net()
    train(a, (x, y), TrainConfig(epochs=1, lr=1e-2))
    train(b, (x, y), TrainConfig(epochs=1, lr=1e-2, distill=0.9), teacher=teacher)
    assert not torch.equal(a[0].weight, b[0].weight)


def test_bad_inputs() -> None:
    x, y = _data()
    with pytest.raises(InputError):
        as_source((x, y[:10]))
    with pytest.raises(InputError):
        as_source("nope")
    with pytest.raises(InputError, match="validation"):
        as_task((x, y))
    with pytest.raises(InputError, match="no test"):
        Task(train=(x, y), val=(x, y)).source("test")
    with pytest.raises(InputError, match="batch"):
        evaluate(_net(), [object()])
    with pytest.raises(InputError):
        TrainConfig(distill=2.0).validate()


def test_split_halves_are_disjoint() -> None:
    x, y = _data(101)
    a, b = as_source((x, y)).split(2)
    assert len(a) + len(b) == 101
    assert torch.equal(torch.cat([a.obj[1], b.obj[1]]), torch.from_numpy(y))
    with pytest.raises(InputError):  # a loader that transforms its batches cannot be addressed
        as_source(DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), collate_fn=lambda b: b)).split(2)


def test_plain_tensor_loader_is_read_as_its_tensors() -> None:
    x, y = _data(101)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for shuffle in (False, True):
        src = as_source(DataLoader(ds, batch_size=16, shuffle=shuffle))
        assert src.kind == "arrays" and src.batch_size == 16
        assert src.steps_per_epoch(128) == 7  # the loader's batch size, not the config's
        batch = next(src.stream(128, seed=0))
        assert batch[0].shape[0] == 16
        a, b = src.split(2)  # addressable, so the confirmation split works
        assert a.batch_size == 16 and len(a) + len(b) == 101
    # anything a loader adds keeps it a loader: drop_last, a batch_fn, float targets, a sampler of its own
    assert as_source(DataLoader(ds, batch_size=16, drop_last=True)).kind == "loader"
    assert as_source(DataLoader(ds, batch_size=16), batch_fn=lambda b: (b[0], b[1])).kind == "loader"
    floats = TensorDataset(torch.from_numpy(x), torch.from_numpy(y).float())
    assert as_source(DataLoader(floats, batch_size=16)).kind == "loader"
    sub = torch.utils.data.SubsetRandomSampler(range(50))
    assert as_source(DataLoader(ds, batch_size=16, sampler=sub)).kind == "loader"
