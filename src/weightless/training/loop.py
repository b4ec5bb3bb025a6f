"""Seeded, single-process CPU training and evaluation.

:func:`train` runs mini-batch training with Adam or SGD+momentum and an optional cosine learning
rate decay, a progress bar on stderr, optional fixed pruning masks (pruned weights stay exactly
zero: their gradient is zeroed before each step and the weights are re-masked after it), an
optional subset of trainable parameters, and hooks before/after each optimiser step (used by
Dynamic Network Surgery and trained quantization).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.mnist import MNIST, Split
from ..errors import InputError

__all__ = [
    "DEFAULT_THREADS",
    "TrainConfig",
    "TrainReport",
    "train",
    "evaluate",
    "set_threads",
]

#: Default torch intra-op thread count for training (override with WEIGHTLESS_THREADS).
DEFAULT_THREADS = int(os.environ.get("WEIGHTLESS_THREADS", "1") or 1)

DataLike = Union[MNIST, Split, tuple]


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
            initially :data:`DEFAULT_THREADS`).
        progress: show a tqdm progress bar on stderr.
        desc: label of the progress bar.
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


@dataclass
class TrainReport:
    """What a training run did: number of steps, wall time, mean loss of each epoch."""

    steps: int = 0
    seconds: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)


_current_default = [DEFAULT_THREADS]


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count and make it the default of later :func:`train` calls
    whose config has ``threads=None`` (None here: :data:`DEFAULT_THREADS`). Return the count.

    Raises:
        InputError: ``threads`` < 1.
    """
    n = DEFAULT_THREADS if threads is None else int(threads)
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    _current_default[0] = n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _apply_threads(threads: int | None) -> None:
    n = _current_default[0] if threads is None else int(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _as_xy(data: DataLike) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, MNIST):
        data = data.train
    if isinstance(data, Split):
        x, y = data.x, data.y
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = data
    else:
        raise InputError(
            f"data must be an MNIST, a Split or an (x, y) pair, got {type(data).__name__}"
        )
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise InputError(f"x and y must hold the same nonzero number of rows, got {x.shape[0]} and {y.shape[0]}")
    return x, y


def train(
    model: nn.Module,
    data: DataLike,
    cfg: TrainConfig = TrainConfig(),
    *,
    trainable: set[str] | None = None,
    masks: Mapping[str, torch.Tensor] | None = None,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> TrainReport:
    """Train ``model`` in place on ``data`` (an MNIST: its train split; a Split; or (x, y)).

    Args:
        trainable: names (as in ``model.named_parameters()``) of the parameters to update; the
            others are frozen for the run. None: all parameters.
        masks: parameter name -> 0/1 tensor of the parameter's shape. Masked-out entries are set
            to zero before training and stay exactly zero (gradient zeroed, re-masked each step).
        before_step: called with the step index after ``backward()``, before the optimiser step.
        after_step: called with the step index after the optimiser step (and re-masking).

    Returns:
        A :class:`TrainReport`.

    Raises:
        InputError: bad config, data, mask or parameter names.
    """
    cfg.validate()
    _apply_threads(cfg.threads)
    x, y = _as_xy(data)
    named = dict(model.named_parameters())
    names = set(named) if trainable is None else set(trainable)
    unknown = names - set(named)
    if unknown:
        raise InputError(f"unknown parameter names {sorted(unknown)}; model has {sorted(named)}")
    mask_t: dict[str, torch.Tensor] = {}
    for name, m in (masks or {}).items():
        if name not in named:
            raise InputError(f"mask for unknown parameter {name!r}")
        if tuple(m.shape) != tuple(named[name].shape):
            raise InputError(f"mask for {name} has shape {tuple(m.shape)}, expected {tuple(named[name].shape)}")
        mask_t[name] = m.to(dtype=named[name].dtype)
    old_flags = {n: p.requires_grad for n, p in named.items()}
    for n, p in named.items():
        p.requires_grad_(n in names)
    params = [named[n] for n in sorted(names)]
    if not params:
        raise InputError("no trainable parameters")
    with torch.no_grad():
        for n, m in mask_t.items():
            named[n].mul_(m)
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n = x.shape[0]
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    rng = np.random.default_rng(cfg.seed)
    report = TrainReport()
    bar: Any = None
    if cfg.progress:
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (logs stay readable)
        bar = tqdm(total=total, desc=cfg.desc, file=sys.stderr, leave=False, unit="step", disable=None)
    t0 = time.perf_counter()
    model.train()
    step = 0
    running = 0.0
    count = 0
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            while step < total:
                perm = torch.from_numpy(rng.permutation(n))
                for start in range(0, n, bs):
                    if step >= total:
                        break
                    if cfg.schedule == "cosine":
                        frac = step / total
                        scale = cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * frac))
                        for g in opt.param_groups:
                            g["lr"] = cfg.lr * scale
                    idx = perm[start : start + bs]
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    loss.backward()
                    for nm, m in mask_t.items():
                        g = named[nm].grad
                        if g is not None:
                            g.mul_(m)
                    if before_step is not None:
                        before_step(step)
                    opt.step()
                    if mask_t:
                        with torch.no_grad():
                            for nm, m in mask_t.items():
                                named[nm].mul_(m)
                    if after_step is not None:
                        after_step(step)
                    running += float(loss.detach())
                    count += 1
                    step += 1
                    if bar is not None:
                        bar.update(1)
                        if step % 50 == 0:
                            bar.set_postfix(loss=f"{running / max(count, 1):.4f}")
                    if step % steps_per_epoch == 0 or step == total:
                        report.epoch_losses.append(running / max(count, 1))
                        running, count = 0.0, 0
    finally:
        if bar is not None:
            bar.close()
        for nm, p in named.items():
            p.requires_grad_(old_flags[nm])
        model.eval()
    report.steps = step
    report.seconds = time.perf_counter() - t0
    return report


@torch.no_grad()
def evaluate(model: nn.Module, x: Any, y: Any | None = None, *, batch_size: int = 2000) -> float:
    """Return the classification error of ``model`` in percent (0..100).

    ``x``/``y`` are arrays or tensors; alternatively pass a :class:`Split` as ``x`` alone.

    Raises:
        InputError: missing labels or mismatched sizes.
    """
    if y is None:
        if not isinstance(x, Split):
            raise InputError("evaluate needs labels: pass (x, y) or a Split")
        x, y = x.x, x.y
    xt, yt = _as_xy((x, y))
    was_training = model.training
    model.eval()
    wrong = 0
    for start in range(0, xt.shape[0], batch_size):
        pred = model(xt[start : start + batch_size]).argmax(dim=1)
        wrong += int((pred != yt[start : start + batch_size]).sum())
    model.train(was_training)
    return 100.0 * wrong / xt.shape[0]
