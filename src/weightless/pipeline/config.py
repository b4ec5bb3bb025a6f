"""Every default of Algorithm 1 in one place: :class:`EncodeConfig` (encoding, retraining, t
decision), made of four small configs (:class:`DecisionRule`, :class:`FilterSearch`,
:class:`Retraining`, :class:`TailConfig`), and :class:`CompressConfig` (simplification recipe +
encoding + accuracy budget). File options (entropy coding, the dtype of dense tensors) are
:func:`weightless.save`'s.

The Python API (:func:`weightless.compress`), ``weightless compress`` and ``weightless
reproduce`` all start from these defaults; nothing else defines a retraining learning rate,
an epoch count, a tolerance, a number of seed trials or a t range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from ..training.loop import TrainConfig

__all__ = ["EncodeConfig", "DecisionRule", "FilterSearch", "Retraining", "TailConfig", "CompressConfig", "REFERENCES",
           "AUTO_COMPACT_MAX_POSITIONS"]

#: Largest layer (positions) for which construction="auto" picks the compact construction.
AUTO_COMPACT_MAX_POSITIONS = 1 << 24

#: Whom the budget of :class:`CompressConfig` is measured against.
REFERENCES = ("model", "simplified")


@dataclass(frozen=True)
class DecisionRule:
    """When a step is accepted (:mod:`weightless.pipeline.contract`).

    Attributes:
        tolerance: allowed increase of the task's error, in percentage points, of the model with
            every step so far against the reference model (the simplified model when the encoder
            is called directly; :func:`weightless.compress` passes its budget instead).
        confidence_z: the decision margin in standard errors: a step is accepted when the paired
            difference of per-example errors on the decision data, plus ``confidence_z`` times its
            standard error, is within the allowance (1.645: one-sided 95%; see
            :mod:`weightless.pipeline.contract`).
    """

    tolerance: float = 0.05
    confidence_z: float = 1.645

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if not self.tolerance >= 0:
            raise InputError(f"rule.tolerance must be >= 0 percentage points, got {self.tolerance}")
        if not self.confidence_z >= 0:
            raise InputError(f"rule.confidence_z must be >= 0, got {self.confidence_z}")


@dataclass(frozen=True)
class FilterSearch:
    """Which filters are tried for a layer, and how they are built.

    Attributes:
        t: layer name -> bits per cell (0: store that layer losslessly, its codebook and
            entropy-coded indices, no filter); layers not named get an automatic t.
        t_min, t_max: range searched for an automatic t (t_min None: ceil(log2 k) + 1).
        construction: "paper", "compact", or "auto" (compact up to
            :data:`AUTO_COMPACT_MAX_POSITIONS` positions, paper above).
        c: cells per key (None: the construction's default).
        shards: filter shards per layer.
        seed: base seed of the filters (each layer derives its own from its name) and of the
            k-means runs that cluster layers again.
        seed_trials: filters built per (layer, t); the one whose false positives cost the least
            loss on the first 5,000 training examples is kept (the decision data for loaders):
            the loss ranks, it never accepts. 4 by measurement: on LeNet5 (magnitude, default
            budget) 4 and 8 give the same t and file size (24,218 B), in 199 s against 232 s; 2 gave
            a worse seed, more budget spent, a file of 39,614 B.
        lossless_fallback: store an encoded layer losslessly (its codebook and entropy-coded
            indices, no false positives) when that is smaller than every filter whose t could
            pass; the t search then only tries t whose filter is smaller than the lossless record
            (sizes as :func:`weightless.save` writes them by default: entropy-coded).
        smaller_k: the last stage of the pipeline, after every layer and the whole-model stage:
            each weight stored as a lossless record (a chosen layer without a filter, a weight of
            the whole-model stage clustered to at most ``TailConfig.k`` values), largest record
            first, is clustered again (same mask) to each of these counts below its k, largest
            first, and kept while the model passes the rule as it is (no retraining). It spends
            only what the earlier steps left of the budget. () switches it off (the paper's
            setting, as ``reproduce`` runs it). Measured (bench_compress, LeNet-300-100,
            magnitude, default budget): FC-0 to k = 6, the file 20,220 -> 18,323 B.
        harder: before a layer's t search (or its fixed t), its nonzeros are cut to each of these
            fractions in turn (the largest magnitudes kept), the model retrained (that layer under
            its new mask, the layers after it) and the layer clustered again; a cut is kept while
            the rule accepts it within the layer's share of what is left of the budget (its
            lossless bytes over those of it and the chosen layers after it: the budget goes where
            the bytes are, not to the first layers in model order). () switches it off (the
            paper's setting, as ``reproduce`` runs it).
        layer_share: a layer's filter trials (its t search and the fewer-values filters after
            it) are decided within that same share, so a small first layer cannot spend on a
            filter the budget a large later layer needs (the last chosen layer's share is all
            that is left). False: the whole allowance, the paper's Algorithm 1 as ``reproduce``
            runs it. Measured on LeNet5 (magnitude, default budget, fresh dense model): without
            it CNN-1 took a t = 4 filter (765 B saved) at +0.10 pp, FC-0 then kept a filter at
            k = 9 and the file was 20,547 B against 17,606 B with every layer lossless.
    """

    t: Mapping[str, int] = field(default_factory=dict)
    t_min: int | None = None
    t_max: int = 12
    construction: str = "auto"
    c: float | None = None
    shards: int = 1
    seed: int = 0
    seed_trials: int = 4
    lossless_fallback: bool = True
    smaller_k: tuple[int, ...] = (8, 6, 4, 3, 2)
    harder: tuple[float, ...] = (2 ** -0.5, 0.5, 2 ** -1.5)
    layer_share: bool = True

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        h = tuple(self.harder)
        if not all(isinstance(f, (float, int)) and not isinstance(f, bool) and 0 < f < 1 for f in h) \
                or any(a <= b for a, b in zip(h, h[1:])):
            raise InputError(f"filters.harder must be decreasing fractions in (0, 1), got {self.harder!r}")
        if not 1 <= self.t_max <= 16:
            raise InputError(f"filters.t_max must be in [1, 16], got {self.t_max}")
        if self.t_min is not None and not 1 <= self.t_min <= self.t_max:
            raise InputError(f"filters.t_min must be in [1, t_max={self.t_max}], got {self.t_min}")
        for name, t in self.t.items():
            if not isinstance(t, (int, np.integer)) or not 0 <= int(t) <= 16:
                raise InputError(f"filters.t for {name!r} must be an integer in [0, 16] (0 = lossless), got {t!r}")
        if not 1 <= self.seed_trials <= 1024:
            raise InputError(f"filters.seed_trials must be in [1, 1024], got {self.seed_trials}")
        if self.construction not in ("auto", "paper", "compact"):
            raise InputError(f"filters.construction must be 'auto', 'paper' or 'compact', got {self.construction!r}")
        if self.c is not None and not self.c >= 1.0:
            raise InputError(f"filters.c (cells per key) must be >= 1, got {self.c}")
        if not 1 <= self.shards <= 65536:
            raise InputError(f"filters.shards must be in [1, 65536], got {self.shards}")
        if self.seed < 0:
            raise InputError(f"filters.seed must be >= 0, got {self.seed}")
        if not all(isinstance(k, (int, np.integer)) and 1 <= int(k) <= 32767 for k in self.smaller_k):
            raise InputError(f"filters.smaller_k must be integers in [1, 32767], got {self.smaller_k!r}")


def _default_train() -> TrainConfig:
    from ..training.loop import TrainConfig

    return TrainConfig(epochs=1.0, batch_size=256, lr=5e-4, distill=0.5, temperature=2.0)


@dataclass(frozen=True)
class Retraining:
    """Training of the later layers after each encoding.

    Attributes:
        train: the training (a :class:`~weightless.training.TrainConfig`; default: 1 epoch in
            batches of 256, lr 5e-4, cosine, distillation 0.5 from the simplified model; one
            epoch, not three, for speed: studies/retrain_epochs found 2 to 24 epochs within 0.2 pp
            of each other on test). ``None`` switches retraining off, and only explicitly.
            Pending layers train under their pruning masks and are clustered again right before
            their own encoding (the paper's Figure 3). BatchNorm running statistics are
            re-estimated during every retraining.
        accept_before_retraining: a candidate that already passes the rule before any
            retraining is kept as it is, without retraining (the rule is on the task's metric, so
            the model kept is the model measured; the next layer's retraining adapts it anyway).
            False: every candidate is retrained before its decision.
        train_encoded: keep the codebook and the bias of encoded layers trainable during later
            retraining (the filter and its indices do not change; the file stores the
            retrained codebook).
    """

    train: TrainConfig | None = field(default_factory=_default_train)
    accept_before_retraining: bool = True
    train_encoded: bool = True

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if self.train is not None:
            try:
                self.train.validate()
            except InputError as exc:
                raise InputError(f"retraining.train.{exc}") from exc


@dataclass(frozen=True)
class TailConfig:
    """The whole-model stage (:mod:`weightless.pipeline.whole`): after the chosen layers, the
    tensors the recipe left dense are simplified under the same rule, so the whole file is small.

    Attributes:
        enabled: run the stage.
        nonzero: nonzero fractions tried for each remaining weight tensor (the smallest that
            passes is kept; 1.0 = cluster without pruning; when none passes, the ``exact_k``
            rungs, then the weight rounded to float16, then it stays as it is).
        k: shared values of each remaining weight tensor.
        bias_k: shared values of each bias (and other 1-D parameter), tried in this order until
            one passes (all biases at once); 0: every value kept (exact), so the codebook rounding
            of ``round_codebooks`` stores it at float16 precision.
        exact_k: when no rung above passes the rule (a model so far near the edge of the
            budget rejects every step, however small), the tensor clustered to each of these
            numbers of values in turn, without retraining, kept when it changes no outcome on
            the decision data (the rule cannot tell it from the model so far) and its record is
            smaller than the float16 storage it replaces; for the weights, and for the 1-D
            parameters (all at once) before they are kept exact.
        epochs: epochs of retraining after each of those decisions (None: a third of the
            retraining's ``train.epochs``).
        round_codebooks: round the codebooks of losslessly stored tensors to float16 at the end
            (2 bytes a value instead of 4; the reported errors are measured after rounding).
        fold: first, fold the units pruning left without inputs into the next linear layer
            (:func:`~weightless.simplify.fold.fold_dead_units`: the same function, their
            weights zero), before that layer is simplified.
        units: fractions of a linear layer's live units kept, tried from the largest down while
            the rule accepts (:meth:`weightless.pipeline.whole._Tail.units`), where the layer is
            stored as a lossless record and feeds another linear layer; empty: no unit is cut.
    """

    enabled: bool = True
    nonzero: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625)
    k: int = 16
    bias_k: tuple[int, ...] = (16, 64, 0)
    exact_k: tuple[int, ...] = (16, 64, 256)
    epochs: float | None = None
    round_codebooks: bool = True
    fold: bool = True
    units: tuple[float, ...] = (0.75, 0.6, 0.5, 0.35, 0.25)

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if not self.nonzero or not all(0 < float(x) <= 1 for x in self.nonzero):
            raise InputError(f"tail.nonzero must be fractions in (0, 1], got {self.nonzero!r}")
        if not 1 <= self.k <= 32767 or not all(0 <= int(k) <= 32767 for k in self.bias_k):
            raise InputError(f"tail.k must be in [1, 32767] and tail.bias_k in [0, 32767], got {self.k}, {self.bias_k}")
        if not all(1 <= int(k) <= 32767 for k in self.exact_k):
            raise InputError(f"tail.exact_k must be in [1, 32767], got {self.exact_k!r}")
        if self.epochs is not None and not self.epochs >= 0:
            raise InputError(f"tail.epochs must be >= 0, got {self.epochs}")
        if not all(0 < float(x) < 1 for x in self.units):
            raise InputError(f"tail.units must be fractions in (0, 1), got {self.units!r}")


@dataclass(frozen=True)
class EncodeConfig:
    """How to encode the simplified layers (Algorithm 1).

    Attributes:
        rule: when a step is accepted (:class:`DecisionRule`).
        filters: the t search and the filters tried (:class:`FilterSearch`).
        retraining: training after each encoding (:class:`Retraining`; ``Retraining(train=None)``:
            none).
        tail: the whole-model stage and the final codebook rounding (:class:`TailConfig`).
    """

    rule: DecisionRule = field(default_factory=DecisionRule)
    filters: FilterSearch = field(default_factory=FilterSearch)
    retraining: Retraining = field(default_factory=Retraining)
    tail: TailConfig = field(default_factory=TailConfig)

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        for name, kind in (("rule", DecisionRule), ("filters", FilterSearch), ("retraining", Retraining),
                           ("tail", TailConfig)):
            part = getattr(self, name)
            if not isinstance(part, kind):
                raise InputError(f"{name} must be a {kind.__name__}, got {type(part).__name__}")
            part.validate()


@dataclass(frozen=True)
class CompressConfig:
    """Everything :func:`weightless.compress` does, with its defaults.

    Attributes:
        recipe: how to simplify: a :class:`~weightless.simplify.Recipe` (explicit layers or a
            ``select`` rule) or a :class:`~weightless.simplify.LayerSelect` (default: every
            Linear and Conv weight at 10% nonzero, k = 16, magnitude pruning).
        encode: encoding, retraining and the decision margin (:class:`EncodeConfig`).
        max_error_increase: the accuracy budget, in percentage points of the task's metric
            against the reference (default 0.5): simplification, filters and the whole-model
            stage all spend it, and the final model is checked against it on data no decision
            used (see :mod:`weightless.pipeline.contract`). None: only ``max_error`` bounds.
        max_error: an absolute budget instead or as well: the final error in percent (e.g. 1.0)
            on the test data when it is given (the allowance is ``max_error`` minus the given
            model's test error), else on the decision data; spent as an increase either way.
        reference: "model" (default): the model the user gave; "simplified": the simplified
            model (the paper's setting: the budget covers only the encoding).
        confirm_fraction: the share of the validation data set aside to confirm the final
            model (no decision sees it). 0: none (the result then says it is unconfirmed).
        simplify_share: the share of the budget simplification may spend; when it spends more,
            the recipe is made gentler (``simplify_factor`` times the nonzero fraction) up to
            ``simplify_retries`` times. Default 0.7: the sparsity simplification reaches is
            where the bytes are, and at the default budget the later steps rarely use what a
            larger reserve leaves them (the rule's margin, about 0.2 pp, eats most of it).
        simplify_reserve: percentage points of the budget simplification leaves to the later
            steps beyond half the budget: it may spend ``min(simplify_share * B, max(B / 2, B -
            simplify_reserve))`` of a budget B (default 0.16 pp, about the rule's margin on
            5,000 decision examples: 0.7 of the default 0.5 pp budget, half of a budget under
            0.32 pp, where the later steps need that margin to pass at all). See
            :meth:`simplify_allowance` and docs/ACCURACY.md, Limits, for the runs behind both.
        simplify_factor: how much gentler each retry is (default sqrt(2): LeNet5's magnitude
            recipe spends +0.34 pp of the default 0.5 pp, 2x spent +0.00, sqrt(2) +0.22).
        simplify_retries: gentler simplifications tried before giving up (default 8: from a
            10% recipe, sqrt(2) steps reach every weight kept; at 0.1 pp the own-model example
            needed 57%, 4 retries ended in BudgetError at 40%).
        allow_over_budget: return the least lossy model, flagged and with a WARNING, when no
            model fits the budget, instead of raising :class:`~weightless.errors.BudgetError`.
        progress: progress bars on a terminal and a log line at least every 30 s otherwise.
    """

    recipe: Any = None
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    max_error_increase: float | None = 0.5
    max_error: float | None = None
    reference: str = "model"
    confirm_fraction: float = 0.5
    simplify_share: float = 0.7
    simplify_reserve: float = 0.16
    simplify_factor: float = 2.0 ** 0.5
    simplify_retries: int = 8
    allow_over_budget: bool = False
    progress: bool = True

    def simplify_allowance(self, budget: float) -> float:
        """What simplification may spend of a ``budget`` (pp): ``simplify_share`` of it, but
        no more than leaves ``simplify_reserve`` pp to the later steps, unless that is under
        half of it (with a smaller ``simplify_share``, that share)."""
        return min(self.simplify_share * budget, max(budget / 2, budget - self.simplify_reserve))

    def allowance(self, reference_error: float) -> float:
        """The budget in percentage points over a reference whose error is ``reference_error``
        (%): the smaller of ``max_error_increase`` and ``max_error - reference_error``."""
        caps = [c for c in (self.max_error_increase,
                            None if self.max_error is None else self.max_error - reference_error) if c is not None]
        return min(caps)

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
        for name in ("max_error_increase", "max_error", "confirm_fraction", "simplify_share", "simplify_reserve"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))):
                raise InputError(f"{name} must be a number, got {type(v).__name__} {v!r}")
        if self.max_error_increase is None and self.max_error is None:
            raise InputError("a budget is needed: max_error_increase (pp) or max_error (%)")
        if self.max_error_increase is not None and not self.max_error_increase >= 0:
            raise InputError(f"max_error_increase must be >= 0 percentage points, got {self.max_error_increase}")
        if self.max_error is not None and not 0 <= self.max_error <= 100:
            raise InputError(f"max_error must be a percentage in [0, 100], got {self.max_error}")
        if self.reference not in REFERENCES:
            raise InputError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if not 0 <= self.confirm_fraction <= 0.9:
            raise InputError(f"confirm_fraction must be in [0, 0.9], got {self.confirm_fraction}")
        if not 0 < self.simplify_share <= 1:
            raise InputError(f"simplify_share must be in (0, 1], got {self.simplify_share}")
        if not self.simplify_reserve >= 0:
            raise InputError(f"simplify_reserve must be >= 0 percentage points, got {self.simplify_reserve}")
        if isinstance(self.simplify_factor, bool) or not isinstance(self.simplify_factor, (int, float)) \
                or not 1 < self.simplify_factor <= 16:
            raise InputError(f"simplify_factor must be a number in (1, 16], got {self.simplify_factor!r}")
        if not 0 <= self.simplify_retries <= 8:
            raise InputError(f"simplify_retries must be in [0, 8], got {self.simplify_retries}")
