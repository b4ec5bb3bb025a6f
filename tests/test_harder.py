"""The per-layer nonzero search (FilterSearch.harder): before its t search, a layer is cut to fewer
nonzeros (largest magnitudes kept, retrained), kept while the rule accepts within the layer's
share of what is left of the budget (its lossless bytes over those of it and the later layers)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weightless.errors import InputError  # noqa: E402
from weightless.io import files as api  # noqa: E402
from weightless.pipeline import DecisionRule, EncodeConfig, FilterSearch, Retraining, TailConfig  # noqa: E402
from weightless.pipeline.encode import encode_with_retraining  # noqa: E402
from weightless.training import TrainConfig  # noqa: E402

from test_pipeline_encode import data, simplified  # noqa: E402,F401  (module fixtures: MNIST subset)

QUICK = TrainConfig(epochs=0.1, lr=1e-3, seed=0, threads=1)
LOOSE = DecisionRule(tolerance=1e9)


def _run(simplified, data, rule, harder=(0.5, 0.25)):
    return encode_with_retraining(simplified, data, EncodeConfig(
        rule=rule, filters=FilterSearch(harder=harder, smaller_k=(), seed_trials=1, t_max=4),
        retraining=Retraining(train=QUICK), tail=TailConfig(enabled=False)), confirm_fraction=0.0)


def _cuts(rep):
    return [r for r in rep.trials if "nonzero" in r]


def _nonzero(simplified, name):
    return int((simplified.layers[name].indices >= 0).sum())


def test_every_cut_is_kept_under_a_loose_rule_and_the_file_holds_the_scored_model(simplified, data, tmp_path):
    res = _run(simplified, data, LOOSE)
    for rep in res.layers:
        n0 = _nonzero(simplified, rep.name)
        assert [(c["nonzero"], c["accepted"]) for c in _cuts(rep)] == [(round(n0 / 2), True), (round(n0 / 4), True)]
        assert rep.nonzero <= round(n0 / 4)  # a filter's false positives are not nonzeros of the record
        kept = np.asarray(res.indices[rep.name]) >= 0
        assert int(kept.sum()) == round(n0 / 4)
        assert kept[np.asarray(simplified.layers[rep.name].indices) < 0].sum() == 0  # a cut only removes weights
    path = tmp_path / "m.wl"
    api.save(path, res.tensors)
    back = api.load(path)
    for rep in res.layers:
        assert np.array_equal(back[rep.name].numpy(), res.model.state_dict()[rep.name].numpy())


def test_the_budget_is_shared_by_bytes(simplified, data):
    res = _run(simplified, data, LOOSE, harder=(0.5,))
    first, last = (_cuts(rep)[0]["allowance"] for rep in res.layers)
    assert first < 0.99e9  # fc1 gets its share of what is left, not all of it
    assert last == pytest.approx(1e9)  # the last chosen layer may spend all that is left


def test_a_rejected_cut_leaves_the_layer_alone(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=0.0, confidence_z=50.0))
    for rep in res.layers:
        assert [c["accepted"] for c in _cuts(rep)] == [False]
        assert int((np.asarray(res.indices[rep.name]) >= 0).sum()) == _nonzero(simplified, rep.name)


def test_no_cuts_when_switched_off(simplified, data):
    res = _run(simplified, data, LOOSE, harder=())
    assert all(_cuts(rep) == [] and int((np.asarray(res.indices[rep.name]) >= 0).sum()) == _nonzero(simplified, rep.name)
               for rep in res.layers)


@pytest.mark.parametrize("bad", [(1.0,), (0.0,), (0.5, 0.7), (True,), ("0.5",)])
def test_bad_fractions_are_an_input_error(bad):
    with pytest.raises(InputError, match="filters.harder"):
        FilterSearch(harder=bad).validate()


def test_cli_fractions_parse_and_reject():
    from weightless_lab.cli.cmd_compress import parse_fractions

    assert parse_fractions(None) is None and parse_fractions("none") == () and parse_fractions("0.7,0.5") == (0.7, 0.5)
    for bad in ("0.5;0.3", "1.5", "0.3,0.5", "x"):
        with pytest.raises(InputError, match="--harder"):
            parse_fractions(bad)


def test_a_fixed_t_layer_is_cut_too(simplified, data):
    """A layer whose t is fixed (0: lossless, as the every-layer-lossless comparison runs) gets
    the same cuts, so that comparison measures the filters alone."""
    res = encode_with_retraining(simplified, data, EncodeConfig(
        rule=LOOSE, filters=FilterSearch(t={"fc1.weight": 0, "fc2.weight": 0}, harder=(0.5,), smaller_k=(), seed_trials=1),
        retraining=Retraining(train=QUICK), tail=TailConfig(enabled=False)), confirm_fraction=0.0)
    for rep in res.layers:
        assert rep.t == 0 and [c["nonzero"] for c in _cuts(rep)] == [round(_nonzero(simplified, rep.name) / 2)]


@pytest.mark.parametrize("layer_share", [True, False])
def test_filter_trials_are_decided_within_the_layer_share(simplified, data, monkeypatch, layer_share):
    """With FilterSearch.layer_share a layer's filter trials get its share (fc1: part of what is
    left, fc2, the last chosen layer: all of it); without it, the whole allowance."""
    from weightless.pipeline.contract import Contract

    seen, real = [], Contract.decide

    def spy(self, model, allowance=None):
        seen.append(allowance)
        return real(self, model, allowance)

    monkeypatch.setattr(Contract, "decide", spy)
    res = encode_with_retraining(simplified, data, EncodeConfig(
        rule=LOOSE, filters=FilterSearch(harder=(), smaller_k=(), seed_trials=1, t_min=4, t_max=4, lossless_fallback=False,
                                         layer_share=layer_share),
        retraining=Retraining(train=QUICK), tail=TailConfig(enabled=False)), confirm_fraction=0.0)
    assert [r.t for r in res.layers] == [4, 4]
    given = [a for a in seen if a is not None]
    if layer_share:  # the two layers' trials (before and after retraining, if any)
        assert given and min(given) < 0.99e9 and max(given) == pytest.approx(1e9)
    else:
        assert given == []
