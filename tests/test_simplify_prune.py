import copy

import numpy as np
import pytest
import torch

from weightless_lab.data.mnist import load_mnist
from weightless.errors import InputError
from weightless_lab.models import get_model
from weightless.simplify import (
    DNSConfig,
    DNSSurgeon,
    LayerRecipe,
    MagnitudePruner,
    PruneSchedule,
    Recipe,
    prune_dns,
    prune_magnitude,
    simplify,
    topk_mask,
)
from weightless.training import TrainConfig, evaluate, train

SHORT = TrainConfig(epochs=1, batch_size=100, lr=1e-3)


@pytest.fixture(scope="module")
def small():
    return load_mnist().subset(2000, 1000)


@pytest.fixture(scope="module")
def trained300(small):
    m = get_model("lenet300", 0)
    train(m, small, TrainConfig(epochs=2, batch_size=100, lr=2e-3))
    return m


def test_short_training_improves_accuracy(small):
    m = get_model("lenet300", 0)
    before = evaluate(m, small.test)
    rep = train(m, small, TrainConfig(epochs=1, batch_size=100, lr=2e-3))
    after = evaluate(m, small.test)
    assert rep.steps == 20
    assert before > 70.0 and after < 25.0


def test_training_is_deterministic(small):
    a, b = get_model("lenet300", 3), get_model("lenet300", 3)
    train(a, small.train.head(500), SHORT)
    train(b, small.train.head(500), SHORT)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n


def test_topk_mask_exact():
    w = torch.randn(37, 41)
    for frac in (0.01, 0.05, 0.5, 1.0):
        m = topk_mask(w, frac)
        assert int(m.sum()) == max(1, round(frac * w.numel()))
        kept = w.abs()[m.bool()].min()
        dropped = w.abs()[~m.bool()]
        assert dropped.numel() == 0 or kept >= dropped.max()
    with pytest.raises(InputError):
        topk_mask(w, 0.0)


def test_pruner_schedule_reaches_exact_fraction():
    m = get_model("lenet300", 0)
    pr = MagnitudePruner({"fc1.weight": 0.05, "fc2.weight": 0.1}, steps=3)
    pr.prepare(m)
    for _ in range(3):
        pr.step()
    assert int((m.fc1.weight != 0).sum()) == round(0.05 * 300 * 784)
    assert int((m.fc2.weight != 0).sum()) == round(0.1 * 300 * 100)
    with pytest.raises(InputError):
        pr.step()
    with pytest.raises(InputError):
        MagnitudePruner({"fc1.weight": 1.5})
    with pytest.raises(InputError):
        MagnitudePruner({"nope.weight": 0.5}).prepare(m)


def test_magnitude_pruning_masks_stay_zero_through_retraining(small, trained300):
    m = type(trained300)()
    m.load_state_dict(trained300.state_dict())
    sched = PruneSchedule(steps=2, retrain=TrainConfig(epochs=0.5, batch_size=100, lr=1e-3, weight_decay=1e-4))
    masks = prune_magnitude(m, small, {"fc1.weight": 0.05}, sched)
    assert int(masks["fc1.weight"].sum()) == round(0.05 * 300 * 784)
    # further retraining with the mask keeps the zeros exactly zero (Adam + weight decay)
    train(m, small, TrainConfig(epochs=0.5, batch_size=100, lr=1e-2, weight_decay=1e-3), masks=masks)
    w = m.fc1.weight.detach()
    assert torch.all(w[masks["fc1.weight"] == 0] == 0)
    assert int((w != 0).sum()) == int(masks["fc1.weight"].sum())
    assert evaluate(m, small.test) < 30.0


def test_dns_splices_back_and_gradients_reach_pruned_weights(small):
    m = get_model("lenet300", 0)
    cfg = DNSConfig(surgery=TrainConfig(epochs=1, batch_size=100))
    s = DNSSurgeon(m, {"fc2.weight": 0.1}, cfg, total_steps=10)
    s.attach()
    s.update(10, force=True)  # past the ramp: keep ~10%
    mask = s.mask("fc2.weight")
    assert 0.05 < float(mask.mean()) < 0.2
    dense = s._dense("fc2.weight")
    i = int(torch.nonzero(mask.flatten() == 0)[0])
    before = dense.detach().flatten()[i].item()
    # straight-through: a training step changes pruned weights too
    train(m, small.train.head(200), TrainConfig(epochs=1, batch_size=100, lr=1e-2))
    after = dense.detach().flatten()[i].item()
    assert after != before
    with torch.no_grad():
        dense.view(-1)[i] = 10.0  # grew large: must be spliced back
    s.update(10, force=True)
    assert s.mask("fc2.weight").flatten()[i] == 1
    assert float(m.fc2.weight.detach().flatten()[i]) == 10.0
    final = s.detach()
    assert int(final["fc2.weight"].sum()) == round(0.1 * 30000)
    assert final["fc2.weight"].flatten()[i] == 1
    assert int((m.fc2.weight != 0).sum()) == round(0.1 * 30000)


