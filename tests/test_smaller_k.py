"""The last stage, fewer values (FilterSearch.smaller_k): every weight stored as a lossless record is
clustered again to fewer values, largest record first, kept while the model passes the rule as it is."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weightless.errors import InputError  # noqa: E402
from weightless.io import files as api  # noqa: E402
from weightless.io.clustered import Clustered  # noqa: E402
from weightless.pipeline import DecisionRule, EncodeConfig, FilterSearch, Retraining, TailConfig  # noqa: E402
from weightless.pipeline.encode import encode_with_retraining  # noqa: E402

from test_pipeline_encode import K, data, simplified  # noqa: E402,F401  (module fixtures: MNIST subset)

LOSSLESS = {"fc1.weight": 0, "fc2.weight": 0}
NO_TAIL = TailConfig(enabled=False)


def _run(simplified, data, rule, smaller_k=(3, 2), t=LOSSLESS, tail=NO_TAIL):
    return encode_with_retraining(simplified, data, EncodeConfig(
        rule=rule, filters=FilterSearch(t=t, smaller_k=smaller_k, seed_trials=1), retraining=Retraining(train=None),
        tail=tail), confirm_fraction=0.0)


def _lines(res):
    return [r for r in res.tail if "fewer values" in r["what"]]


def test_every_rung_passes_under_a_loose_rule(simplified, data, tmp_path):
    res = _run(simplified, data, DecisionRule(tolerance=1e9))
    for rep in res.layers:
        assert rep.k == 2 and rep.lossless_bytes == rep.filter_bytes
        w = res.tensors[rep.name]
        assert isinstance(w, Clustered) and w.codebook.size == 2
    assert [(r["what"], r["accepted"]) for r in _lines(res)] == [
        ("fc1.weight with fewer values, k=3", True), ("fc1.weight with fewer values, k=2", True),
        ("fc2.weight with fewer values, k=3", True), ("fc2.weight with fewer values, k=2", True)]  # largest record first
    assert _lines(res)[1]["bytes"] < _lines(res)[0]["bytes"]
    path = tmp_path / "m.wl"
    api.save(path, res.tensors)
    back = api.load(path)
    for rep in res.layers:  # the file holds exactly the weights the model was scored with
        assert np.array_equal(back[rep.name].numpy(), res.model.state_dict()[rep.name].numpy())


def test_each_layer_is_a_stage_a_back_off_can_undo_alone(simplified, data, monkeypatch):
    import weightless.pipeline.encode as enc_mod

    seen, real = [], enc_mod._confirmed
    monkeypatch.setattr(enc_mod, "_confirmed", lambda enc, c, say: (seen.extend(s.label for s in enc.stages), real(enc, c, say))[1])
    _run(simplified, data, DecisionRule(tolerance=1e9))
    assert seen[-2:] == ["fewer values (fc1.weight k=2)", "fewer values (fc2.weight k=2)"]


def test_the_first_rejected_rung_stops_the_ladder(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=0.0, confidence_z=50.0))
    assert all(rep.k == K and res.tensors[rep.name].codebook.size == K for rep in res.layers)
    assert [(r["what"], r["accepted"]) for r in _lines(res)] == [
        ("fc1.weight with fewer values, k=3", False), ("fc2.weight with fewer values, k=3", False)]


def test_no_rungs_keep_the_recipe_k(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=1e9), smaller_k=())
    assert all(rep.k == K for rep in res.layers) and _lines(res) == []


def test_filters_and_rungs_at_or_above_k_are_left_alone(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=1e9), smaller_k=(8, K), t={"fc1.weight": 0, "fc2.weight": 5})
    assert all(rep.k == K for rep in res.layers) and _lines(res) == []
    res = _run(simplified, data, DecisionRule(tolerance=1e9), t={"fc1.weight": 0, "fc2.weight": 5})
    assert [rep.k for rep in res.layers] == [2, K] and res.tensors["fc2.weight"].filter.t == 5


def test_the_tail_weights_get_fewer_values_too(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=1e9), smaller_k=(8, 3), tail=TailConfig(nonzero=(1.0,)))
    w = res.tensors["fc3.weight"]
    assert isinstance(w, Clustered) and w.codebook.size == 3
    assert "fc3.weight with fewer values, k=3" in [r["what"] for r in _lines(res)]


@pytest.mark.parametrize("bad", [(0,), (2.5,), ("4",)])
def test_bad_rungs_are_an_input_error(bad):
    with pytest.raises(InputError, match="smaller_k"):
        FilterSearch(smaller_k=bad).validate()


def test_cli_list_parses_and_rejects():
    from weightless_lab.cli.cmd_compress import parse_k_list

    assert parse_k_list(None) is None and parse_k_list("none") == () and parse_k_list("6,4") == (6, 4)
    for bad in ("6;4", "0", "x"):
        with pytest.raises(InputError, match="--smaller-k"):
            parse_k_list(bad)



def _auto(simplified, data, smaller_k=(2,)):
    return encode_with_retraining(simplified, data, EncodeConfig(
        rule=DecisionRule(tolerance=1e9), filters=FilterSearch(smaller_k=smaller_k, seed_trials=1, lossless_fallback=False),
        retraining=Retraining(train=None), tail=NO_TAIL), confirm_fraction=0.0)


def test_a_filter_that_passes_is_tried_at_half_the_values_and_t_minus_one(simplified, data, tmp_path):
    res = _auto(simplified, data)
    for rep in res.layers:  # k = 4 passes at t_min = 3; then k = 2 at t = 2 (the same false-positive rate)
        assert (rep.k, rep.t) == (2, 2) and res.tensors[rep.name].filter.t == 2
        assert res.tensors[rep.name].codebook.size == 2
        rows = [(r.get("k"), r["t"], r["accepted"]) for r in rep.trials]
        assert (None, 3, True) in rows and rows[-1] == (2, 2, True)  # the t search's rows (by t), then the half
    path = tmp_path / "m.wl"
    api.save(path, res.tensors)
    back = api.load(path)
    for rep in res.layers:
        assert np.array_equal(back[rep.name].numpy(), res.model.state_dict()[rep.name].numpy())


def test_a_rejected_half_keeps_the_filter_that_passed(simplified, data, monkeypatch):
    from dataclasses import replace

    from weightless.pipeline import encode

    real = encode._Encoder.trial

    def strict(self, name, t, indices, codebook, trainable):
        tr = real(self, name, t, indices, codebook, trainable)
        return replace(tr, decision=replace(tr.decision, accepted=False)) if self.k[name] < K else tr

    monkeypatch.setattr(encode._Encoder, "trial", strict)
    res = _auto(simplified, data)
    for rep in res.layers:
        assert (rep.k, rep.t) == (K, 3) and res.tensors[rep.name].codebook.size == K
        rows = [(r.get("k"), r["t"], r["accepted"]) for r in rep.trials]
        assert (None, 3, True) in rows and rows[-1] == (2, 2, False)


def test_a_half_whose_filter_is_not_smaller_than_its_record_is_stored_lossless(simplified, data, monkeypatch):
    from weightless.pipeline import encode

    real = encode.lossless_bytes
    monkeypatch.setattr(encode, "lossless_bytes", lambda idx, cb: 1 if np.asarray(cb).size == 2 else real(idx, cb))
    res = encode_with_retraining(simplified, data, EncodeConfig(
        rule=DecisionRule(tolerance=1e9), filters=FilterSearch(smaller_k=(2,), seed_trials=1), retraining=Retraining(train=None),
        tail=NO_TAIL), confirm_fraction=0.0)
    for rep in res.layers:
        assert (rep.k, rep.t, rep.construction) == (2, 0, "lossless")
        w = res.tensors[rep.name]
        assert isinstance(w, Clustered) and w.codebook.size == 2
        assert [(r.get("k"), r["t"], r["accepted"]) for r in rep.trials][-1] == (2, 0, True)
