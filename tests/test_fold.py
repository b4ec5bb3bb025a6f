"""Dead units folded into the next linear layer: the same function, the weights zero."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from weightless.simplify.fold import Folded, fold_dead_units  # noqa: E402


def _kill(layer, rows):
    with torch.no_grad():
        layer.weight[rows] = 0


def _same_function(model, fold, shape=(64, 8)):
    torch.manual_seed(1)
    x = torch.randn(*shape)
    with torch.no_grad():
        before = model(x)
        folds = fold(model)
        after = model(x)
    assert torch.allclose(before, after, atol=1e-6), float((before - after).abs().max())
    return folds


def test_a_dead_unit_is_folded_into_the_next_layer_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(6, 3)).eval()
    _kill(model[0], [1, 4])
    folds = _same_function(model, fold_dead_units)
    assert folds == [Folded("0.weight", "3.weight", 2)]
    assert torch.count_nonzero(model[3].weight[:, [1, 4]]) == 0
    assert torch.count_nonzero(model[3].weight[:, [0, 2, 3, 5]]) == 12
    assert model[0].bias[1] == 0 and model[0].bias[4] == 0  # sigmoid(0) = 0.5: the bias is what was folded


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 6), nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x):
        x = x.reshape(x.shape[0], 8)
        return self.fc3(torch.tanh(F.relu(self.fc2(F.leaky_relu(self.fc1(x), 0.1)))))


def test_a_batch_norm_between_folds_as_at_inference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    model.train()(torch.randn(32, 8))  # running statistics other than the initial ones
    model.eval()
    _kill(model[0], [2])
    assert _same_function(model, fold_dead_units) == [Folded("0.weight", "3.weight", 1)]
    assert not model[1].training


def test_functional_activations_and_every_pair_of_layers():
    torch.manual_seed(0)
    model = _Net().eval()
    _kill(model.fc1, [0])
    _kill(model.fc2, [2, 3])
    folds = _same_function(model, fold_dead_units)
    assert folds == [Folded("fc1.weight", "fc2.weight", 1), Folded("fc2.weight", "fc3.weight", 2)]


def test_nothing_without_a_dead_unit_or_a_plain_chain():
    torch.manual_seed(0)
    assert _same_function(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval(), fold_dead_units) == []

    class Branch(nn.Module):  # the unit's output is read twice: folding it into one reader would be wrong
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 6), nn.Linear(6, 3)

        def forward(self, x):
            h = F.relu(self.a(x))
            return self.b(h) + h[:, :3]

    model = Branch().eval()
    _kill(model.a, [1])
    assert _same_function(model, fold_dead_units) == []

    class Untraceable(nn.Module):  # control flow on the data: torch.fx cannot trace it
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 6), nn.Linear(6, 3)

        def forward(self, x):
            h = F.relu(self.a(x))
            return self.b(h) if float(h.sum()) > -1 else -self.b(h)

    model = Untraceable().eval()
    _kill(model.a, [1])
    assert _same_function(model, fold_dead_units) == []


def test_a_next_layer_without_bias_takes_only_units_that_give_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3, bias=False)).eval()
    _kill(model[0], [1, 4])
    with torch.no_grad():
        model[0].bias[1], model[0].bias[4] = -0.5, 0.5  # relu: 0 and 0.5
    assert _same_function(model, fold_dead_units) == [Folded("0.weight", "2.weight", 1)]
    assert torch.count_nonzero(model[2].weight[:, 1]) == 0 and torch.count_nonzero(model[2].weight[:, 4]) == 3


def test_a_stored_layer_is_never_changed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    _kill(model[0], [1])
    assert _same_function(model, lambda m: fold_dead_units(m, skip={"2.weight"})) == []
    bias = model[0].bias.detach().clone()
    assert _same_function(model, lambda m: fold_dead_units(m, skip={"0.bias"})) == [Folded("0.weight", "2.weight", 1)]
    assert torch.equal(model[0].bias, bias)


def test_the_whole_model_stage_folds_and_keeps_the_zeros():
    """The tail folds first, then clusters the next layer with its folded columns kept zero
    (a sparse record); its nonzero fractions are of the weights left."""
    from tests.test_tail_ladder import _edge_tail
    from weightless.pipeline.whole import _prune_cluster

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    _kill(model[0], list(range(8)))
    tail = _edge_tail(model, same=True)
    tail.fold()
    assert "8 dead units of 0.weight folded into 2.weight" in tail.report[0]["what"]
    half = _prune_cluster(copy.deepcopy(tail.model), "2.weight", 0.5, 16, 0)[0]
    assert int((half >= 0).sum()) == 16 * 24 // 2
    tail.weight(1, "2.weight")
    idx, cb = tail.rest["2.weight"]
    assert np.all(idx[:, :8] == -1) and np.all(idx[:, 8:] >= 0)
    steps = [s.what for s in tail.steps]
    assert steps[0] == "dead units folded" and steps[1].startswith("2.weight clustered to 16 values")
    assert "2.weight" not in tail.steps[0].rest and "2.weight" in tail.steps[1].rest  # a back-off can undo one


def test_cut_units_replaces_the_least_spread_units_by_their_mean():
    """Units whose input to the next layer never varies are cut first, and cutting them changes
    nothing (their mean goes into the next bias); the cut rows, bias entries and columns are zero."""
    from weightless.simplify.fold import cut_units, linear_pairs, unit_inputs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[0].weight[[1, 4]] *= 1e-9  # nearly constant outputs: relu(bias)
        model[0].bias[[1, 4]] = torch.tensor([0.7, 0.3])
    x = torch.randn(256, 8)
    (pair,) = linear_pairs(model)
    mean, std = unit_inputs(model, pair, [x[:100], x[100:]])
    with torch.no_grad():
        h = torch.relu(model[0](x))
    assert torch.allclose(mean.float(), h.mean(0), atol=1e-5) and torch.allclose(std.float(), h.std(0, unbiased=False), atol=1e-4)
    col = model[2].weight.detach().clone()
    with torch.no_grad():
        before = model(x)
        cut = cut_units(model, pair, 0.5, mean, std)
        after = model(x)
    assert {1, 4} <= set(cut.tolist()) and len(cut) == 3
    assert torch.count_nonzero(model[0].weight[cut]) == 0 and torch.count_nonzero(model[0].bias[cut]) == 0
    assert torch.count_nonzero(model[2].weight[:, cut]) == 0
    keep = [u for u in range(6) if u not in cut.tolist()]
    assert torch.count_nonzero(model[2].weight[:, keep]) == 9
    score = std.float() * col.norm(dim=0)  # the spread each unit gives the next layer
    assert score[cut].max() <= score[keep].min()
    # each cut unit now gives the next layer its mean: the outputs moved by its deviation alone
    moved = (h[:, cut] - mean[cut].float()) @ col[:, cut].T
    assert torch.allclose(after, before - moved, atol=1e-5)


def test_cut_units_keeps_every_unit_at_a_fraction_of_one_and_needs_a_bias():
    from weightless.simplify.fold import cut_units, linear_pairs, unit_inputs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3, bias=False)).eval()
    (pair,) = linear_pairs(model)
    mean, std = unit_inputs(model, pair, [torch.randn(32, 8)])
    assert len(cut_units(model, pair, 0.5, mean, std)) == 0  # nowhere to put the mean
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    (pair,) = linear_pairs(model)
    assert len(cut_units(model, pair, 0.99, mean, std)) == 0  # ceil(0.99 * 6) = 6 kept


class _Units:
    """A contract stub that accepts a model while its first layer keeps at least ``least`` live
    units (a nonzero row whose column of the next layer is nonzero)."""

    def __init__(self, least):
        self.least = least

    def decide(self, model, allowance=None):
        from weightless.pipeline.contract import Decision

        live = int(((model[0].weight != 0).any(dim=1) & (model[2].weight != 0).any(dim=0)).sum())
        return Decision(1.0, 0.9, 0.1, 0.1, live >= self.least)

    def same_outcomes(self, a, b):
        return False


def _units_tail(filters=frozenset(), encoded_next=False):
    from dataclasses import replace

    from weightless.pipeline.config import EncodeConfig
    from weightless.pipeline.whole import _Tail
    from weightless.training.task import as_task

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
    _kill(model[0], [0, 5])  # dead already: not live, not counted
    x, y = torch.randn(300, 16), torch.randint(0, 4, (300,))
    with torch.no_grad():
        model[0].weight[model[0].weight != 0] = 0.25  # one shared value: a lossless record of k = 1
    encoded = {"0.weight": (np.where(model[0].weight.detach().numpy() != 0, 0, -1),
                            np.array([0.25], np.float32))}
    cfg = EncodeConfig()
    cfg = replace(cfg, retraining=replace(cfg.retraining, train=None), tail=replace(cfg.tail, fold=False, units=(0.5, 0.25)))
    tail = _Tail(model, as_task((x, y), val=(x, y)), cfg, encoded, _Units(5), None, False, lambda s: None)
    return tail, x


def test_the_whole_model_stage_cuts_units_down_the_ladder():
    """10 live units: 50% (5 kept) passes, 25% (3 kept) is rejected; the stored layer's rows of
    the cut units become zeros of its record, and the step is one a back-off can undo."""
    tail, x = _units_tail()
    tail.units()
    whats = [d["what"] for d in tail.report]
    assert whats == ["0 with 50% of its 10 live units", "0 with 25% of its 10 live units"]
    assert [d["accepted"] for d in tail.report] == [True, False]
    idx = tail.encoded["0.weight"][0]
    rows = np.flatnonzero((idx >= 0).any(axis=1))
    assert len(rows) == 5 and 0 not in rows and 5 not in rows
    assert torch.count_nonzero(tail.model[0].weight) == 5 * 16
    assert torch.count_nonzero(tail.model[2].weight.abs().sum(0)) == 5 + 2  # the dead two: no fold here
    assert [s.what for s in tail.steps] == ["0 with 50% of its 10 live units"]
    assert "0.weight" not in tail.rest


def test_no_unit_is_cut_in_a_filter_or_a_layer_not_yet_stored():
    tail, _ = _units_tail()
    tail.filters = frozenset({"0.weight"})  # its positions are in a filter: they cannot change
    tail.units()
    assert tail.report == [] and tail.steps == []
    tail, _ = _units_tail()
    tail.encoded = {}
    tail.units()
    assert tail.report == [] and tail.steps == []


def test_unit_fractions_must_be_below_one():
    from weightless.errors import InputError
    from weightless.pipeline.config import TailConfig

    TailConfig(units=()).validate()
    for bad in ((1.0,), (0.0,), (0.5, -0.1)):
        with pytest.raises(InputError):
            TailConfig(units=bad).validate()


def test_a_unit_rung_that_retrains_frees_the_stored_layer_and_clusters_it_again():
    """Retrained after the cut, the stored first layer's kept weights train under its mask and
    are clustered again to as many values; its record says exactly what the model holds."""
    from dataclasses import replace

    from weightless.training.loop import TrainConfig

    tail, x = _units_tail()
    with torch.no_grad():
        w = tail.model[0].weight
        vals = torch.tensor([-0.3, -0.29, 0.29, 0.3])  # close: weights training on their own cross
        w[w != 0] = vals[torch.arange(int((w != 0).sum())) % 4]
    idx = np.where(w.detach().numpy() != 0, np.searchsorted(vals.numpy(), w.detach().numpy()), -1)
    tail.encoded = {"0.weight": (idx, vals.numpy())}
    before = tail.model[0].weight.detach().clone()
    rt = replace(tail.cfg.retraining, accept_before_retraining=False, train=TrainConfig(epochs=1, batch_size=50, lr=1e-2))
    tail.cfg = replace(tail.cfg, retraining=rt)
    tail.retraining = rt
    tail.units()
    assert [d["accepted"] for d in tail.report] == [True, False] and all(d["retrained"] for d in tail.report)
    idx2, cb2 = tail.encoded["0.weight"]
    after = tail.model[0].weight.detach().numpy()
    assert cb2.size == 4 and np.array_equal(np.where(idx2 >= 0, cb2[np.maximum(idx2, 0)], 0), after)
    kept = (idx2 >= 0).any(axis=1)
    assert kept.sum() == 5 and np.array_equal(idx2 >= 0, (idx >= 0) & kept[:, None])  # the mask, less the cut rows
    assert not np.allclose(after[kept], before.numpy()[kept])  # the kept weights trained ...
    assert not np.array_equal(idx2[kept], idx[kept])  # ... each on its own, not only the codebook


def test_units_cut_after_the_next_layer_and_the_biases_were_clustered_stay_consistent():
    """The stage cuts units last: the next layer's clustered weight loses the cut columns, the
    biases that took the means are clustered again, and every record says what the model holds."""
    from dataclasses import replace

    tail, _ = _units_tail()
    tail.cfg = replace(tail.cfg, tail=replace(tail.cfg.tail, nonzero=(1.0,)))  # every column of 2.weight kept
    tail.weight(1, "2.weight")
    tail.vectors()
    assert {"2.weight", "0.bias", "2.bias"} <= set(tail.rest)
    tail.units()
    assert [d["accepted"] for d in tail.report if "live units" in d["what"]] == [True, False]
    model = tail.model
    idx, cb = tail.rest["2.weight"]
    assert np.array_equal(np.where(idx >= 0, cb[np.maximum(idx, 0)], 0), model[2].weight.detach().numpy())
    cut = ~(tail.encoded["0.weight"][0] >= 0).any(axis=1)
    cut[[0, 5]] = False  # dead before (not folded here)
    assert cut.sum() == 10 - 5 and np.all(idx[:, cut] == -1)
    for v in ("0.bias", "2.bias"):
        i, c = tail.rest[v]
        assert np.array_equal(c[i], model.get_parameter(v).detach().numpy()), v


def test_unit_statistics_read_a_map_style_dataset_batch_by_batch():
    """The stage measures the units on the task's training data in whatever form it came:
    here a map-style dataset of dicts, read in order, up to the examples asked for."""
    from weightless.training.task import as_task

    class _Dicts(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

    tail, x = _units_tail()
    y = torch.zeros(len(x), dtype=torch.long)
    tail.task = as_task(_Dicts(x, y), val=(x, y))
    seen = [len(b) for b in tail._batches(n=400)]
    assert sum(seen) == 300  # all of them: fewer than asked
    from weightless.simplify.fold import linear_pairs, unit_inputs

    (pair,) = linear_pairs(tail.model)
    mean, _ = unit_inputs(tail.model, pair, tail._batches())
    with torch.no_grad():
        want = torch.relu(tail.model[0](x)).mean(0)
    assert torch.allclose(mean.float(), want, atol=1e-5)


def test_units_the_next_layer_never_reads_are_dropped_exactly():
    """A live unit whose column of the next layer is zero: its row becomes zero, the function
    stays the same; a layer in ``skip`` (a filter's positions) is left alone."""
    from weightless.simplify.fold import Dropped, drop_unread

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        model[2].weight[:, [1, 4]] = 0
        model[4].weight[:, 2] = 0
    assert _same_function(copy.deepcopy(model), lambda m: drop_unread(m, skip={"0.weight", "2.weight"})) == []
    drops = _same_function(model, drop_unread)
    assert [(d.source, d.target, list(d.rows)) for d in drops] == [("0.weight", "2.weight", [1, 4]),
                                                                   ("2.weight", "4.weight", [2])]
    assert isinstance(drops[0], Dropped)
    assert not model[0].weight[[1, 4]].any() and model[0].weight[[0, 2, 3, 5]].all()
    assert _same_function(model, drop_unread) == []  # a zero row is not live: nothing more


def test_the_whole_model_stage_drops_unread_units_from_a_stored_layer():
    """The stage's exact step: the stored first layer's record loses the rows the next layer
    no longer reads, in new dicts (the stage before keeps its own), in the same step as the fold
    of its two dead units."""
    tail, x = _units_tail()
    with torch.no_grad():
        tail.model[2].weight[:, [3, 7]] = 0
        before = tail.model(x)
    old = tail.encoded
    tail.fold()
    idx = tail.encoded["0.weight"][0]
    assert np.all(idx[[3, 7]] == -1) and (old["0.weight"][0][[3, 7]] >= 0).all()
    assert np.array_equal(idx >= 0, tail.model[0].weight.detach().numpy() != 0)
    with torch.no_grad():
        assert torch.allclose(tail.model(x), before, atol=1e-6)  # the fold moves constants into a bias
    assert [s.what for s in tail.steps] == ["dead units folded, unread units dropped"]
    assert tail.report[-1]["what"] == "2 units of 0.weight that 2.weight never reads dropped (exact)"
    tail, _ = _units_tail()
    tail.filters = frozenset({"0.weight"})
    with torch.no_grad():
        tail.model[2].weight[:, 3] = 0
    tail.fold()
    assert [s.what for s in tail.steps] == ["dead units folded"] and (tail.encoded["0.weight"][0][3] >= 0).all()
