"""``weightless.compress``: the whole method on a user's model and data (simplify, encode layer by
layer with retraining, simplify the rest, confirm), in the shape PyTorch users know
(``quantize_(model, config)``, ``compress_weights(model, dataset=...)``), under one accuracy
budget (:mod:`weightless.pipeline.contract`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BudgetError, InputError
from .config import CompressConfig
from .contract import Contract, split_data, seen_validation
from .encode import CompressResult

if TYPE_CHECKING:
    from torch import nn

__all__ = ["compress"]


def compress(
    model: nn.Module,
    train: Any,
    val: Any = None,
    config: CompressConfig | None = None,
    *,
    test: Any = None,
    loss: Callable[..., Any] | None = None,
    metric: Callable[..., Any] | None = None,
    device: Any = None,
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> CompressResult:
    """Simplify a trained ``model`` and encode it layer by layer with retraining (Algorithm 1),
    within the accuracy budget of ``config``.

    Args:
        model: a trained ``torch.nn.Module`` (not modified).
        train: training data: a ``DataLoader``, a map-style ``Dataset``, an ``(x, y)`` pair of
            arrays, or a :class:`~weightless.training.Task` (then ``val`` etc. come from it).
        val: validation data in the same forms, data the model was NOT trained on: part of it
            decides every step, the rest (``config.confirm_fraction``) confirms the result.
        config: a :class:`~weightless.pipeline.CompressConfig` (None: its defaults: every
            Linear/Conv weight at 10% nonzero, k = 16, automatic t, a 0.5 pp budget).
        test: optional held-out data, only reported (and used to warn when the validation
            data looks seen).
        loss: ``loss(output, target)`` to train with (default cross-entropy).
        metric: ``metric(output, target)`` -> per-example error in [0, 1] (default top-1 error):
            the metric the budget is in.
        device: where to train (e.g. "cuda"); the model is moved there. The codec stays numpy.
        batch_fn: turns one loader item into ``(inputs, target)``.
        progress: show progress (None: the config's setting, on by default).
        log: a callable taking one line of text (default: the "weightless" logger when logging
            shows INFO lines, else standard error).

    Returns:
        A :class:`~weightless.pipeline.encode.CompressResult`: ``result.tensors`` goes to
        :func:`weightless.save`; ``result.budget`` says what each stage spent, the confirmation
        figures and what was backed off.

    Raises:
        InputError: invalid config or data (checked before any training).
        BudgetError: no model within the budget (unless ``config.allow_over_budget``).
        ConstructionError: a filter could not be built.
    """
    from ..training import as_task
    from ..training.threads import contention_note
    from ..training.say import say as default_say
    from .encode import encode_with_retraining

    config = CompressConfig() if config is None else config
    if not isinstance(config, CompressConfig):
        raise InputError(f"config must be a CompressConfig, got {type(config).__name__}")
    config.validate()
    show = config.progress if progress is None else bool(progress)
    say = log or (default_say if show else (lambda s: None))
    busy = contention_note()
    if busy:
        say(busy)
    task = as_task(train, val, test, **{k: v for k, v in (("loss", loss), ("metric", metric), ("device", device),
                                                            ("batch_fn", batch_fn)) if v is not None})
    recipe = config.resolved_recipe().resolve(model)
    recipe.validate()
    if task.device is not None:
        model = copy.deepcopy(model).to(task.device)
    splits = split_data(task, config.confirm_fraction)
    dense_val, dense_test, warning = _score_given(model, task, splits, say)
    anchor = _Anchor.of(config, dense_val, dense_test)
    given = None  # against the given model, the contract is known before simplification, which it checks too
    if config.reference == "model":
        given = Contract(model, splits, max(config.allowance(anchor.error), 0.0), config.encode.rule.confidence_z)
    check = given.confirm if given is not None and splits.confirm is not None else None
    simplified, simplified_val = _simplify_within(model, task, splits, recipe, config, dense_val, show, say, check, anchor)
    contract = _contract(given, simplified.model, splits, config, anchor, simplified_val, say)
    res = encode_with_retraining(simplified, task, config.encode, reference=None if config.reference == "simplified" else model,
                                 progress=show, log=say, contract=contract)
    res.budget = _budget_report(config, res, dense_val, simplified_val, contract.allowance, warning, anchor)
    if not res.within_budget:
        msg = (f"no model within the budget: the least lossy one is {(res.confirmation or {}).get('difference', float('nan')):+.2f} pp over the "
               f"reference on the confirmation data, allowance {contract.allowance:.2f} pp")
        if not config.allow_over_budget:
            raise BudgetError(msg + " (raise the budget, keep more weights, or allow_over_budget=True)", report=res.budget)
        say("WARNING: " + msg + "; returned because allow_over_budget=True")
    return res


def _score_given(model: Any, task: Any, splits: Any, say: Callable[[str], None]) -> tuple[float, float | None, str | None]:
    """The given model's error on the decision data and on the test data (None without test
    data), and the seen-validation warning (logged). The test data measures only this model.

    Raises:
        InputError: the model cannot run on the validation or test data.
    """
    from ..training import evaluate

    try:
        dense_val = evaluate(model, splits.decide, split="val")
        dense_test = None if task.test is None else evaluate(model, task, split="test")
    except InputError:
        raise
    except Exception as exc:  # the model cannot run on the data: say so before any training
        raise InputError(f"the model cannot be evaluated on the validation or test data: {type(exc).__name__}: {exc}") from exc
    warning = _seen_warning(task, dense_val, dense_test)
    if warning:
        say(warning)
    say(f"model as given: validation error {dense_val:.2f}% (decision data)"
        + ("" if dense_test is None else f", test error {dense_test:.2f}%"))
    return dense_val, dense_test, warning


@dataclass(frozen=True)
class _Anchor:
    """The given model's error that ``max_error`` is read against (``error``, in %) and where
    it was measured (``on``): its test error when test data is given (``max_error`` is the
    error a user will see on their test data), else its error on the decision data. Every
    step and the final check then spend ``max_error - error`` as a paired *increase* on the
    validation data; the test data still decides nothing about any candidate."""

    error: float
    on: str

    @staticmethod
    def of(config: CompressConfig, dense_val: float, dense_test: float | None) -> "_Anchor":
        """The anchor of ``config``'s ``max_error`` for a model with these errors."""
        if config.max_error is not None and dense_test is not None:
            return _Anchor(dense_test, "test data")
        return _Anchor(dense_val, "decision data")


