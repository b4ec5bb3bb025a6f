"""The parts of :func:`weightless.training.loop.train`: the parameter and mask set-up
(:func:`checked_masks`, :func:`optimizer_for`), one optimiser step (:class:`Stepper`) and the
seeded loop with its epoch bookkeeping (:func:`run_steps`). ``cfg`` is a
:class:`~.loop.TrainConfig` throughout (typed ``Any`` here: this module imports nothing of
:mod:`.loop`, which imports it)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from .task import Source, _to


def distill_loss(out: torch.Tensor, teacher_out: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distillation term: KL divergence of the softened outputs, times ``temperature**2``."""
    t = temperature
    return F.kl_div(F.log_softmax(out / t, dim=1), F.softmax(teacher_out / t, dim=1), reduction="batchmean") * (t * t)


def _one_channel_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: a contiguous one-channel image batch as a channels-last view."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1 or not x.is_contiguous():
        return None
    n, _, h, w = x.shape
    return (x.view(n, h, w, 1).permute(0, 3, 1, 2), *args[1:])


class ConvLayout:
    """Convolutions channels-last on a CPU, for the duration of a :func:`conv_layout` block.

    The contiguous 4-D parameters (convolution kernels) of ``modules`` are held channels-last,
    and a convolution with one input channel sees its input as a channels-last view. With one
    channel the two layouts have the same strides, so oneDNN would otherwise pick the slow one:
    LeNet5's first convolution and pooling ran about 1.7x faster per training step and per
    scored batch on 2 cores. Kernels channels-last alone made a training step 1.3-1.8x faster
    on a BatchNorm CNN with a channels-last input, scoring 1.25x (oneDNN's kernels).

    A model that needs the usual layout (``x.view(n, -1)`` after a convolution raises on a
    channels-last tensor) is run through :meth:`call`: when its first forward raises
    ``RuntimeError``, the layout is undone and the forward runs again as usual."""

    def __init__(self, modules: list[nn.Module], device: torch.device) -> None:
        self.four: list[nn.Parameter] = []
        self.hooks: list[Any] = []
        self.checked: set[int] = set()  # the forwards that already ran once (id)
        if device.type != "cpu":
            return
        seen: set[int] = set()
        for model in modules:
            for p in model.parameters():
                if (id(p) not in seen and p.dim() == 4 and p.is_contiguous()
                        and not p.is_contiguous(memory_format=torch.channels_last)):
                    seen.add(id(p))
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
                    self.four.append(p)
            self.hooks += [m.register_forward_pre_hook(_one_channel_last) for m in model.modules()
                           if isinstance(m, nn.Conv2d) and m.in_channels == 1]

    def undo(self) -> None:
        """Back to the usual layout (parameters and gradients contiguous, no hooks); idempotent."""
        for h in self.hooks:
            h.remove()
        for p in self.four:
            p.data = p.data.contiguous()
            if p.grad is not None:
                p.grad = p.grad.contiguous()
        self.hooks, self.four = [], []

    def call(self, forward: Callable[..., Any], *args: Any) -> Any:
        """``forward(*args)``; when the first call of a forward (the model, a teacher) raises
        ``RuntimeError`` under the layout, the layout is undone and it runs again (a second
        failure is the model's own and propagates)."""
        if id(forward) in self.checked or not (self.four or self.hooks):
            return forward(*args)
        try:
            out = forward(*args)
        except RuntimeError:
            self.undo()
            out = forward(*args)
        self.checked.add(id(forward))
        return out


@contextmanager
def conv_layout(modules: list[nn.Module], device: torch.device) -> Iterator[ConvLayout]:
    """A :class:`ConvLayout` of ``modules`` for the block; nothing is left changed after it
    (gradients included). Run the forwards through its :meth:`ConvLayout.call`."""
    layout = ConvLayout(modules, device)
    try:
        yield layout
    finally:
        layout.undo()


