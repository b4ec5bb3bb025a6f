"""Dynamic Network Surgery (Guo, Yao & Chen, NIPS 2016).

Each pruned layer keeps its dense weights ``W`` and a 0/1 mask ``T``; the forward pass uses
``W * T`` while the gradient is applied to *all* of ``W`` (straight-through on the mask), so a
pruned weight keeps learning and can be spliced back. With probability
``p(step) = (1 + gamma * step) ** -power`` after an optimiser step, the masks are updated:

* ``T = 0`` where ``|W| < a`` (pruning), ``T = 1`` where ``|W| > b`` (splicing), unchanged in
  between, with ``a = (1 - band) * t`` and ``b = (1 + band) * t``.

In the original, ``t = mean(|W|) + c * std(|W|)`` with a hand-tuned ``c`` per layer. To hit a
prescribed sparsity we set ``t`` at the quantile of ``|W|`` that keeps the scheduled fraction
(equivalently, ``c`` is recalibrated from the layer's statistics at each update); the scheduled
fraction decays from 1 to the target along a cubic ramp. After surgery, an exact top-k cut
(preferring weights that are in the mask) hits the target count and a masked retraining
follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import InputError
from ..training.loop import DataLike, TrainConfig, train
from .magnitude import get_param, topk_mask

__all__ = ["DNSConfig", "DNSSurgeon", "prune_dns"]


class _MaskSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return w * m

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        return g, None


class _STEMask(nn.Module):
    """Parametrization ``W -> W * mask`` whose gradient passes through to all of ``W``."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _MaskSTE.apply(w, self.mask)


@dataclass(frozen=True)
class DNSConfig:
    """Dynamic Network Surgery schedule.

    Attributes:
        surgery: training during which masks are updated.
        retrain: masked retraining after the final exact cut (None: skip).
        ramp: fraction of the surgery steps over which the kept fraction decays to the target.
        band: hysteresis half-width: prune below ``(1-band)*t``, splice above ``(1+band)*t``.
        gamma, power: mask-update probability ``(1 + gamma * step) ** -power``.
        seed: seeds the mask-update coin flips.
    """

    surgery: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=1e-3))
    retrain: TrainConfig | None = field(default_factory=lambda: TrainConfig(epochs=3, lr=3e-4))
    ramp: float = 0.6
    band: float = 0.1
    gamma: float = 1e-4
    power: float = 1.0
    seed: int = 0


def _split(name: str) -> tuple[str, str]:
    mod, _, attr = name.rpartition(".")
    return mod, attr


