"""Pipeline: layer-by-layer encoding with retraining on a tiny MNIST subset (a few seconds)."""

import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weightless.io import files as api  # noqa: E402
from weightless_lab.data.mnist import load_mnist  # noqa: E402
from weightless_lab.models import get_model  # noqa: E402
from weightless.pipeline import (  # noqa: E402
    DecisionRule,
    EncodeConfig,
    FilterSearch,
    Retraining,
    TailConfig,
    encode_with_retraining,
)
from weightless.simplify.cluster import cluster_weight  # noqa: E402
from weightless.simplify.recipe import LayerResult, SimplifyResult  # noqa: E402
from weightless.training import TrainConfig, evaluate, train  # noqa: E402

K = 4
LAYERS = ("fc1.weight", "fc2.weight")


@pytest.fixture(scope="module")
def data(load_data):
    return load_data(load_mnist, "MNIST").subset(2000, 1000)


@pytest.fixture(scope="module")
def simplified(data):
    """A small 'simplified' LeNet-300-100: one epoch on 2,000 images, fc1/fc2 pruned to 10% by
    magnitude and clustered to 4 values."""
    torch.manual_seed(0)
    model = get_model("lenet300", seed=0)
    train(model, data, TrainConfig(epochs=1, lr=2e-3, seed=0, threads=1))
    layers = {}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for i, name in enumerate(LAYERS):
            w = params[name].detach().numpy()
            thr = np.quantile(np.abs(w), 0.9)
            cl = cluster_weight(np.where(np.abs(w) > thr, w, 0).astype(np.float32), K, "density", seed=i)
            params[name].copy_(torch.from_numpy(cl.weights()))
            layers[name] = LayerResult(name=name, paper_name=name, method="magnitude", k=K, init="density",
                                       indices=cl.indices, codebook=cl.codebook, mask=cl.mask,
                                       nonzero_fraction=float(cl.mask.mean()))
    err = evaluate(model, data.val)
    return SimplifyResult(model=model, recipe=None, layers=layers, test_error=evaluate(model, data.test),
                          val_error=err, dense_test_error=err, pruned_test_error=err, seconds={})


RETRAIN = TrainConfig(epochs=0.5, lr=1e-3, seed=0, threads=1)
NO_RETRAIN = Retraining(train=None)
NO_TAIL = TailConfig(enabled=False)


@pytest.fixture(scope="module")
def result(simplified, data):
    return encode_with_retraining(simplified, data, CFG)


CFG = EncodeConfig(filters=FilterSearch(t={"fc1.weight": 4, "fc2.weight": 5}, harder=()),
                   retraining=Retraining(train=RETRAIN, train_encoded=False), tail=NO_TAIL)


def _param(model, name):
    return dict(model.named_parameters())[name].detach().numpy()


def test_encoded_layers_are_frozen_at_the_filter_reconstruction(result, simplified):
    for name in LAYERS:
        enc = result.tensors[name]
        rec = enc.filter.reconstruct(enc.shape, enc.codebook)
        assert _param(result.model, name).tobytes() == rec.tobytes()  # retraining did not touch it
        assert enc.filter.t == {"fc1.weight": 4, "fc2.weight": 5}[name]
    # fc1 is encoded first: its weights keep the simplified nonzeros, plus false positives
    w0 = _param(simplified.model, "fc1.weight")
    w1 = _param(result.model, "fc1.weight")
    nz = w0 != 0
    assert np.array_equal(w1[nz], w0[nz])
    fp = int(np.count_nonzero(w1[~nz]))
    assert fp == result.layers[0].false_positives > 0
    # the first layer's bias is frozen with it
    assert np.array_equal(_param(result.model, "fc1.bias"), _param(simplified.model, "fc1.bias"))


