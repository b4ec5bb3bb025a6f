import pytest
import torch

from weightless.errors import InputError
from weightless_lab.models import MODEL_NAMES, PAPER_LAYER_NAMES, get_model


def test_shapes_and_paper_layer_sizes():
    m = get_model("lenet300", 0)
    p = dict(m.named_parameters())
    assert p["fc1.weight"].shape == (300, 784) and p["fc2.weight"].shape == (100, 300)
    assert p["fc3.weight"].shape == (10, 100)
    m5 = get_model("lenet5", 0)
    p5 = dict(m5.named_parameters())
    assert p5["conv1.weight"].shape == (20, 1, 5, 5)
    assert p5["conv2.weight"].numel() == 25_000
    assert p5["fc1.weight"].shape == (500, 800) and p5["fc1.weight"].numel() == 400_000
    assert p5["fc2.weight"].shape == (10, 500)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_and_seeding(name):
    x = torch.randn(4, 784)
    a, b, c = (get_model(name, s).eval() for s in (1, 1, 2))  # eval: no dropout (vggmini)
    assert a(x).shape == (4, 10)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    assert a(x.reshape(4, 1, 28, 28)).shape == (4, 10)


def test_seed_does_not_touch_global_rng():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    get_model("lenet300", 0)
    assert torch.equal(torch.rand(1), before)


def test_paper_layer_names_exist():
    for name, layers in PAPER_LAYER_NAMES.items():
        params = dict(get_model(name).named_parameters())
        assert set(layers) <= set(params)


def test_unknown_model():
    with pytest.raises(InputError, match="lenet5"):
        get_model("vgg")


def test_lenet5_scoring_pool_equals_training_pool():
    """Without gradient LeNet5 pools with elementwise maxima: the outputs must be the very same."""
    m = get_model("lenet5", 3).eval()
    x = torch.randn(64, 784)
    x[0] = 0.0  # ties everywhere
    with torch.no_grad():
        fast = m(x)
    assert torch.equal(fast, m(x).detach())
