"""The accuracy contract: decisions on the task's metric (never the loss), a confirmation split
no decision sees, back-off when the final model is over budget, BudgetError when nothing fits."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import weightless  # noqa: E402
from weightless import (  # noqa: E402
    BudgetError,
    CompressConfig,
    DecisionRule,
    EncodeConfig,
    FilterSearch,
    LayerSelect,
    Recipe,
    Retraining,
    TailConfig,
    TrainConfig,
)
from weightless.io.clustered import Clustered  # noqa: E402
from weightless.pipeline.contract import Contract, paired_difference, seen_validation, split_data  # noqa: E402
from weightless.pipeline.encode import encode_with_retraining  # noqa: E402
from weightless.simplify import PruneSchedule  # noqa: E402
from weightless.training import Task  # noqa: E402

from test_pipeline_encode import data, simplified  # noqa: E402,F401  (module fixtures: MNIST subset)


def test_the_rule_is_on_errors_and_one_sided() -> None:
    ref = np.zeros(2000)
    cand = np.zeros(2000)
    cand[:4] = 1  # +0.2 pp
    assert not paired_difference(cand, ref, 0.1, 0.0).accepted
    d = paired_difference(cand, ref, 0.3, 1.645)
    assert d.difference == pytest.approx(0.2) and d.accepted == (0.2 + 1.645 * d.standard_error <= 0.3)
    lo, hi = d.ci95()
    assert lo < 0.2 < hi
    with pytest.raises(weightless.InputError):
        paired_difference(cand, ref[:10], 0.1, 0.0)


def test_split_data_sets_aside_a_confirmation_part(data) -> None:
    task = Task(train=data.train, val=data.val, test=data.test)
    s = split_data(task, 0.5)
    n_dec, n_conf = len(s.decide.source("val")), len(s.confirm.source("val"))
    assert n_dec + n_conf == len(task.source("val")) and n_conf == pytest.approx(n_dec, abs=1)
    assert len(s.rank.source("val")) <= 5000 and s.disjoint
    assert split_data(task, 0.0).confirm is None


def test_seen_validation_warns_only_far_below_test() -> None:
    assert seen_validation(0.2, 10000, 0.95, 10000) is not None  # the third-party CNN of the issue
    assert seen_validation(0.9, 10000, 0.95, 10000) is None


def test_loss_trap_is_closed(simplified, data, monkeypatch) -> None:
    """A candidate whose loss falls while its errors rise is rejected: the loss never accepts."""
    import weightless.training.loop as tl

    real = tl.per_example
    calls = {"n": 0}

    def fake(model, task, split="val", **kw):
        errs, losses = real(model, task, split, **kw)
        calls["n"] += 1
        if calls["n"] > 2:  # every candidate after the reference: more errors, lower loss
            errs = errs.copy()
            errs[: max(1, errs.size // 20)] = 1.0
            losses = losses * 0.5
        return errs, losses

    monkeypatch.setattr(tl, "per_example", fake)
    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.1), filters=FilterSearch(seed_trials=1, t_max=8),
                       retraining=Retraining(train=None), tail=TailConfig(enabled=False))
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    assert all(r.t == 0 for r in res.layers)  # every filter rejected: stored lossless
    assert all(not tr["accepted"] for r in res.layers for tr in r.trials if tr["t"])


def test_back_off_undoes_a_filter_over_budget(simplified, data) -> None:
    """A fixed t far too small passes no rule; the confirmation split catches the final model
    over the allowance and the pipeline backs off to the lossless record, and says so."""
    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.0), filters=FilterSearch(t={"fc1.weight": 3, "fc2.weight": 3}, seed_trials=1),
                       retraining=Retraining(train=None), tail=TailConfig(enabled=False))
    lines: list[str] = []
    res = encode_with_retraining(simplified, data, cfg, log=lines.append)
    assert res.backed_off and res.within_budget
    assert all(r.t == 0 and r.backed_off for r in res.layers)
    assert all(isinstance(res.tensors[n], Clustered) for n in ("fc1.weight", "fc2.weight"))
    assert res.confirmation is not None and res.confirmation["difference"] <= 0.0
    assert any(line.startswith("backed off") for line in lines)


def _cfg(**kw) -> CompressConfig:
    quick = TrainConfig(epochs=0.2, lr=1e-3, seed=0)
    recipe = Recipe(select=LayerSelect(nonzero=0.02, k=4, types=("Linear",), min_size=20000),
                    prune=PruneSchedule(steps=1, retrain=quick), finetune=quick)
    return CompressConfig(recipe=recipe, encode=EncodeConfig(filters=FilterSearch(seed_trials=1, t_max=6),
                                                                 retraining=Retraining(train=quick)),
                          simplify_retries=0, progress=False, **kw)


def test_budget_error_when_nothing_fits(simplified, data) -> None:
    with pytest.raises(BudgetError, match="budget") as info:
        weightless.compress(simplified.model, data, config=_cfg(max_error_increase=0.0))
    assert info.value.report["spent_simplify"] > 0
    res = weightless.compress(simplified.model, data, config=_cfg(max_error_increase=0.0, allow_over_budget=True))
    assert res.within_budget is False or res.budget["spent_simplify"] > 0


def test_budget_fields_are_checked_before_any_work() -> None:
    with pytest.raises(weightless.InputError, match="max_error_increase must be a number"):
        CompressConfig(max_error_increase="0.1").validate()
    with pytest.raises(weightless.InputError, match="a budget is needed"):
        CompressConfig(max_error_increase=None).validate()
    with pytest.raises(weightless.InputError, match="reference"):
        CompressConfig(reference="teacher").validate()
    for bad in (1.0, 0.5, True, "2"):
        with pytest.raises(weightless.InputError, match="simplify_factor"):
            CompressConfig(simplify_factor=bad).validate()
    assert CompressConfig(max_error=1.0).allowance(0.8) == pytest.approx(0.2)
    assert CompressConfig(max_error=1.0, max_error_increase=0.1).allowance(0.8) == pytest.approx(0.1)


def test_overspending_pruning_stops_before_clustering_and_goes_on_gentler(simplified, data) -> None:
    """Pruning that already spends more than the simplification's share is not clustered nor
    fine-tuned; the gentler run starts from the recorded pruning step that covers its targets."""
    cfg = _cfg(max_error_increase=0.3)
    cfg = replace(cfg, simplify_retries=1, simplify_factor=2.0,
                  recipe=replace(cfg.recipe, select=replace(cfg.recipe.select, nonzero=0.005),
                                 prune=replace(cfg.recipe.prune, steps=2)), allow_over_budget=True)
    lines: list[str] = []
    weightless.compress(simplified.model, data, config=cfg, log=lines.append)
    stopped = [ln for ln in lines if ln.startswith("pruned (") and "not clustered" in ln]
    assert stopped, lines
    assert any("trying again gentler, from the pruning step at" in ln for ln in lines)
    assert any(ln.startswith("simplified (") and "1%" in ln for ln in lines)  # the gentler run went to the end


def test_a_simplified_model_over_budget_on_the_confirmation_data_goes_gentler(simplified, data, monkeypatch) -> None:
    """Within its share on the decision data but over the allowance on the confirmation data:
    simplified again gentler; with no retry left, BudgetError before any encoding."""
    from weightless.pipeline.contract import Decision

    monkeypatch.setattr(Contract, "confirm", lambda self, m: Decision(9.0, 8.0, 1.0, 0.1, False))
    cfg = replace(_cfg(max_error_increase=100.0), simplify_retries=1, simplify_factor=2.0)
    lines: list[str] = []
    with pytest.raises(BudgetError, match="simplified model alone is \\+1.00 pp over the given model on the confirmation"):
        weightless.compress(simplified.model, data, config=cfg, log=lines.append)
    assert any(ln.startswith("simplification over the budget on the confirmation data: trying again gentler") for ln in lines), lines
    assert not any("t=" in ln for ln in lines)  # no encoding started
    lines.clear()
    res = weightless.compress(simplified.model, data, config=replace(cfg, allow_over_budget=True), log=lines.append)
    assert any(ln.startswith("WARNING: the simplified model alone") for ln in lines) and res.within_budget is False


def test_max_error_is_read_against_the_given_models_test_error(simplified, data) -> None:
    """With test data, ``max_error`` is the error a user will see there: the allowance is
    ``max_error`` minus the given model's test error (spent as an increase on the validation
    data); without test data, minus its error on the decision data."""
    from weightless.pipeline.api import _Anchor
    from weightless.training import evaluate

    cfg = CompressConfig(max_error=1.0, max_error_increase=None)
    assert _Anchor.of(cfg, 0.9, 0.67) == _Anchor(0.67, "test data")
    assert _Anchor.of(cfg, 0.9, None) == _Anchor(0.9, "decision data")
    assert _Anchor.of(CompressConfig(), 0.9, 0.67).on == "decision data"  # only max_error is absolute
    test_err = evaluate(simplified.model, data, split="test")
    with pytest.raises(BudgetError, match=f"already has {test_err:.2f}% error on the test data, above max_error"):
        weightless.compress(simplified.model, data, config=_cfg(max_error=test_err - 0.01, max_error_increase=None))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("budget, spent, share, tried", [
    (0.5, 0.30, None, ["2%"]),  # 0.6 of a 0.5 pp budget: kept (0.7 of it, 0.34 pp, may go)
    (0.5, 0.30, 0.5, ["2%", "4%"]),  # with half the budget: gentler
    (0.3, 0.18, None, ["2%", "4%"]),  # 0.6 of a 0.3 pp budget would leave 0.12 pp: half it is
])
def test_simplification_may_spend_0_7_of_the_budget_but_leaves_the_reserve(
        simplified, data, monkeypatch, budget, spent, share, tried) -> None:
    """By default simplification may spend 0.7 of the budget, but leaves at least
    ``simplify_reserve`` (0.16 pp) to the later steps unless that is under half of it. The error
    is scripted from the selected layer's density: the given model is at 10%, the recipe's 2%."""
    from weightless.pipeline.contract import Decision

    def fake_evaluate(model, task, split="val"):
        density = float((model.fc1.weight.detach() != 0).float().mean())
        return 2.0 if density > 0.08 else 2.0 + spent

    monkeypatch.setattr(weightless.training, "evaluate", fake_evaluate)
    monkeypatch.setattr(Contract, "confirm", lambda self, m: Decision(2.0, 2.0, 0.0, 0.1, True))
    cfg = replace(_cfg(max_error_increase=budget), simplify_retries=1, simplify_factor=2.0)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("budget:"):
            raise _Stop

    with pytest.raises(_Stop):
        weightless.compress(simplified.model, data, config=cfg if share is None else replace(cfg, simplify_share=share),
                            log=log)
    assert [ln.split("(")[1].split(")")[0].split()[-1] for ln in lines if ln.startswith(("simplified (", "pruned ("))] \
        == tried, lines


def test_simplify_allowance() -> None:
    cfg = CompressConfig()
    assert cfg.simplify_allowance(0.5) == pytest.approx(0.34)  # 0.5 - 0.16, under 0.7 x 0.5
    assert cfg.simplify_allowance(1.0) == pytest.approx(0.7)
    assert cfg.simplify_allowance(0.27) == pytest.approx(0.135)  # half: 0.27 - 0.16 is less
    assert replace(cfg, simplify_share=0.3).simplify_allowance(0.27) == pytest.approx(0.081)
    assert replace(cfg, simplify_reserve=0.0).simplify_allowance(0.27) == pytest.approx(0.189)
    with pytest.raises(weightless.InputError, match="simplify_reserve"):
        replace(cfg, simplify_reserve=-0.1).validate()


def test_a_budget_under_one_outcome_is_said_at_once(simplified, data) -> None:
    """A budget smaller than the rule needs to accept a step that changes one outcome of the
    decision data ((1 + z) x 100 / n pp) is said before any work: only exact steps can pass."""
    n = len(split_data(Task(train=data.train, val=data.val, test=data.test), 0.5).decide.source("val"))
    floor = (1 + 1.645) * 100 / n
    for budget, warned in ((0.9 * floor, True), (1.1 * floor, False)):
        lines: list[str] = []

        def log(line: str) -> None:
            lines.append(line)
            if line.startswith(("WARNING: the budget", "simplified (", "pruned (")):
                raise _Stop

        with pytest.raises(_Stop):
            weightless.compress(simplified.model, data, config=_cfg(max_error_increase=budget), log=log)
        assert any(ln.startswith("WARNING: the budget") for ln in lines) == warned, lines