def _contract(given: Contract | None, simplified_model: Any, splits: Any, config: CompressConfig, anchor: _Anchor,
              simplified_val: float, say: Callable[[str], None]) -> Contract:
    """The contract every later decision uses: ``given`` (against the given model) when there
    is one, else one against the simplified model; its allowance, the decision margin."""
    ref_err, on = (anchor.error, anchor.on) if given is not None else (simplified_val, "decision data")
    allowance = config.allowance(ref_err)
    say(f"budget: {allowance:.2f} pp over the {'given' if given is not None else 'simplified'} model ({ref_err:.2f}% on the {on}"
        + (f", max_error {config.max_error:g}%" if config.max_error is not None else "") + ")")
    if given is not None:
        return given
    return Contract(simplified_model, splits, max(allowance, 0.0), config.encode.rule.confidence_z)


def _seen_warning(task: Any, val_error: float, test_error: float | None) -> str | None:
    """The seen-validation warning (:func:`~weightless.pipeline.contract.seen_validation`), when
    the task has test data to compare with."""
    if task.test is None or test_error is None:
        return None
    if task.source("test").kind == "loader" or task.source("val").kind == "loader":
        return None
    return seen_validation(val_error, len(task.source("val")), test_error, len(task.source("test")))


def _simplify_within(model: Any, task: Any, splits: Any, recipe: Any, config: CompressConfig, dense_val: float,
                     show: bool, say: Callable[[str], None],
                     check: Callable[[Any], Any] | None, anchor: _Anchor) -> tuple[Any, float]:
    """Simplify with ``recipe``; when that spends more than its share of the budget
    (:meth:`CompressConfig.simplify_allowance`) on the decision data (against the given model),
    simplify again with
    ``config.simplify_factor`` times the nonzero fraction, up to ``config.simplify_retries`` times: from the recorded pruning step
    that covers the new fractions (magnitude pruning), and without clustering a pruned model
    that already spends 0.1 pp more than the share. ``check`` (the given model's contract's
    ``confirm``): a simplified model within its share on the decision data is also checked on
    the confirmation data; over the whole allowance there, it goes gentler too (no encoding
    step can bring the least lossy model back). Returns the
    :class:`~weightless.simplify.SimplifyResult` and its error on the decision data.

    Raises:
        BudgetError: simplification alone is over the whole budget after every retry, on the
            decision or the confirmation data (unless ``config.allow_over_budget``).
    """
    from ..simplify import PruneState, resume_point, simplify
    from ..simplify.recipe import Stopped
    from ..training import evaluate

    if config.reference == "model" and config.allowance(anchor.error) < 0 and not config.allow_over_budget:
        raise BudgetError(f"the model as given already has {anchor.error:.2f}% error on the {anchor.on}, above "
                          f"max_error = {config.max_error}%", report={"dense_val_error": dense_val, "max_error_anchor": anchor.error})
    states: list[PruneState] = []  # magnitude pruning: where a gentler retry can start
    start: PruneState | None = None
    budget = config.allowance(anchor.error)
    share = config.simplify_allowance(budget)
    n = _examples(splits.decide)
    floor = (1 + config.encode.rule.confidence_z) * 100 / n if n else 0.0  # one outcome changed: diff = SE = 100/n
    if config.reference == "model" and budget < floor:
        say(f"WARNING: the budget, {budget:.2f} pp, is less than the rule needs to accept a step that changes one "
            f"outcome among the {n} decision examples ({floor:.2f} pp): only steps that change no outcome can "
            "pass, so expect little compression")
    for attempt in range(config.simplify_retries + 1):
        gentler = (config.reference == "model" and attempt < config.simplify_retries
                   and any(l.nonzero < 1 for l in recipe.layers))
        why = f"simplification spent more than its {share:.2f} pp of the {budget:.2f} pp budget"
        try:
            simplified = simplify(model, task, recipe, progress=show, start=start,
                                  record=states if recipe.method == "magnitude" else None,
                                  after_prune=(lambda m: _over_share(m, splits, dense_val, share)) if gentler else None)
        except Stopped as stop:
            reason, spent = stop.args[0]
            err = dense_val + spent
            say(f"pruned ({', '.join(f'{l.name} {100 * l.nonzero:g}%' for l in recipe.layers)}): {reason}; not clustered")
        else:
            err = evaluate(simplified.model, splits.decide, split="val")
            if config.reference == "simplified":
                return simplified, err
            spent = err - dense_val
            say(f"simplified ({', '.join(f'{l.name} {100 * l.nonzero:g}%' for l in recipe.layers)}): validation error "
                f"{err:.2f}% ({spent:+.2f} pp of the {budget:.2f} pp budget)")
            if spent <= share + 1e-9:
                conf = None if check is None else check(simplified.model)
                if conf is None or conf.accepted:
                    return simplified, err
                over = (f"the simplified model alone is {conf.difference:+.2f} pp over the given model on the "
                        f"confirmation data, over the {budget:.2f} pp budget")
                if not gentler:
                    if config.allow_over_budget:
                        say(f"WARNING: {over}; going on because allow_over_budget=True")
                        return simplified, err
                    raise BudgetError(over + " (raise the budget or keep more weights)",
                                      report={"spent_simplify": spent, "confirm_simplify": conf.difference, "budget": budget})
                say(over)
                why = "simplification over the budget on the confirmation data"
        if gentler:
            recipe = replace(recipe, layers=tuple(replace(l, nonzero=min(1.0, config.simplify_factor * l.nonzero))
                                                  for l in recipe.layers))
            start = resume_point(states, {l.name: l.nonzero for l in recipe.layers}) if states else None
            say(f"{why}: trying again gentler"
                + ("" if start is None else ", from the pruning step at "
                   + ", ".join(f"{n} {100 * f:.3g}%" for n, f in start.fractions.items())))
            continue
        if spent <= budget + 1e-9:
            return simplified, err
        if config.allow_over_budget:
            say(f"WARNING: simplification alone spent {spent:.2f} pp of the {budget:.2f} pp budget; going on "
                "because allow_over_budget=True")
            return simplified, err
        raise BudgetError(f"simplification alone spends {spent:.2f} pp of the {budget:.2f} pp budget on the validation "
                          "data (raise the budget or keep more weights)", report={"spent_simplify": spent, "budget": budget})
    return simplified, err


