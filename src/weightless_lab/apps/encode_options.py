"""Command-line overrides of :class:`~weightless.pipeline.config.EncodeConfig`, shared by
``weightless compress`` and ``weightless reproduce``: each option given replaces one field of one
of its small configs; every default stays EncodeConfig's own (defined once, there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from weightless.pipeline.config import EncodeConfig

__all__ = ["override_encode"]


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def override_encode(enc: EncodeConfig, *, t: Mapping[str, int] | None = None, t_max: int | None = None,
                    construction: str | None = None, c: float | None = None, shards: int | None = None,
                    seed_trials: int | None = None, seed: int | None = None, tolerance: float | None = None,
                    retrain_epochs: float | None = None, retrain_lr: float | None = None,
                    smaller_k: tuple[int, ...] | None = None, harder: tuple[float, ...] | None = None) -> EncodeConfig:
    """``enc`` with every override that is not None: ``t``, ``t_max``, ``construction``, ``c``,
    ``shards``, ``seed_trials``, ``smaller_k`` and ``harder`` replace those of ``enc.filters``; ``tolerance`` that of
    ``enc.rule``; ``retrain_epochs`` (0: no retraining) and ``retrain_lr`` those of
    ``enc.retraining.train``; ``seed`` seeds both the filters and the retraining."""
    filters = replace(enc.filters, **_given(t=t, t_max=t_max, construction=construction, c=c, shards=shards,
                                            seed_trials=seed_trials, seed=seed, smaller_k=smaller_k,
                                            harder=harder))
    train = enc.retraining.train
    if retrain_epochs == 0:
        train = None
    elif train is not None:
        train = replace(train, **_given(epochs=retrain_epochs, lr=retrain_lr, seed=seed))
    return replace(enc, rule=replace(enc.rule, **_given(tolerance=tolerance)), filters=filters,
                   retraining=replace(enc.retraining, train=train))
