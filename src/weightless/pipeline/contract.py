"""The accuracy contract: which data decides, which data confirms, and the rule that accepts a step.

The procedure (docs/ACCURACY.md says the same for users):

1. **Three disjoint data sets.** Filter seeds are *ranked* on a slice of the training data (a
   cheap, low-noise loss: it may rank, it never accepts). The validation data is cut in two:
   the *decision* part, on which every step is accepted or rejected, and the *confirmation*
   part, which no decision sees and which checks only the final model.
2. **A rule on the task's own metric.** A step (a filter at some t, a tail simplification) is
   accepted when the *cumulative* paired difference of per-example errors between the model
   with every step so far and the reference model, plus ``z`` standard errors (one-sided 95%
   by default), is within the allowance. Comparing the whole model with the reference at every
   step bounds the sum of the steps, not each step alone.
3. **The choice among candidates is confirmed on fresh data.** The decision data sees ~10-20
   candidates, so the accepted ones look better there than they are. The final model's
   difference on the confirmation data carries no such selection; when its point estimate is
   over the allowance, the pipeline backs off (undoes the last lossy steps) until it is not.
4. **Nothing over budget leaves silently**: if even the least lossy model (simplification
   with every layer stored losslessly) is over, :class:`~weightless.errors.BudgetError`, unless
   the caller allows it (then the result says so, and a WARNING line is logged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["Decision", "paired_difference", "paired_ci", "Splits", "split_data", "Contract", "seen_validation", "RANK_EXAMPLES"]

#: Training examples on which filter seeds are ranked (when the training data can be sliced).
RANK_EXAMPLES = 5000


@dataclass(frozen=True)
class Decision:
    """A paired comparison of a candidate with the reference on the same examples, all in
    percent / percentage points: the candidate's and the reference's error, their mean paired
    difference and its standard error, and whether the rule accepted it."""

    error: float
    reference_error: float
    difference: float
    standard_error: float
    accepted: bool

    def describe(self) -> str:
        """One line for logs: the paired error difference +- its standard error."""
        return f"{self.difference:+.2f} +- {self.standard_error:.2f} pp"

    def ci95(self) -> tuple[float, float]:
        """The two-sided normal-approximation 95% confidence interval of the difference."""
        return self.difference - 1.96 * self.standard_error, self.difference + 1.96 * self.standard_error

    def as_dict(self) -> dict[str, float | bool]:
        """JSON-ready dict (rounded to 1e-4 pp)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def paired_difference(errors: np.ndarray, reference: np.ndarray, tolerance: float, z: float) -> Decision:
    """Compare per-example errors (values in [0, 1]) of a candidate and the reference on the
    same examples: accepted when ``difference + z * standard_error <= tolerance`` (percentage
    points), the standard error being that of the mean of the per-example differences.

    Raises:
        InputError: the two arrays differ in length or are empty.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if e.size != r.size or e.size == 0:
        raise InputError(f"paired errors need two arrays of one nonzero length, got {e.size} and {r.size}")
    d = (e - r) * 100.0
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    accepted = bool(diff + z * se <= tolerance + 1e-12)
    return Decision(float(e.mean()) * 100.0, float(r.mean()) * 100.0, diff, se, accepted)


def paired_ci(errors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The paired difference of two models' per-example errors on the same examples, in
    percentage points, with its normal-approximation 95% confidence interval (JSON-ready)."""
    d = paired_difference(errors, reference, tolerance=math.inf, z=0.0)
    lo, hi = d.ci95()
    return {"difference": round(d.difference, 4), "ci95_low": round(lo, 4), "ci95_high": round(hi, 4)}


@dataclass(frozen=True)
class Splits:
    """The data of each role: ``rank`` (its "val" split ranks filter seeds), ``decide`` (its
    "val" split accepts or rejects each step), ``confirm`` (its "val" split checks the final
    model; None when the validation data cannot be cut), ``disjoint``: rank and decide differ."""

    rank: Any
    decide: Any
    confirm: Any
    disjoint: bool


