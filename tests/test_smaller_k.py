"""The smaller-k rungs of a chosen layer (FilterSearch.smaller_k): clustered again to fewer values
before the t search, kept while the model passes the rule as it is."""

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


def _run(simplified, data, rule, smaller_k=(3, 2)):
    return encode_with_retraining(simplified, data, EncodeConfig(
        rule=rule, filters=FilterSearch(t=LOSSLESS, smaller_k=smaller_k), retraining=Retraining(train=None),
        tail=TailConfig(enabled=False)), confirm_fraction=0.0)


def test_every_rung_passes_under_a_loose_rule(simplified, data, tmp_path):
    res = _run(simplified, data, DecisionRule(tolerance=1e9))
    for rep in res.layers:
        assert rep.k == 2 and [r["k"] for r in rep.k_trials] == [3, 2] and all(r["accepted"] for r in rep.k_trials)
        assert rep.k_trials[-1]["lossless_bytes"] == rep.lossless_bytes < rep.k_trials[0]["lossless_bytes"]
        w = res.tensors[rep.name]
        assert isinstance(w, Clustered) and w.codebook.size == 2
    path = tmp_path / "m.wl"
    api.save(path, res.tensors)
    back = api.load(path)
    for rep in res.layers:  # the file holds exactly the weights the model was scored with
        assert np.array_equal(back[rep.name].numpy(), res.model.state_dict()[rep.name].numpy())


def test_the_first_rejected_rung_stops_the_ladder(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=0.0, confidence_z=50.0))
    for rep in res.layers:
        assert rep.k == K and [r["k"] for r in rep.k_trials] == [3] and not rep.k_trials[0]["accepted"]
        assert np.array_equal(res.tensors[rep.name].codebook.size, K)


def test_no_rungs_keep_the_recipe_k(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=1e9), smaller_k=())
    assert all(rep.k == K and rep.k_trials == [] for rep in res.layers)


def test_rungs_at_or_above_k_are_not_tried(simplified, data):
    res = _run(simplified, data, DecisionRule(tolerance=1e9), smaller_k=(8, K))
    assert all(rep.k == K and rep.k_trials == [] for rep in res.layers)


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