def _examples(task: Any) -> int | None:
    """The number of validation examples of ``task`` (None when its source cannot say)."""
    try:
        return len(task.source("val"))
    except TypeError:
        return None


def _over_share(pruned: Any, splits: Any, dense_val: float, share: float) -> tuple[str, float] | None:
    """Why the pruned (not yet clustered) model cannot make a simplification within ``share``
    of the budget, with what it spends; None when it can. Clustering and codebook fine-tuning
    moved the test error by -0.03 to +0.05 pp in results/paper/simplify.json and vgg.json,
    so a pruned model 0.1 pp past the share is given up before them."""
    from ..training import evaluate

    spent = evaluate(pruned, splits.decide, split="val") - dense_val
    if spent <= share + _CLUSTERING_MARGIN:
        return None
    return f"validation error already {spent:+.2f} pp, over {share:.2f} + {_CLUSTERING_MARGIN:.2f} pp", spent


#: How far past its share a pruned model may be and still be clustered (see :func:`_over_share`).
_CLUSTERING_MARGIN = 0.1


def _budget_report(config: CompressConfig, res: CompressResult, dense_val: float, simplified_val: float, allowance: float,
                   warning: str | None, anchor: _Anchor) -> dict[str, Any]:
    """What each stage spent, the confirmation and the back-off, JSON-ready."""
    return {
        "max_error_increase": config.max_error_increase,
        "max_error": config.max_error,
        "max_error_read_against": None if config.max_error is None else {"error": anchor.error, "on": anchor.on},
        "reference": config.reference,
        "allowance": allowance,
        "dense_val_error": dense_val,
        "simplified_val_error": simplified_val,
        "encoded_val_error": res.val_error,
        "spent_simplify": simplified_val - dense_val,
        "spent_total": res.val_error - dense_val,
        "confirmation": res.confirmation,
        "backed_off": res.backed_off,
        "within_budget": res.within_budget,
        "seen_validation_warning": warning,
    }