def test_later_layers_are_retrained(result, simplified):
    for name in ("fc2.bias", "fc3.weight", "fc3.bias"):
        assert not np.array_equal(_param(result.model, name), _param(simplified.model, name)), name
    # fc2 was retrained (masked) before being re-clustered and encoded: its values moved
    cb0 = simplified.layers["fc2.weight"].codebook
    assert not np.array_equal(result.tensors["fc2.weight"].codebook, cb0)
    # pruned positions stayed pruned: every nonzero of fc2 outside the mask is a false positive
    mask = simplified.layers["fc2.weight"].mask
    assert int(np.count_nonzero(_param(result.model, "fc2.weight")[~mask])) == result.layers[1].false_positives


def test_decoded_model_gives_the_same_logits(result, data, tmp_path):
    path = tmp_path / "m.wl"
    api.save(path, result.tensors)
    model = get_model("lenet300", seed=123)
    model.load_state_dict(api.load(path))
    x = torch.from_numpy(data.val.x[:500])
    model.eval()
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), result.model(x))
    assert evaluate(model, data.test) == result.test_error


def test_same_inputs_and_seeds_give_identical_bytes(result, simplified, data):
    again = encode_with_retraining(simplified, data, CFG)
    assert api.to_bytes(again.tensors, metadata={"a": 1}) == api.to_bytes(result.tensors, metadata={"a": 1})


def test_auto_t_with_huge_tolerance_is_t_min(simplified, data):
    res = encode_with_retraining(simplified, data, EncodeConfig(
        rule=DecisionRule(tolerance=1e9), filters=FilterSearch(lossless_fallback=False, smaller_k=()), retraining=NO_RETRAIN, tail=NO_TAIL))
    t_min = math.ceil(math.log2(K)) + 1
    assert [r.t for r in res.layers] == [t_min, t_min]
    assert all(r.auto_t for r in res.layers)


def test_auto_t_picks_the_smallest_passing_t(simplified, data, monkeypatch):
    """Fake per-example errors: 5 points worse than the reference below t = 7, equal from 7 on."""
    import weightless.filters as wf
    import weightless.training.loop as tl

    built: list[int] = []
    real_build = wf.build

    def spy_build(*a, **kw):
        built.append(kw["t"])
        return real_build(*a, **kw)

    def fake_per_example(model, task, split="val", **kw):
        errs = np.zeros(1000)
        if built and built[-1] < 7:
            errs[:50] = 1.0
        return errs, np.zeros(1000)

    monkeypatch.setattr(wf, "build", spy_build)
    monkeypatch.setattr(tl, "per_example", fake_per_example)
    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.01), filters=FilterSearch(t_max=12, lossless_fallback=False),
                       retraining=NO_RETRAIN, tail=NO_TAIL)
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    assert [r.t for r in res.layers] == [7, 7]
    trials = {r["t"]: r for r in res.layers[0].trials}
    assert 6 in trials and not trials[6]["accepted"] and trials[6]["difference"] == 5.0  # t = 6 tried, failed
    assert min(t for t, r in trials.items() if r["accepted"]) == 7
    assert res.layers[0].monotone


def test_encoded_codebook_and_bias_retrain_by_default(simplified, data):
    res = encode_with_retraining(simplified, data, EncodeConfig(filters=FilterSearch(t={"fc1.weight": 4, "fc2.weight": 5}),
                                                                retraining=Retraining(train=RETRAIN)))
    enc = res.tensors["fc1.weight"]
    assert enc.filter.t == 4
    assert not np.array_equal(_param(res.model, "fc1.bias"), _param(simplified.model, "fc1.bias"))
    w = _param(res.model, "fc1.weight")
    assert w.tobytes() == enc.filter.reconstruct(enc.shape, enc.codebook).tobytes()


def test_t_below_minimum_is_an_input_error(simplified, data):
    from weightless.errors import InputError

    with pytest.raises(InputError, match="too small"):
        encode_with_retraining(simplified, data, EncodeConfig(filters=FilterSearch(t={"fc1.weight": 2}),
                                                              retraining=NO_RETRAIN))