def test_prune_dns_exact_fraction(small, trained300):
    m = type(trained300)()
    m.load_state_dict(trained300.state_dict())
    cfg = DNSConfig(surgery=TrainConfig(epochs=1, batch_size=100), retrain=TrainConfig(epochs=0.5, batch_size=100))
    masks = prune_dns(m, small, {"fc1.weight": 0.018, "fc2.weight": 0.018}, cfg)
    for name, p in (("fc1.weight", m.fc1.weight), ("fc2.weight", m.fc2.weight)):
        assert int((p != 0).sum()) == round(0.018 * p.numel()) == int(masks[name].sum())
    assert not hasattr(m.fc1, "parametrizations")


def test_simplify_end_to_end(small, trained300):
    rec = Recipe(
        model="lenet300",
        layers=(LayerRecipe("fc1.weight", "magnitude", 0.05, 9), LayerRecipe("fc2.weight", "magnitude", 0.05, 10, "linear")),
        prune=PruneSchedule(steps=1, retrain=TrainConfig(epochs=0.5, batch_size=100)),
        finetune=TrainConfig(epochs=0.5, batch_size=100, lr=1e-4),
        display_names={"fc1.weight": "FC-0"},
    )
    before = {n: p.clone() for n, p in trained300.named_parameters()}
    r = simplify(trained300, small, rec)
    for n, p in trained300.named_parameters():  # input model untouched
        assert torch.equal(p, before[n])
    assert set(r.layers) == {"fc1.weight", "fc2.weight"}
    for name, lr in r.layers.items():
        w = dict(r.model.named_parameters())[name].detach().numpy()
        assert lr.indices.dtype == np.int16 and lr.indices.shape == w.shape
        assert lr.codebook.dtype == np.float32 and lr.codebook.shape == (lr.k,)
        np.testing.assert_array_equal(w, lr.weights())
        assert int(lr.mask.sum()) == round(0.05 * w.size)
        assert lr.indices.max() < lr.k
    assert r.layers["fc1.weight"].paper_name == "FC-0"
    assert 0 <= r.test_error < 40
    assert r.summary()["layers"]["fc2.weight"]["k"] == 10


def test_recipe_validation(small, trained300):
    bad = Recipe("lenet300", (LayerRecipe("fc1.weight", "magnitude"), LayerRecipe("fc2.weight", "dns")))
    with pytest.raises(InputError, match="one pruning method"):
        simplify(trained300, small, bad)
    with pytest.raises(InputError):
        simplify(trained300, small, Recipe("lenet300", (LayerRecipe("fc1.weight", nonzero=2.0),)))
    with pytest.raises(InputError):
        simplify(trained300, small, Recipe("lenet300", (LayerRecipe("conv9.weight"),)))


def test_trainable_subset_freezes_the_rest(small):
    m = get_model("lenet300", 0)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    train(m, small.train.head(300), SHORT, trainable={"fc3.weight", "fc3.bias"})
    for n, p in m.named_parameters():
        assert torch.equal(p, before[n]) == (not n.startswith("fc3")), n
    assert all(p.requires_grad for p in m.parameters())  # flags restored
    with pytest.raises(InputError):
        train(m, small.train.head(300), SHORT, trainable={"fc9.weight"})


def test_pruning_resumes_from_a_recorded_state(small, trained300):
    """A gentler schedule starts from the recorded step that covers its targets and keeps that
    step's surviving weights; a state that does not cover the targets is refused."""
    from weightless.simplify import resume_point

    sched = PruneSchedule(steps=3, retrain=TrainConfig(epochs=0.2, batch_size=100, lr=1e-3))
    states: list = []
    m = copy.deepcopy(trained300)
    prune_magnitude(m, small, {"fc1.weight": 0.05}, sched, record=states)
    fracs = [st.fractions["fc1.weight"] for st in states]
    assert len(states) == 3 and fracs == sorted(fracs, reverse=True) and fracs[-1] == pytest.approx(0.05, abs=1e-4)
    start = resume_point(states, {"fc1.weight": 0.1})
    assert start is states[1]  # 13.6% is the closest state at or above 10%
    assert resume_point(states, {"fc1.weight": 0.9}) is None
    g = copy.deepcopy(trained300)
    masks = prune_magnitude(g, small, {"fc1.weight": 0.1}, sched, start=start)
    kept = masks["fc1.weight"].bool()
    assert int(kept.sum()) == round(0.1 * kept.numel())
    assert bool(start.masks["fc1.weight"].bool()[kept].all())  # only survivors of the start state survive
    with pytest.raises(InputError):
        prune_magnitude(copy.deepcopy(trained300), small, {"fc1.weight": 0.2}, sched, start=states[2])
