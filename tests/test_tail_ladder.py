"""The whole-model stage's nonzero ladder: down from the top, one rung at a time."""

import re

import numpy as np

import pytest

from weightless.pipeline.config import EncodeConfig
from weightless.pipeline.whole import _Tail


@pytest.mark.parametrize("passing, expected", [
    (0.5, [100, 50, 25]),              # the usual case: one rejected rung, none wasted below it
    (0.0625, [100, 50, 25, 12.5, 6.25]),
    (1.0, [100, 50]),
])
def test_weight_walks_the_ladder_down_until_a_rung_is_rejected(passing, expected):
    tail = _Tail.__new__(_Tail)
    tail.cfg, tail.say = EncodeConfig(), lambda s: None
    tried, kept = [], []

    def attempt(change, what, exact_only=False):
        pct = float(re.search(r"at ([\d.]+)% nonzero", what).group(1))
        tried.append(pct)
        return pct / 100 >= passing - 1e-12, pct, {}, {}

    tail.attempt = attempt
    tail.keep = lambda cand, enc, new: kept.append(cand)
    tail.weight(0, "w")
    assert tried == expected
    assert kept == [100 * passing]


class _Edge:
    """A contract whose rule rejects every candidate (a model at the edge of its budget);
    ``same`` says whether a candidate changes no outcome on the decision data."""

    def __init__(self, same):
        from weightless.pipeline.contract import Decision

        self.same, self.rejected = same, Decision(1.0, 0.9, 0.1, 0.1, False)

    def decide(self, model, allowance=None):
        return self.rejected

    def same_outcomes(self, a, b):
        return self.same


def _edge_tail(model, same):
    from dataclasses import replace

    cfg = EncodeConfig()
    cfg = replace(cfg, retraining=replace(cfg.retraining, train=None))
    return _Tail(model, None, cfg, {}, _Edge(same), None, False, lambda s: None)


def test_at_the_edge_of_the_budget_a_weight_is_clustered_when_no_outcome_changes():
    """Every rule rung rejected: the first exact_k rung (16 values) that changes no outcome and is
    smaller than float16 is kept; a tensor too small for any such record goes on to float16."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(4, 2))  # never run: the contract is a stub
    tail = _edge_tail(model, same=True)
    tail.weight(0, "0.weight")
    tail.weight(1, "1.weight")  # 8 weights: float16 takes 16 B, no clustered record is smaller
    idx, cb = tail.rest["0.weight"]
    assert cb.size == 16 and idx.shape == (32, 64)
    assert np.array_equal(cb[idx], tail.model.get_parameter("0.weight").detach().numpy())
    kept = [d["what"] for d in tail.report if d["accepted"]]
    assert kept[0].startswith("0.weight clustered to 16 values") and "no outcome" in kept[0]
    assert kept[1].startswith("1.weight rounded to float16")
    tail.vectors()
    assert sorted(tail.rest) == ["0.bias", "0.weight", "1.bias", "1.weight"]


def test_at_the_edge_of_the_budget_a_step_that_changes_an_outcome_is_rejected():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32))
    before = model[0].weight.detach().clone()
    tail = _edge_tail(model, same=False)
    tail.weight(0, "0.weight")
    assert not any(d["accepted"] for d in tail.report) and "0.weight" not in tail.rest
    assert torch.equal(tail.model[0].weight, before)
    assert [d["what"].split(" as it is")[0] for d in tail.report][1:4] == [
        f"0.weight clustered to {k} values" for k in (16, 64, 256)]


def test_clustering_retries_with_fewer_values_when_k_means_merges_them():
    """k-means that cannot make k distinct float32 values is asked again at 3/4 of k; below 2 the
    error stands."""
    from weightless.errors import ConstructionError
    from weightless.pipeline.whole import _fewer_values

    asked: list[int] = []

    def cluster(k: int) -> int:
        asked.append(k)
        if k > 100:
            raise ConstructionError(f"{k} values collapsed")
        return k

    assert _fewer_values(cluster, 256) == 81 and asked == [256, 192, 144, 108, 81]

    def never(k: int) -> int:
        raise ConstructionError("collapsed")

    with pytest.raises(ConstructionError):
        _fewer_values(never, 16)


def test_the_last_step_reports_the_rejections_after_it():
    """A step kept, then a rejected one (no biases to end with a kept step): the stage's
    report still lists the rejection."""
    from dataclasses import replace

    from weightless.pipeline.whole import simplify_rest

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(4, 2, bias=False))
    contract = _Edge(same=True)
    answers = iter([True])
    contract.same_outcomes = lambda a, b: next(answers, False)  # only the first exact step changes no outcome
    cfg = EncodeConfig()
    cfg = replace(cfg, retraining=replace(cfg.retraining, train=None))
    steps = simplify_rest(model, None, cfg, encoded={}, contract=contract, teacher=None, progress=False, say=lambda s: None)
    assert [s.what.split(" clustered")[0] for s in steps] == ["0.weight"]
    assert steps[-1].report[-1]["what"] == "1.weight rounded to float16" and not steps[-1].report[-1]["accepted"]


class _Half:
    """A contract stub accepting a model whose first weight keeps at least half its entries."""

    def decide(self, model, allowance=None):
        from weightless.pipeline.contract import Decision

        w = model[0].weight
        return Decision(1.0, 0.9, 0.1, 0.1, int((w != 0).sum()) >= w.numel() // 2)

    def same_outcomes(self, a, b):
        return False


def test_a_kept_step_is_named_by_the_rung_kept_not_the_rung_rejected_after_it():
    """The back-off reports what it undoes by these names (the JSON of 2341716 named the rejected
    rung: 'the whole-model stage (12.weight at 50% nonzero, k=16)' for the 100% rung kept)."""
    from dataclasses import replace

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32))
    cfg = EncodeConfig()
    cfg = replace(cfg, retraining=replace(cfg.retraining, train=None))
    tail = _Tail(model, None, cfg, {}, _Half(), None, False, lambda s: None)
    tail.weight(0, "0.weight")
    assert [d["accepted"] for d in tail.report] == [True, True, False]
    assert [s.what for s in tail.steps] == ["0.weight at 50% nonzero, k=16"]


def test_a_layer_report_is_recounted_only_when_its_indices_changed():
    """The whole-model stage recounts an encoded layer's report when its indices changed (units
    cut or dropped, clustered again), not when they were only copied or the codebook retrained."""
    from weightless.pipeline.encode import _changed

    idx = np.array([[0, -1], [1, 0]])
    cb = np.array([0.5, 1.0], np.float32)
    assert not _changed((idx, cb), (idx, cb)) and not _changed(None, (idx, cb)) and not _changed((idx, cb), None)
    assert not _changed((idx, cb), (idx.copy(), cb * 2))  # a copy, a retrained codebook
    assert _changed((idx, cb), (np.array([[1, -1], [0, 0]]), cb))  # clustered again, same positions
    assert _changed((idx, cb), (np.array([[0, -1], [-1, 0]]), cb))