@pytest.mark.slow
def test_default_construction_without_numba_in_subprocess(tmp_path):
    """WEIGHTLESS_DISABLE_NUMBA=1 (advertised in the README): the default ``auto`` construction
    falls back to the paper construction (the compact solver needs numba) and encodes."""
    import os
    import subprocess
    import sys

    code = """
import numpy as np, torch
from weightless._compat import HAVE_NUMBA
from weightless_lab.data.mnist import load_mnist
from weightless_lab.models import get_model
from weightless.pipeline import EncodeConfig, FilterSearch, encode_with_retraining
from weightless.pipeline.steps import resolve_construction
from weightless.simplify.cluster import cluster_weight
from weightless.simplify.recipe import LayerResult, SimplifyResult
assert not HAVE_NUMBA
assert EncodeConfig().filters.construction == "auto" and resolve_construction("auto", 1000) == "paper"
data = load_mnist().subset(200, 200)
model = get_model("lenet300", seed=0)
params = dict(model.named_parameters())
layers = {}
with torch.no_grad():
    name = "fc3.weight"
    w = params[name].detach().numpy()
    thr = np.quantile(np.abs(w), 0.8)
    cl = cluster_weight(np.where(np.abs(w) > thr, w, 0).astype(np.float32), 4, "density", seed=0)
    params[name].copy_(torch.from_numpy(cl.weights()))
    layers[name] = LayerResult(name=name, paper_name=name, method="magnitude", k=4, init="density",
                               indices=cl.indices, codebook=cl.codebook, mask=cl.mask,
                               nonzero_fraction=float(cl.mask.mean()))
sim = SimplifyResult(model=model, recipe=None, layers=layers, test_error=0.0, val_error=0.0,
                     dense_test_error=0.0, pruned_test_error=0.0, seconds={})
res = encode_with_retraining(sim, data, EncodeConfig(filters=FilterSearch(t={"fc3.weight": 5}, seed_trials=1)), confirm_fraction=0.0)
assert res.layers[0].construction == "paper", res.layers[0].construction
enc = res.tensors["fc3.weight"]
assert np.array_equal(enc.filter.query(np.flatnonzero(cl.indices.ravel() >= 0)), cl.indices.ravel()[cl.indices.ravel() >= 0])
print("ok")
"""
    env = dict(os.environ, WEIGHTLESS_DISABLE_NUMBA="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")


def test_whole_model_file_is_smaller_and_loads_exactly(simplified, data, tmp_path):
    """The whole-model stage simplifies fc3 and the biases too; the file decodes to exactly the
    evaluated model and is smaller than the same encoding with those tensors left dense."""
    from weightless.io.clustered import Clustered

    cfg = EncodeConfig(rule=DecisionRule(tolerance=5.0, confidence_z=0.0), filters=FilterSearch(t={"fc1.weight": 4, "fc2.weight": 5}),
                       retraining=Retraining(train=RETRAIN))
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    assert isinstance(res.tensors["fc3.weight"], Clustered) and isinstance(res.tensors["fc1.bias"], Clustered)
    whole = [d for d in res.tail if "fewer values" not in d["what"]]  # the whole-model stage's own lines
    assert whole[-1]["accepted"] is True and len(whole) >= 2
    small = api.save(tmp_path / "whole.wl", res.tensors)
    off = encode_with_retraining(simplified, data, replace(cfg, tail=NO_TAIL), confirm_fraction=0.0)
    big = api.save(tmp_path / "dense_rest.wl", off.tensors)
    assert small < big - 1000  # fc3 (4,000 B) and the biases (1,640 B) were float32
    model = get_model("lenet300", seed=1)
    model.load_state_dict(api.load(tmp_path / "whole.wl"))
    model.eval()
    res.model.eval()
    x = torch.from_numpy(data.val.x[:300])
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))
    assert evaluate(model, data.test) == res.test_error