def checked_masks(named: dict[str, nn.Parameter], trainable: set[str] | None,
                  masks: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Check the trainable names and the masks against the model's parameters; return the masks
    in each parameter's dtype and device.

    Raises:
        InputError: unknown parameter names, a mask for an unknown parameter or of another shape.
    """
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
        mask_t[name] = m.to(dtype=named[name].dtype, device=named[name].device)
    return mask_t


def optimizer_for(named: dict[str, nn.Parameter], mask_t: dict[str, torch.Tensor], trainable: set[str] | None,
                  cfg: Any) -> torch.optim.Optimizer:
    """Freeze the parameters outside ``trainable``, zero the masked-out weights, and return the
    optimiser of the trainable parameters (in name order).

    Raises:
        InputError: no trainable parameters.
    """
    names = set(named) if trainable is None else set(trainable)
    for n, p in named.items():
        p.requires_grad_(n in names)
    params = [named[n] for n in sorted(names)]
    if not params:
        raise InputError("no trainable parameters")
    with torch.no_grad():
        for n, m in mask_t.items():
            named[n].mul_(m)
    # the fused kernels: on 2 cores an Adam step of LeNet-300-100 took 0.17 ms against 2.1 ms
    # for the default per-tensor loop (a quarter of LeNet-300-100's compress time)
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params) else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused)


@dataclass
class Stepper:
    """One optimiser step of :func:`.loop.train`: learning rate, loss (with distillation from
    ``teacher`` when set), backward, masked gradients, hooks, step, re-masking."""

    model: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: Callable[..., torch.Tensor]
    named: dict[str, nn.Parameter]
    masks: dict[str, torch.Tensor]
    teacher: nn.Module | None  # None: no distillation
    cfg: Any
    before_step: Callable[[int], None] | None
    after_step: Callable[[int], None] | None
    cached: torch.Tensor | None = None  # the teacher's outputs per training example (SoftTargets)
    layout: ConvLayout | None = None  # runs the forwards (see conv_layout)

    def _forward(self, module: nn.Module, xb: Any) -> Any:
        return module(xb) if self.layout is None else self.layout.call(module, xb)

    def set_lr(self, step: int, total: int) -> None:
        """The cosine schedule's learning rate at ``step`` of ``total`` (unchanged if constant)."""
        cfg = self.cfg
        if cfg.schedule == "cosine":
            frac = step / total
            scale = cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * frac))
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * scale

    def step(self, xb: Any, yb: Any, step: int, tout: torch.Tensor | None = None) -> float:
        """Train on one batch (``tout``: the teacher's outputs on it, when cached); return its loss."""
        cfg, named = self.cfg, self.named
        self.opt.zero_grad(set_to_none=True)
        out = self._forward(self.model, xb)
        loss = self.loss_fn(out, yb)
        if tout is None and self.teacher is not None:
            with torch.no_grad():
                tout = self._forward(self.teacher, xb)
        if tout is not None:
            loss = (1 - cfg.distill) * loss + cfg.distill * distill_loss(out, tout, cfg.temperature)
        loss.backward()
        for nm, m in self.masks.items():
            g = named[nm].grad
            if g is not None:
                g.mul_(m)
        if self.before_step is not None:
            self.before_step(step)
        self.opt.step()
        if self.masks:
            with torch.no_grad():
                for nm, m in self.masks.items():
                    named[nm].mul_(m)
        if self.after_step is not None:
            self.after_step(step)
        return float(loss.detach())


def run_steps(stepper: Stepper, source: Source, device: torch.device, total: int, steps_per_epoch: int,
              bar: Any, report: Any) -> int:
    """The seeded loop of ``total`` steps; append each epoch's mean loss to ``report`` (a
    :class:`~.loop.TrainReport`) and update ``bar`` (a progress bar or None). Return the number
    of steps taken."""
    cfg = stepper.cfg
    step = 0
    running = 0.0
    count = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for batch in source.stream(cfg.batch_size, cfg.seed, stepper.cached):
            if step >= total:
                break
            xb, yb = _to(batch[0], device), _to(batch[1], device)
            stepper.set_lr(step, total)
            running += stepper.step(xb, yb, step, batch[2] if len(batch) > 2 else None)
            count += 1
            step += 1
            if bar is not None:
                bar.update(running / max(count, 1))
            if step % steps_per_epoch == 0 or step == total:
                report.epoch_losses.append(running / max(count, 1))
                running, count = 0.0, 0
    return step
