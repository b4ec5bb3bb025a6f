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
