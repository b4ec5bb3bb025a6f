"""Every default of Algorithm 1 in one place: :class:`EncodeConfig` (encoding, retraining, t
decision) and :class:`CompressConfig` (simplification recipe + encoding + accuracy budget).

The Python API (:func:`weightless.compress`), ``weightless compress`` and ``weightless
reproduce`` all start from these defaults; nothing else defines a retraining learning rate,
an epoch count, a tolerance, a number of seed trials or a t range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import InputError

__all__ = ["EncodeConfig", "CompressConfig", "RETRAIN_MODES", "T_RULES", "SEED_SEARCHES", "AUTO_COMPACT_MAX_POSITIONS"]

#: Largest layer (positions) for which construction="auto" picks the compact construction.
AUTO_COMPACT_MAX_POSITIONS = 1 << 24

#: How pending (not yet encoded) simplified layers are retrained after an earlier layer is encoded:
#: "masked": pruned weights stay zero, surviving weights are free; each layer is clustered again
#: (same k and initialisation) right before its own encoding (the paper's Figure 3).
#: "centroid": only their k shared values move (assignments fixed); no re-clustering.
#: "dense": Figure 3 read literally: their masks are lifted (all weights free, dense capacity to
#: absorb the errors); each is pruned again to its own nonzero count by magnitude, retrained
#: under the new mask for ``reprune_epochs`` and clustered right before its own encoding.
RETRAIN_MODES = ("masked", "centroid", "dense")

#: What the t rule compares on the validation data (see :attr:`EncodeConfig.t_rule`).
T_RULES = ("error", "loss")
#: How the filter seeds of a layer are searched (:attr:`EncodeConfig.seed_search`).
SEED_SEARCHES = ("layer", "shard")


def _default_retrain() -> Any:
    from ..training.loop import TrainConfig

    return TrainConfig(epochs=3.0, lr=5e-4, distill=0.5, temperature=2.0)


@dataclass(frozen=True)
class EncodeConfig:
    """How to encode the simplified layers (Algorithm 1).

    Attributes:
        t: layer name -> bits per cell (0: store that layer losslessly, its codebook and
            entropy-coded indices, no filter); layers not named get an automatic t.
        t_min, t_max: range searched for an automatic t (t_min None: ceil(log2 k) + 1).
        tolerance: allowed increase of validation error, in percentage points, of the model
            after encoding a layer and retraining, against the reference model (the simplified
            model, or the user's model under a :attr:`CompressConfig.max_error_increase` budget).
        confidence_z: the t rule's margin in standard errors: a t is accepted when the paired
            error difference on the validation data (see ``split_validation``), plus ``confidence_z``
            times its standard error, is at most ``tolerance``. The default 1.645 is a one-sided
            95% bound: a t is kept only when the data say, with 95% confidence, that it costs at
            most ``tolerance``. 0 accepts on the point estimate alone (it overshot the tolerance
            on the test split in results/ablation_retrain.md).
        t_rule: what the rule compares: "loss" (default: the paired validation loss difference,
            converted to percentage points by the reference model's error-to-loss ratio; see
            :func:`~weightless.pipeline.steps.paired_difference`) or "error" (per-example errors,
            as above). Chosen on validation data (results/t_rule_study.md, 50 retrained filters
            of two models at ten sparsities): the converted loss difference tracks the error
            difference (Pearson r 0.994, slope 0.95) with 0.46x its standard error, so the same
            95% bound rejects harmless filters less often. The same rule decides the
            whole-model stage.
        retrain: training of the later layers after each encoding (a
            :class:`~weightless.training.TrainConfig`; default: 3 epochs, lr 5e-4, cosine,
            distillation 0.5 from the simplified model). ``None`` switches retraining off, and
            only explicitly.
        retrain_mode: one of :data:`RETRAIN_MODES`.
        reprune_epochs: in "dense" mode, epochs of masked retraining after a pending layer is
            pruned again, before it is clustered and encoded.
            BatchNorm layers: their running statistics are re-estimated during every retraining
            (the model runs in train mode), so they follow the false positives of the encoded
            layers before them; their affine parameters train only when they come after the
            layer just encoded.
        train_encoded: keep the codebook and the bias of encoded layers trainable during later
            retraining (the filter and its indices do not change; the file stores the
            retrained codebook).
        construction: "paper", "compact", or "auto" (compact up to
            :data:`AUTO_COMPACT_MAX_POSITIONS` positions, paper above).
        c: cells per key (None: the construction's default).
        shards: filter shards per layer.
        entropy: entropy-code the tables in the file.
        dense_dtype: on-disk dtype of float32 tensors stored densely ("float32" or "float16").
        seed: base seed of the filters (each layer derives its own from its name).
        seed_trials: filters built per (layer, t); the one whose false positives cost the least
            loss on the first 5,000 training examples is kept (validation halves for loaders).
        seed_search: "layer" (default): ``seed_trials`` whole filters, the best kept. "shard":
            each of the ``shards`` tables keeps the best of its first ``seed_trials`` seeds that
            solve, chosen one shard at a time by the same loss (needs ``shards`` >= 2 to differ;
            every shard costs about 30 bytes of header in the file).
        lossless_fallback: store an encoded layer losslessly (its codebook and entropy-coded
            indices, no false positives) when that is smaller than every filter whose t could
            pass; the t search then only tries t whose filter is smaller than the lossless record.
        whole_model: after the chosen layers, simplify the tensors the recipe left dense
            (:mod:`weightless.pipeline.whole`) under the same rule, so the whole file is small.
        tail_nonzero: nonzero fractions tried for each remaining weight tensor (the smallest
            that passes is kept; 1.0 = cluster without pruning).
        tail_k: shared values of each remaining weight tensor.
        tail_bias_k: shared values of each bias (and other 1-D parameter), tried in this order
            until one passes (all biases at once); 0: every value kept (exact), so the codebook
            rounding of ``round_codebooks`` stores it at float16 precision.
        tail_epochs: epochs of retraining after each of those decisions (None: a third of
            ``retrain.epochs``).
        round_codebooks: round the codebooks of losslessly stored tensors to float16 at the end
            (2 bytes a value instead of 4; the reported errors are measured after rounding).
    """

    t: Mapping[str, int] = field(default_factory=dict)
    t_min: int | None = None
    t_max: int = 12
    tolerance: float = 0.05
    confidence_z: float = 1.645
    t_rule: str = "loss"
    retrain: Any = field(default_factory=_default_retrain)
    retrain_mode: str = "masked"
    reprune_epochs: float = 2.0
    train_encoded: bool = True
    construction: str = "auto"
    c: float | None = None
    shards: int = 1
    entropy: bool = True
    dense_dtype: str = "float32"
    seed: int = 0
    seed_trials: int = 8
    seed_search: str = "layer"
    lossless_fallback: bool = True
    whole_model: bool = True
    tail_nonzero: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625)
    tail_k: int = 16
    tail_bias_k: tuple[int, ...] = (16, 64, 0)
    tail_epochs: float | None = None
    round_codebooks: bool = True

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if not 1 <= self.t_max <= 16:
            raise InputError(f"t_max must be in [1, 16], got {self.t_max}")
        if self.t_min is not None and not 1 <= self.t_min <= self.t_max:
            raise InputError(f"t_min must be in [1, t_max={self.t_max}], got {self.t_min}")
        if not self.tolerance >= 0:
            raise InputError(f"tolerance must be >= 0 percentage points, got {self.tolerance}")
        if self.t_rule not in T_RULES:
            raise InputError(f"t_rule must be one of {T_RULES}, got {self.t_rule!r}")
        if not self.confidence_z >= 0:
            raise InputError(f"confidence_z must be >= 0, got {self.confidence_z}")
        for name, t in self.t.items():
            if not isinstance(t, (int, np.integer)) or not 0 <= int(t) <= 16:
                raise InputError(f"t for {name!r} must be an integer in [0, 16] (0 = lossless), got {t!r}")
        if not 1 <= self.seed_trials <= 1024:
            raise InputError(f"seed_trials must be in [1, 1024], got {self.seed_trials}")
        if self.seed_search not in SEED_SEARCHES:
            raise InputError(f"seed_search must be one of {SEED_SEARCHES}, got {self.seed_search!r}")
        if self.dense_dtype not in ("float32", "float16"):
            raise InputError(f"dense dtype must be 'float32' or 'float16', got {self.dense_dtype!r}")
        if not self.reprune_epochs >= 0:
            raise InputError(f"reprune_epochs must be >= 0, got {self.reprune_epochs}")
        if self.retrain_mode not in RETRAIN_MODES:
            raise InputError(f"retrain_mode must be one of {RETRAIN_MODES}, got {self.retrain_mode!r}")
        if self.construction not in ("auto", "paper", "compact"):
            raise InputError(f"construction must be 'auto', 'paper' or 'compact', got {self.construction!r}")
        if self.c is not None and not self.c >= 1.0:
            raise InputError(f"c (cells per key) must be >= 1, got {self.c}")
        if not 1 <= self.shards <= 65536:
            raise InputError(f"shards must be in [1, 65536], got {self.shards}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if not self.tail_nonzero or not all(0 < float(x) <= 1 for x in self.tail_nonzero):
            raise InputError(f"tail_nonzero must be fractions in (0, 1], got {self.tail_nonzero!r}")
        if not 1 <= self.tail_k <= 32767 or not all(0 <= int(k) <= 32767 for k in self.tail_bias_k):
            raise InputError(f"tail_k must be in [1, 32767] and tail_bias_k in [0, 32767], got {self.tail_k}, {self.tail_bias_k}")
        if self.tail_epochs is not None and not self.tail_epochs >= 0:
            raise InputError(f"tail_epochs must be >= 0, got {self.tail_epochs}")
        if self.retrain is not None:
            self.retrain.validate()


@dataclass(frozen=True)
class CompressConfig:
    """Everything :func:`weightless.compress` does, with its defaults.

    Attributes:
        recipe: how to simplify: a :class:`~weightless.simplify.Recipe` (explicit layers or a
            ``select`` rule) or a :class:`~weightless.simplify.LayerSelect` (default: every
            Linear and Conv weight at 10% nonzero, k = 16, magnitude pruning).
        encode: encoding, retraining and t decision (:class:`EncodeConfig`).
        max_error_increase: the accuracy budget in percentage points of the task's metric on
            the validation data, against the model the user brought, for the whole pipeline
            (simplification + encoding). None: the encoding tolerance is measured against the
            simplified model (``encode.tolerance``), as in the paper.
        progress: progress bars / log lines.
    """

    recipe: Any = None
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    max_error_increase: float | None = None
    progress: bool = False

    def resolved_recipe(self) -> Any:
        """The :class:`~weightless.simplify.Recipe` this config simplifies with."""
        from ..simplify import LayerSelect, Recipe

        if self.recipe is None:
            return Recipe(select=LayerSelect())
        if isinstance(self.recipe, LayerSelect):
            return Recipe(select=self.recipe)
        return self.recipe

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field (before any work starts)."""
        from ..simplify import LayerSelect, Recipe

        if self.recipe is not None and not isinstance(self.recipe, (Recipe, LayerSelect)):
            raise InputError(f"recipe must be a Recipe or a LayerSelect, got {type(self.recipe).__name__}")
        self.resolved_recipe().validate()
        if not isinstance(self.encode, EncodeConfig):
            raise InputError(f"encode must be an EncodeConfig, got {type(self.encode).__name__}")
        self.encode.validate()
        if self.max_error_increase is not None and not self.max_error_increase >= 0:
            raise InputError(f"max_error_increase must be >= 0 percentage points, got {self.max_error_increase}")
