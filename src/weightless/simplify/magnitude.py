"""Magnitude pruning with retraining (Han et al., 2015), shaped like ``torch.ao.pruning``.

A :class:`MagnitudePruner` is configured with target nonzero fractions keyed by fully qualified
tensor names (``{"encoder.0.weight": 0.05}``). Each :meth:`MagnitudePruner.step` recomputes the masks
for the next point of a geometric schedule (1 -> target over ``steps`` steps), keeping exactly
``round(fraction * numel)`` weights of largest magnitude (ties broken by position, so the result
is deterministic). :func:`prune_magnitude` alternates prune and masked retraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..training.loop import DataLike, TrainConfig, train

__all__ = ["topk_mask", "MagnitudePruner", "PruneSchedule", "PruneState", "prune_magnitude", "resume_point", "get_param"]


def get_param(model: nn.Module, name: str) -> torch.Tensor:
    """Return the tensor called ``name`` (e.g. "head.weight") in ``model``.

    Raises:
        InputError: no such parameter.
    """
    params = dict(model.named_parameters())
    if name not in params:
        raise InputError(f"model has no parameter {name!r}; it has {sorted(params)}")
    return params[name]


def topk_mask(weight: torch.Tensor | np.ndarray, nonzero: float, score: np.ndarray | None = None) -> torch.Tensor:
    """Return a float 0/1 mask keeping exactly ``round(nonzero * numel)`` entries (at least 1).

    Entries with the largest ``score`` (default ``|weight|``) are kept; ties go to the lower flat
    index. The mask has the shape of ``weight``.

    Raises:
        InputError: ``nonzero`` outside (0, 1].
    """
    if not (0.0 < float(nonzero) <= 1.0):
        raise InputError(f"nonzero fraction must be in (0, 1], got {nonzero}")
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    s = np.abs(w).ravel().astype(np.float64) if score is None else np.asarray(score, dtype=np.float64).ravel()
    keep = max(1, int(round(float(nonzero) * s.size)))
    order = np.argsort(-s, kind="stable")[:keep]
    m = np.zeros(s.size, dtype=np.float32)
    m[order] = 1.0
    return torch.from_numpy(m.reshape(w.shape))


class MagnitudePruner:
    """Layer-wise magnitude pruner: ``prepare(model)``, ``step()``, ``masks``, ``squash_mask()``.

    Args:
        config: fully qualified tensor name -> target nonzero fraction in (0, 1].
        steps: number of :meth:`step` calls to reach the targets (geometric schedule).

    Raises:
        InputError: bad fractions or step count.
    """

    def __init__(self, config: Mapping[str, float], steps: int = 1, start: Mapping[str, float] | None = None) -> None:
        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        for name, frac in config.items():
            if not (0.0 < float(frac) <= 1.0):
                raise InputError(f"nonzero fraction for {name} must be in (0, 1], got {frac}")
        self.config = dict(config)
        self.start = {n: float((start or {}).get(n, 1.0)) for n in self.config}
        self.steps = int(steps)
        self.done = 0
        self.model: nn.Module | None = None
        self.masks: dict[str, torch.Tensor] = {}

    def prepare(self, model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> None:
        """Attach to ``model`` (checks that every configured tensor exists), with ``masks`` (the
        pruned state the schedule starts from) or none."""
        for name in self.config:
            get_param(model, name)
        self.model = model
        self.masks = {n: (masks[n].clone() if masks is not None and n in masks else torch.ones_like(get_param(model, n)))
                      for n in self.config}

    def current_fraction(self, name: str) -> float:
        """Nonzero fraction the masks of ``name`` hold after the steps done so far (geometric from
        the start fraction, 1 unless given, to the target)."""
        a, b = self.start[name], float(self.config[name])
        return a * (b / a) ** (self.done / self.steps)

    def step(self) -> dict[str, torch.Tensor]:
        """Advance the schedule one step, recompute and apply the masks; return them.

        Raises:
            InputError: called before :meth:`prepare` or after the last step.
        """
        if self.model is None:
            raise InputError("call prepare(model) before step()")
        if self.done >= self.steps:
            raise InputError(f"all {self.steps} pruning steps are done")
        self.done += 1
        with torch.no_grad():
            for name in self.config:
                p = get_param(self.model, name)
                frac = self.current_fraction(name)
                # Already-pruned weights are zero, so they are never preferred over survivors.
                self.masks[name] = topk_mask(p * self.masks[name], frac)
                p.mul_(self.masks[name])
        return self.masks

    def squash_mask(self) -> None:
        """Make the masks permanent: masked weights are set to exactly zero."""
        if self.model is None:
            return
        with torch.no_grad():
            for name, m in self.masks.items():
                get_param(self.model, name).mul_(m)


@dataclass(frozen=True)
class PruneState:
    """The parameters and masks of a model after one step of a pruning schedule and its
    retraining, with each pruned tensor's nonzero fraction: where a gentler schedule can start
    instead of starting again from the dense model."""

    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    fractions: dict[str, float]

    def covers(self, targets: Mapping[str, float]) -> bool:
        """Whether every target tensor is pruned here, and no further than its target."""
        return all(n in self.fractions and self.fractions[n] >= float(f) - 1e-12 for n, f in targets.items())


def resume_point(states: list[PruneState], targets: Mapping[str, float]) -> PruneState | None:
    """The state of ``states`` closest to ``targets`` (the least log-distance, the largest
    over the tensors) that :meth:`PruneState.covers` them; None when none does."""
    ok = [st for st in states if st.covers(targets)]
    if not ok:
        return None
    return min(ok, key=lambda st: max(math.log(st.fractions[n] / float(f)) for n, f in targets.items()))


@dataclass(frozen=True)
class PruneSchedule:
    """Iterative pruning: ``steps`` prune steps, each followed by ``retrain``; then ``final``."""

    steps: int = 3
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, lr=5e-4))
    final: TrainConfig | None = None


def prune_magnitude(
    model: nn.Module,
    data: DataLike,
    targets: Mapping[str, float],
    schedule: PruneSchedule = PruneSchedule(),
    *,
    progress: bool = False,
    start: PruneState | None = None,
    record: list[PruneState] | None = None,
) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place to ``targets`` (name -> nonzero fraction) with retraining.

    With ``start`` (a state of an earlier run on the same model that covers the targets) the
    model takes that state's parameters and masks, and the schedule goes on from there with as
    many steps as the full schedule to ``targets`` spends on that stretch (at least one). With
    ``record`` the state after each step's retraining is appended to it.

    Returns:
        The final masks (name -> float 0/1 tensor); masked weights are exactly zero.

    Raises:
        InputError: unknown tensor names, bad fractions, or a ``start`` that does not cover the targets.
    """
    steps = schedule.steps
    if start is not None:
        if not start.covers(targets):
            raise InputError(f"the pruned state {start.fractions} does not cover the targets {dict(targets)}")
        steps = max(1, max(round(schedule.steps * math.log(start.fractions[n] / float(f)) / -math.log(float(f)))
                           if float(f) < 1 else 0 for n, f in targets.items()))
        model.load_state_dict(start.state)
    pruner = MagnitudePruner(targets, steps=steps, start=start.fractions if start is not None else None)
    pruner.prepare(model, start.masks if start is not None else None)
    for i in range(steps):
        masks = pruner.step()
        cfg = _with(schedule.retrain, progress, f"prune {i + 1}/{steps}", i)
        train(model, data, cfg, masks=masks)
        if record is not None:
            record.append(PruneState({k: v.detach().clone() for k, v in model.state_dict().items()},
                                     {n: m.clone() for n, m in masks.items()},
                                     {n: float(m.mean()) for n, m in masks.items()}))
    if schedule.final is not None:
        train(model, data, _with(schedule.final, progress, "prune final", 99), masks=pruner.masks)
    pruner.squash_mask()
    return {n: m.clone() for n, m in pruner.masks.items()}


def _with(cfg: TrainConfig, progress: bool, desc: str, salt: int) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, progress=progress or cfg.progress, desc=desc, seed=cfg.seed + 1000 * (salt + 1))
