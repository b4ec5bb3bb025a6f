"""Training leaves no process-global setting changed, and progress reaches the user without any
logging set-up."""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weightless.training import TrainConfig, train  # noqa: E402
from weightless.training.say import say  # noqa: E402
from weightless.training.task import as_source  # noqa: E402

F = torch.nn.functional


def _data(n: int = 64):
    g = np.random.default_rng(0)
    x = g.normal(size=(n, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_train_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    try:
        train(torch.nn.Linear(5, 2), _data(), TrainConfig(epochs=1, threads=target))
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


def test_say_prints_to_stderr_without_logging_setup(capsys, monkeypatch) -> None:
    log = logging.getLogger("weightless")
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "propagate", False)
    say("hello progress")
    assert "hello progress" in capsys.readouterr().err


def test_source_slice_takes_a_contiguous_range() -> None:
    src = as_source(_data(10))
    part = src.slice(2, 7)
    assert len(part) == 5 and np.array_equal(part.obj[0].numpy(), src.obj[0].numpy()[2:7])
    with pytest.raises(Exception, match="cannot take"):
        src.slice(5, 5)


def test_conv_kernels_train_channels_last_and_come_back_contiguous() -> None:
    model = torch.nn.Sequential(torch.nn.Unflatten(1, (2, 4, 4)), torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(),
                                torch.nn.Linear(12, 2))
    x = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    kernel = model[1].weight
    assert not kernel.is_contiguous(memory_format=torch.channels_last)
    seen = []
    train(model, (x, y), TrainConfig(epochs=1, batch_size=8),
          before_step=lambda i: seen.append(kernel.is_contiguous(memory_format=torch.channels_last)))
    assert seen and all(seen)
    assert kernel.is_contiguous() and kernel.grad is not None and kernel.grad.is_contiguous()


def test_one_channel_convolution_sees_a_channels_last_input_and_no_hook_stays() -> None:
    from weightless.training.train_steps import conv_layout

    conv = torch.nn.Conv2d(1, 3, 3)
    model = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 6, 6)), conv, torch.nn.Flatten(), torch.nn.Linear(48, 2))
    x = np.random.default_rng(2).normal(size=(16, 36)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    seen = []
    probe = conv.register_forward_hook(lambda m, a, out: seen.append((a[0].stride()[1], out.is_contiguous(memory_format=torch.channels_last))))
    train(model, (x, y), TrainConfig(epochs=1, batch_size=8))
    assert seen and all(s == 1 and cl for s, cl in seen)  # a channels-last view: channel stride 1
    assert not conv._forward_pre_hooks and conv.weight.is_contiguous()
    seen.clear()
    with torch.no_grad():
        plain = model(torch.from_numpy(x))
        with conv_layout([model], torch.device("cpu")) as layout:
            last = layout.call(model, torch.from_numpy(x))
    assert seen[0][0] == 36 and seen[1][0] == 1  # outside the block the input is as given
    assert torch.allclose(plain, last, atol=1e-5)
    probe.remove()


class _ViewNet(torch.nn.Module):
    """A third-party style CNN: ``x.view(n, -1)`` after the convolutions (raises on a
    channels-last tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 4, 3), torch.nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x.reshape(-1, 1, 12, 12))))), 2)
        return self.fc(x.view(x.shape[0], -1))


def test_a_model_that_needs_the_usual_layout_trains_and_scores_as_usual() -> None:
    from weightless.training import evaluate

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 144)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = _ViewNet()
    from weightless.training.train_steps import ConvLayout

    layout = ConvLayout([model], torch.device("cpu"))
    with pytest.raises(RuntimeError, match="view"):  # what the layout alone does to this model
        model(torch.from_numpy(x))
    layout.undo()
    report = train(model, (x, y), TrainConfig(epochs=1, batch_size=16))
    assert report.steps == 4
    err = evaluate(model, x, y)
    assert 0.0 <= err <= 100.0
    assert model.c2.weight.is_contiguous() and not model.c1._forward_pre_hooks


def test_a_teacher_that_needs_the_usual_layout_does_not_stop_distillation() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 144)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    student = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 12, 12)), torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                  torch.nn.Linear(200, 2))
    report = train(student, (x, y), TrainConfig(epochs=1, batch_size=16, distill=0.5), teacher=_ViewNet().eval())
    assert report.steps == 4