def test_a_strict_rule_leaves_the_rest_dense(simplified, data):
    from weightless.io.clustered import Clustered

    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.0, confidence_z=50.0), filters=FilterSearch(t={"fc1.weight": 4, "fc2.weight": 5}),
                       retraining=NO_RETRAIN)
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    # no rule rung passed; what was kept changed no outcome on the decision data
    kept = [d["what"] for d in res.tail if d["accepted"] and "fewer values" not in d["what"]]
    assert all("no outcome on the decision data changed" in w or "kept exact" in w for w in kept)
    w = res.tensors["fc3.weight"]
    assert isinstance(w, Clustered) == any(w.startswith("fc3.weight") for w in kept)
    b = res.tensors["fc1.bias"]
    assert isinstance(b, Clustered)
    v = b.values()
    assert np.array_equal(v.astype(np.float16).astype(np.float64), v)  # codebooks rounded to float16 at the end
    if any("kept exact" in w for w in kept):  # the biases fell through to the exact rung: their values
        assert np.allclose(v, _param(simplified.model, "fc1.bias"), rtol=1e-3, atol=1e-6)


def test_lossless_fallback_when_no_filter_passes(simplified, data):
    """When no filter smaller than a layer's lossless record passes the rule, the layer is
    stored lossless (t = 0, its true indices, no false positives); with the fallback off the
    search ends at t_max with a filter."""
    from weightless.io.clustered import Clustered
    from weightless.pipeline.whole import lossless_bytes

    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.0, confidence_z=50.0), filters=FilterSearch(t_max=8, seed_trials=1),
                       retraining=NO_RETRAIN, tail=NO_TAIL)
    res = encode_with_retraining(simplified, data, cfg)
    for rep in res.layers:
        assert rep.t == 0 and rep.construction == "lossless" and rep.false_positives == 0
        # the file's record is at most that (its codebook is rounded to float16 at the end)
        assert rep.filter_bytes == rep.lossless_bytes >= lossless_bytes(res.indices[rep.name],
                                                                          res.tensors[rep.name].codebook)
        enc = res.tensors[rep.name]
        assert isinstance(enc, Clustered) and np.array_equal(enc.indices, res.indices[rep.name])
    assert api.to_bytes(res.tensors)
    off = encode_with_retraining(simplified, data, replace(cfg, filters=replace(cfg.filters, lossless_fallback=False)),
                                 confirm_fraction=0.0)
    assert [r.t for r in off.layers] == [8, 8] and all(r.construction != "lossless" for r in off.layers)


def test_bias_clustering_falls_back_to_fewer_values_when_kmeans_merges(monkeypatch):
    """k-means can return fewer distinct float32 centroids than asked (ConstructionError):
    the whole-model stage then clusters to fewer values instead of failing the run."""
    import weightless.simplify.cluster as cl
    from weightless.errors import ConstructionError
    from weightless.pipeline.whole import _cluster_vector

    real = cl.kmeans_1d

    def fussy(values, k, *a, **kw):
        if k > 40:
            raise ConstructionError("k-means produced 30 distinct float32 centroids instead of 64")
        return real(values, k, *a, **kw)

    monkeypatch.setattr(cl, "kmeans_1d", fussy)
    lin = torch.nn.Linear(3, 300)
    idx, cb = _cluster_vector(lin, "bias", 64, 0)
    assert 2 <= cb.size <= 40 and idx.max() < cb.size
    assert np.array_equal(lin.bias.detach().numpy(), cb[idx])


def test_t_zero_stores_the_layer_lossless(simplified, data):
    """t = 0 in EncodeConfig.filters.t: that layer is stored lossless (its true indices, no filter);
    the other layer's forced t still gets a filter, and its decision carries the paired error
    difference."""
    from weightless.io.clustered import Clustered

    res = encode_with_retraining(simplified, data, EncodeConfig(
        filters=FilterSearch(t={"fc1.weight": 0, "fc2.weight": 5}, seed_trials=1), retraining=Retraining(train=RETRAIN),
        tail=NO_TAIL))
    first, second = res.layers
    assert first.t == 0 and first.construction == "lossless" and first.false_positives == 0 and not first.auto_t
    assert isinstance(res.tensors["fc1.weight"], Clustered)
    assert np.array_equal(res.tensors["fc1.weight"].indices.reshape(first.shape), res.indices["fc1.weight"])
    assert second.t == 5 and res.tensors["fc2.weight"].filter.t == 5
    d = second.decision
    assert d["standard_error"] >= 0 and isinstance(d["difference"], float) and "loss_difference" not in d