class DNSSurgeon:
    """Holds the DNS masks of a model: :meth:`attach`, :meth:`update`, :meth:`detach`.

    Args:
        model: the network (modified in place).
        targets: fully qualified weight name -> final nonzero fraction in (0, 1].
        config: the schedule.
        total_steps: steps of the surgery phase (sets the ramp).

    Raises:
        InputError: unknown names or bad fractions.
    """

    def __init__(self, model: nn.Module, targets: Mapping[str, float], config: DNSConfig, total_steps: int) -> None:
        for name, frac in targets.items():
            get_param(model, name)
            if not (0.0 < float(frac) <= 1.0):
                raise InputError(f"nonzero fraction for {name} must be in (0, 1], got {frac}")
        self.model = model
        self.targets = dict(targets)
        self.config = config
        self.total_steps = max(1, int(total_steps))
        self.rng = np.random.default_rng(config.seed)
        self.attached = False
        self.updates = 0

    def attach(self) -> None:
        """Wrap every target weight in a straight-through mask (initially all ones)."""
        for name in self.targets:
            mod, attr = _split(name)
            module = self.model.get_submodule(mod)
            w = getattr(module, attr)
            parametrize.register_parametrization(module, attr, _STEMask(torch.ones_like(w)))
        self.attached = True

    def _dense(self, name: str) -> torch.Tensor:
        mod, attr = _split(name)
        return getattr(self.model.get_submodule(mod).parametrizations, attr).original

    def mask(self, name: str) -> torch.Tensor:
        """The current 0/1 mask of ``name``."""
        mod, attr = _split(name)
        return getattr(self.model.get_submodule(mod).parametrizations, attr)[0].mask

    def scheduled_fraction(self, name: str, step: int) -> float:
        """Kept fraction the thresholds aim at after ``step`` surgery steps (cubic ramp)."""
        ramp_steps = max(1, int(self.config.ramp * self.total_steps))
        r = min(1.0, step / ramp_steps)
        final = float(self.targets[name])
        return final + (1.0 - final) * (1.0 - r) ** 3

    @torch.no_grad()
    def update(self, step: int, force: bool = False) -> bool:
        """Maybe update the masks after surgery step ``step``; return whether it did.

        The update happens with probability ``(1 + gamma * step) ** -power`` (always if
        ``force``). Weights below ``a`` are pruned, weights above ``b`` are spliced back.
        """
        p = (1.0 + self.config.gamma * step) ** (-self.config.power)
        if not force and self.rng.random() >= p:
            return False
        for name in self.targets:
            w = self._dense(name).abs()
            frac = self.scheduled_fraction(name, step)
            n = w.numel()
            keep = max(1, int(round(frac * n)))
            if keep >= n:
                t = 0.0
            else:
                # t: the (n - keep)-th smallest |W|, i.e. keep ~`keep` weights above it.
                t = float(torch.kthvalue(w.flatten(), n - keep).values)
            a, b = (1.0 - self.config.band) * t, (1.0 + self.config.band) * t
            m = self.mask(name)
            m[w < a] = 0.0
            m[w > b] = 1.0
        self.updates += 1
        return True

    @torch.no_grad()
    def detach(self) -> dict[str, torch.Tensor]:
        """Cut to exactly the target counts, remove the parametrizations, zero the pruned weights.

        Weights currently in the mask are preferred; among them the largest ``|W|`` are kept.

        Returns:
            The final masks (name -> float 0/1 tensor).
        """
        final: dict[str, torch.Tensor] = {}
        for name, frac in self.targets.items():
            w = self._dense(name).detach()
            m = self.mask(name)
            absw = w.abs()
            score = (absw + m * (float(absw.max()) + 1.0)).cpu().numpy()
            final[name] = topk_mask(w, frac, score=score)
        for name in self.targets:
            mod, attr = _split(name)
            module = self.model.get_submodule(mod)
            dense = self._dense(name).detach().clone()
            parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
            p = getattr(module, attr)
            p.copy_(dense * final[name])
        self.attached = False
        return final


def prune_dns(
    model: nn.Module,
    data: DataLike,
    targets: Mapping[str, float],
    config: DNSConfig = DNSConfig(),
    *,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place with Dynamic Network Surgery to exactly ``targets``.

    Returns:
        The final masks (name -> float 0/1 tensor); masked weights are exactly zero.

    Raises:
        InputError: unknown tensor names or bad fractions.
    """
    from ..training.loop import _resolve

    steps_per_epoch = _resolve(data, "train")[0].steps_per_epoch(config.surgery.batch_size)
    total = max(1, int(round(config.surgery.epochs * steps_per_epoch)))
    surgeon = DNSSurgeon(model, targets, config, total)
    surgeon.attach()
    try:
        surgeon.update(0, force=True)
        cfg = replace(config.surgery, progress=progress or config.surgery.progress, desc="dns surgery")
        train(model, data, cfg, after_step=lambda s: surgeon.update(s + 1))
    finally:
        masks = surgeon.detach()
    if config.retrain is not None:
        cfg = replace(config.retrain, progress=progress or config.retrain.progress, desc="dns retrain", seed=config.retrain.seed + 7)
        train(model, data, cfg, masks=masks)
    return masks
