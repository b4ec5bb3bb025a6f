"""Seeded training and evaluation on any :class:`~weightless.training.task.Task`.

:func:`train` runs mini-batch training with Adam or SGD+momentum and an optional cosine learning
rate decay, progress (a tqdm bar on a terminal, periodic log lines otherwise), optional fixed
pruning masks (pruned weights stay exactly zero: their gradient is zeroed before each step and
the weights are re-masked after it), an optional subset of trainable parameters, optional
knowledge distillation from a teacher model, and hooks before/after each optimiser step (used by
Dynamic Network Surgery and trained quantization). Its set-up, step and loop are in
:mod:`.train_steps`.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from .say import say
from .task import EVAL_BATCH, Source, Task, as_source, default_metric
from .threads import apply_threads
from .train_steps import Stepper, checked_masks, conv_layout, optimizer_for, run_steps

__all__ = [
    "per_example",
    "model_device",
    "TrainConfig",
    "TrainReport",
    "train",
    "evaluate",
    "SoftTargets",
    "soft_targets",
]

#: Anything :func:`train` and :func:`evaluate` accept: a Task (its train / val split), a Source,
#: a DataLoader, a Dataset, an (x, y) pair, or an object with x and y (or train and val).
DataLike = Any

_log = logging.getLogger("weightless")


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: passes over the training split (fractions allowed, e.g. 0.5).
        batch_size: mini-batch size.
        lr: initial learning rate.
        optimizer: "adam" or "sgd" (SGD with Nesterov-free momentum ``momentum``).
        momentum: SGD momentum.
        weight_decay: L2 penalty (applied by the optimiser).
        schedule: "cosine" (decay to ``lr * final_lr_fraction``) or "constant".
        final_lr_fraction: final learning rate as a fraction of ``lr`` for "cosine".
        seed: seeds batch order and any torch randomness in the loop.
        threads: torch intra-op threads (None: the default set by :func:`set_threads`,
            initially :data:`.threads.DEFAULT_THREADS`).
        progress: show progress: a tqdm bar when stderr is a terminal, else a log line (logger
            "weightless", level INFO) every ``log_every`` seconds.
        desc: label of the progress bar.
        distill: weight of the distillation term when a teacher is given (0: plain loss).
        temperature: softmax temperature of the distillation term.
    """

    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    final_lr_fraction: float = 0.02
    seed: int = 0
    threads: int | None = None
    progress: bool = False
    desc: str = "train"
    distill: float = 0.0
    temperature: float = 2.0

    def validate(self) -> None:
        """Raise :class:`InputError` if a field is out of range."""
        if not (self.epochs > 0):
            raise InputError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0):
            raise InputError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be >= 1, got {self.threads}")
        if not 0.0 <= self.distill <= 1.0:
            raise InputError(f"distill must be in [0, 1], got {self.distill}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be > 0, got {self.temperature}")


@dataclass
class TrainReport:
    """What a training run did: number of steps, wall time, mean loss of each epoch."""

    steps: int = 0
    seconds: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SoftTargets:
    """A fixed teacher's outputs on every example of one training split of array data, in data
    order: distillation reads them instead of running the teacher on each batch (the teacher's
    forward pass is about a third of a distilled training step). Made by :func:`soft_targets`."""

    outputs: torch.Tensor
    ends: tuple[torch.Tensor, torch.Tensor]  # the split's first and last input, to check that train() gets the same data

    def matches(self, source: Source) -> bool:
        """Whether ``source`` looks like the data these outputs were computed on (array data of
        the same length, same first and last example)."""
        if source.kind != "arrays" or len(source) != int(self.outputs.shape[0]):
            return False
        x = source.obj[0]
        return bool(torch.equal(x[0], self.ends[0]) and torch.equal(x[-1], self.ends[1]))