def test_t_out_of_range_in_config_is_an_input_error():
    from weightless.errors import InputError

    with pytest.raises(InputError, match="0 = lossless"):
        EncodeConfig(filters=FilterSearch(t={"fc1.weight": 17})).validate()
    with pytest.raises(InputError, match="0 = lossless"):
        EncodeConfig(filters=FilterSearch(t={"fc1.weight": -1})).validate()

def test_a_weight_no_clustering_passes_falls_to_float16(simplified, data, tmp_path):
    """The whole-model stage's last rung for a weight: rounded to float16 when that passes, and
    the file stores it in 2 bytes a weight; otherwise it stays as it is."""
    from weightless.io.clustered import Clustered

    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.5, confidence_z=0.0), filters=FilterSearch(t={"fc1.weight": 0, "fc2.weight": 0}),
                       retraining=NO_RETRAIN, tail=TailConfig(nonzero=(1.0,), k=1, bias_k=(0,)))
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    whats = [(d["what"], d["accepted"]) for d in res.tail]
    assert ("fc3.weight at 100% nonzero, k=1", False) in whats and ("fc3.weight rounded to float16", True) in whats
    w = res.tensors["fc3.weight"]
    assert isinstance(w, Clustered)
    v = w.values()
    assert np.array_equal(v.astype(np.float16).astype(np.float64), v)
    assert not np.array_equal(v, simplified.model.fc3.weight.detach().numpy())  # rounded, not the float32 weight
    half = api.save(tmp_path / "half.wl", res.tensors)
    dense = api.save(tmp_path / "dense.wl", {**res.tensors, "fc3.weight": simplified.model.fc3.weight.detach().clone()})
    assert dense - half >= 1900  # 1,000 weights: 4 bytes each -> 2
    model = get_model("lenet300", seed=1)
    model.load_state_dict(api.load(tmp_path / "half.wl"))
    assert np.array_equal(model.fc3.weight.detach().numpy(), v.astype(np.float32))


def test_float16_rung_that_changes_no_outcome_passes_a_strict_rule(simplified, data):
    """Under a rule nothing lossy passes (the model so far is over it), rounding fc3 to float16
    is still kept when no example of the decision data changes: the step is invisible to the rule."""
    from weightless.io.clustered import Clustered

    cfg = EncodeConfig(rule=DecisionRule(tolerance=0.0, confidence_z=50.0), filters=FilterSearch(t={"fc1.weight": 4, "fc2.weight": 5}),
                       retraining=NO_RETRAIN, tail=TailConfig(nonzero=(1.0,), k=1, bias_k=(0,)))
    res = encode_with_retraining(simplified, data, cfg, confirm_fraction=0.0)
    half = [d for d in res.tail if d["what"].startswith("fc3.weight rounded to float16")]
    assert len(half) == 1 and half[0]["accepted"] and "no outcome" in half[0]["what"]
    assert isinstance(res.tensors["fc3.weight"], Clustered)


def test_t_search_tries_the_largest_t_first(simplified, data):
    """When the largest t under the lossless record fails, it is the only filter tried; when it
    passes, the search goes on below it."""
    strict = EncodeConfig(rule=DecisionRule(tolerance=0.0, confidence_z=50.0), filters=FilterSearch(seed_trials=1, t_max=12),
                          retraining=NO_RETRAIN, tail=NO_TAIL)
    for r in encode_with_retraining(simplified, data, strict, confirm_fraction=0.0).layers:
        filters = [tr for tr in r.trials if tr["t"]]
        assert len(filters) <= 1 and not any(tr["accepted"] for tr in filters)
    loose = replace(strict, rule=DecisionRule(tolerance=100.0, confidence_z=0.0))
    for r in encode_with_retraining(simplified, data, loose, confirm_fraction=0.0).layers:
        ts = [tr["t"] for tr in r.trials if tr["t"]]  # the report lists them by t
        assert len(ts) >= 2 and r.t == min(ts)  # the largest passed, so smaller ones were tried