def split_data(task: Any, confirm_fraction: float) -> Splits:
    """Cut ``task`` into the roles of :class:`Splits`.

    Seeds are ranked on the first :data:`RANK_EXAMPLES` training examples; the validation data
    is cut into a decision part and a confirmation part of ``confirm_fraction`` (contiguous
    pieces: the validation data should be in random order). When the training data is a loader
    (it cannot be sliced), the decision part ranks the seeds too; when the validation data is a
    loader, there is no confirmation part and decisions rank seeds (``disjoint`` False).

    Raises:
        InputError: ``confirm_fraction`` outside [0, 0.9].
    """
    if not 0 <= confirm_fraction <= 0.9:
        raise InputError(f"confirm_fraction must be in [0, 0.9], got {confirm_fraction}")
    val = task.source("val")
    decide, confirm = task, None
    if confirm_fraction > 0 and val.kind != "loader" and len(val) >= 4:
        n = len(val)
        cut = min(n - 1, max(1, round(n * (1 - confirm_fraction))))
        decide, confirm = task.with_val(val.slice(0, cut)), task.with_val(val.slice(cut, n))
    train = task.source("train")
    if train.kind != "loader":
        return Splits(task.with_val(train.head(RANK_EXAMPLES)), decide, confirm, True)
    return Splits(decide, decide, confirm, False)


def seen_validation(val_error: float, n_val: int, test_error: float, n_test: int, z: float = 3.0) -> str | None:
    """A warning when the model's validation error is implausibly far below its test error
    (more than ``z`` standard errors of the difference of two independent proportions): the
    validation data was probably part of its training data, and decisions made on it mean
    little. Returns the warning line, or None."""
    p1, p2 = val_error / 100.0, test_error / 100.0
    pooled = (p1 * n_val + p2 * n_test) / max(n_val + n_test, 1)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / max(n_val, 1) + 1 / max(n_test, 1)))
    gap = (p2 - p1) / se
    if gap > z:
        return (f"WARNING: the model's validation error {val_error:.2f}% is {gap:.1f} standard errors below its test "
                f"error {test_error:.2f}%: it has probably seen the validation data in training, so the decisions "
                "made on it are optimistic. Give validation data the model never trained on.")
    return None


class Contract:
    """The reference's per-example errors on the decision and confirmation data, the allowance
    (pp over the reference) and the decision margin ``z``; :meth:`decide` and :meth:`confirm`
    score a candidate model against them."""

    def __init__(self, reference: Any, splits: Splits, allowance: float, z: float) -> None:
        from ..training.loop import per_example

        if not allowance >= 0:
            raise InputError(f"the accuracy allowance must be >= 0 percentage points, got {allowance}")
        self.splits = splits
        self.allowance = float(allowance)
        self.z = float(z)
        self.ref_decide = per_example(reference, splits.decide, "val")[0]
        self.ref_confirm = None if splits.confirm is None else per_example(reference, splits.confirm, "val")[0]

    def decide(self, model: Any, allowance: float | None = None) -> Decision:
        """The decision on the decision data: the cumulative difference + z standard errors
        within ``allowance`` (default: the whole allowance)."""
        from ..training.loop import per_example

        tol = self.allowance if allowance is None else allowance
        return paired_difference(per_example(model, self.splits.decide, "val")[0], self.ref_decide, tol, self.z)

    def same_outcomes(self, a: Any, b: Any) -> bool:
        """Whether models ``a`` and ``b`` get every example of the decision data right or wrong
        alike (the rule's statistics cannot tell them apart)."""
        from ..training.loop import per_example

        return bool(np.array_equal(per_example(a, self.splits.decide, "val")[0], per_example(b, self.splits.decide, "val")[0]))

    def confirm(self, model: Any) -> Decision | None:
        """The final check on the confirmation data (point estimate within the allowance), or
        None when there is no confirmation data."""
        from ..training.loop import per_example

        if self.splits.confirm is None or self.ref_confirm is None:
            return None
        return paired_difference(per_example(model, self.splits.confirm, "val")[0], self.ref_confirm, self.allowance, 0.0)