def soft_targets(teacher: nn.Module, data: DataLike) -> "SoftTargets | nn.Module":
    """The outputs of ``teacher`` (in eval mode, no gradient) on every example of the training
    split of ``data`` when it is array data, as :class:`SoftTargets` for ``train(teacher=...)``;
    ``teacher`` itself for other data (a loader or dataset may transform examples at random, so
    its outputs cannot be reused).

    Raises:
        InputError: unreadable data.
    """
    source, task = _resolve(data, "train")
    if source.kind != "arrays":
        return teacher
    device = model_device(teacher, task)
    was_training = teacher.training
    teacher.eval()
    outs = []
    try:
        with torch.no_grad(), conv_layout([teacher], device) as layout:
            for xb, _ in source.ordered():
                outs.append(layout.call(teacher, _to_device(xb, device)).detach())
    finally:
        teacher.train(was_training)
    x = source.obj[0]
    return SoftTargets(torch.cat(outs), (x[0].clone(), x[-1].clone()))


def _resolve(data: DataLike, split: str) -> tuple[Source, Task | None]:
    """The source of ``split`` of ``data`` and the task it came from (None for bare data)."""
    if isinstance(data, Task):
        return data.source(split), data
    if not isinstance(data, (tuple, Source)) and hasattr(data, "train") and hasattr(data, "val"):
        return as_source(getattr(data, split)), None
    return as_source(data), None


def model_device(model: nn.Module, task: Task | None = None) -> torch.device:
    """The device batches go to: the task's, else that of the model's first parameter (CPU)."""
    if task is not None and task.device is not None:
        return torch.device(task.device)
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


class _Progress:
    """A tqdm bar on a terminal; elsewhere a log line every ``every`` seconds with an ETA."""

    def __init__(self, total: int, desc: str, every: float = 30.0) -> None:
        from tqdm.auto import tqdm

        self.total, self.desc, self.every = total, desc, every
        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, unit="step", disable=None)
        self.t0 = self.last = time.perf_counter()
        self.n = 0

    def update(self, loss: float | None) -> None:
        self.n += 1
        if not self.bar.disable:
            self.bar.update(1)
            if loss is not None and self.n % 50 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}")
            return
        now = time.perf_counter()
        if now - self.last >= self.every or self.n == self.total:
            self.last = now
            el = now - self.t0
            eta = el / self.n * (self.total - self.n)
            say(f"{self.desc}: step {self.n}/{self.total}, loss {loss if loss is not None else float('nan'):.4f}, "
                f"{el:.0f}s elapsed, ETA {eta:.0f}s")

    def close(self) -> None:
        self.bar.close()


def train(
    model: nn.Module,
    data: DataLike,
    cfg: TrainConfig = TrainConfig(),
    *,
    trainable: set[str] | None = None,
    masks: Mapping[str, torch.Tensor] | None = None,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    teacher: "nn.Module | SoftTargets | None" = None,
) -> TrainReport:
    """Train ``model`` in place on the training split of ``data`` (a Task, or bare training data).

    Args:
        trainable: names (as in ``model.named_parameters()``) of the parameters to update; the
            others are frozen for the run. None: all parameters.
        masks: parameter name -> 0/1 tensor of the parameter's shape. Masked-out entries are set
            to zero before training and stay exactly zero (gradient zeroed, re-masked each step).
        before_step: called with the step index after ``backward()``, before the optimiser step.
        after_step: called with the step index after the optimiser step (and re-masking).
        teacher: a model whose soft outputs are distilled into ``model`` with weight
            ``cfg.distill`` (ignored when ``cfg.distill`` is 0), or its outputs computed once
            by :func:`soft_targets` on the same training data.

    Returns:
        A :class:`TrainReport`.

    Raises:
        InputError: bad config, data, mask or parameter names.
    """
    cfg.validate()
    threads_before = torch.get_num_threads()
    try:
        apply_threads(cfg.threads)
        return _train(model, data, cfg, trainable, masks, before_step, after_step, teacher)
    finally:
        if torch.get_num_threads() != threads_before:  # no process-global setting left changed
            torch.set_num_threads(threads_before)


def _train(model: nn.Module, data: DataLike, cfg: TrainConfig, trainable: set[str] | None,
           masks: Mapping[str, torch.Tensor] | None, before_step: Callable[[int], None] | None,
           after_step: Callable[[int], None] | None, teacher: Any) -> TrainReport:
    source, task = _resolve(data, "train")
    loss_fn = task.loss_fn() if task is not None else F.cross_entropy
    device = model_device(model, task)
    named = dict(model.named_parameters())
    mask_t = checked_masks(named, trainable, masks)
    old_flags = {n: p.requires_grad for n, p in named.items()}
    opt = optimizer_for(named, mask_t, trainable, cfg)
    steps_per_epoch = source.steps_per_epoch(cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    distill = teacher is not None and cfg.distill > 0
    cached = None
    if distill and isinstance(teacher, SoftTargets):
        if not teacher.matches(source):
            raise InputError("soft targets were computed on other training data than train() was given")
        cached, teacher = teacher.outputs, None
    elif distill:
        teacher.eval()
    stepper = Stepper(model, opt, loss_fn, named, mask_t, teacher if distill else None, cfg, before_step, after_step, cached)
    report = TrainReport()
    bar = _Progress(total, cfg.desc) if cfg.progress else None
    t0 = time.perf_counter()
    model.train()
    try:
        with conv_layout([model, *([teacher] if isinstance(teacher, nn.Module) else [])], device) as layout:
            stepper.layout = layout
            report.steps = run_steps(stepper, source, device, total, steps_per_epoch, bar, report)
    finally:
        if bar is not None:
            bar.close()
        for nm, p in named.items():
            p.requires_grad_(old_flags[nm])
        model.eval()
    report.seconds = time.perf_counter() - t0
    return report


def _to_device(v: Any, device: torch.device) -> Any:
    from .task import _to

    return _to(v, device)


@torch.no_grad()
def per_example(model: nn.Module, data: DataLike, split: str = "val", *, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Score ``model`` on one split: per-example error (metric, float64 in [0, 1]) and loss.

    ``data`` is a Task (``split`` picks the split) or bare data (scored as it is).

    Returns:
        ``(errors, losses)``, two float64 arrays with one entry per example, in data order.

    Raises:
        InputError: unreadable data or a missing split.
    """
    source, task = _resolve(data, split)
    metric = task.metric_fn() if task is not None else default_metric
    loss_fn = task.loss_fn() if task is not None else F.cross_entropy
    device = model_device(model, task)
    was_training = model.training
    model.eval()
    errs, losses = [], []
    try:
        with conv_layout([model], device) as layout:
            for xb, yb in source.ordered(batch_size):
                xb, yb = _to_device(xb, device), _to_device(yb, device)
                out = layout.call(model, xb)
                errs.append(torch.as_tensor(metric(out, yb), dtype=torch.float64).reshape(-1).cpu())
                try:
                    l = loss_fn(out, yb, reduction="none")
                except TypeError:  # a user loss without ``reduction``: its batch mean, per example
                    l = loss_fn(out, yb).expand(errs[-1].shape[0])
                losses.append(l.detach().to(torch.float64).reshape(-1).cpu())
    finally:
        model.train(was_training)
    if not errs:
        raise InputError(f"the {split} data yielded no batches")
    return torch.cat(errs).numpy(), torch.cat(losses).numpy()


def evaluate(model: nn.Module, x: DataLike, y: Any | None = None, *, split: str = "test", batch_size: int = EVAL_BATCH) -> float:
    """Return the error of ``model`` in percent (0..100): the task's metric (top-1 error by default).

    ``x`` is a Task (``split`` picks the split, "test" by default), bare data (a DataLoader,
    Dataset, object with x and y, ...), or arrays of inputs with labels ``y``.

    Raises:
        InputError: missing labels, mismatched sizes or a missing split.
    """
    data = (x, y) if y is not None else x
    if y is None and isinstance(x, (np.ndarray, torch.Tensor)):
        raise InputError("evaluate needs labels: pass (x, y), a Split, a DataLoader or a Task")
    errs, _ = per_example(model, data, split, batch_size=batch_size)
    return 100.0 * float(errs.mean())
