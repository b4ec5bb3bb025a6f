"""Bundled data in the shape and normalisation a user's model takes (``--data``, ``--normalize``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from weightless.errors import InputError  # noqa: E402
from weightless_lab.apps.user import fit_shape, load_task  # noqa: E402


@pytest.fixture(scope="module")
def mnist(load_data):
    from weightless_lab.data.mnist import load_mnist

    load_data(load_mnist, "MNIST")
    return load_task("mnist", n_train=200, n_eval=100)


def test_a_convolutional_model_gets_images(mnist) -> None:
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    task = fit_shape(conv, mnist)
    assert task.val.x.shape == (100, 1, 28, 28) and task.train.x.shape == (200, 1, 28, 28)
    flat = torch.nn.Sequential(torch.nn.Linear(784, 10))
    assert fit_shape(flat, mnist).val.x.shape == (100, 784)


def test_normalisation_choices(mnist) -> None:
    raw = load_task("mnist", n_train=200, n_eval=100, normalize="none")
    assert 0.0 <= raw.val.x.min() and raw.val.x.max() <= 1.0
    own = load_task("mnist", n_train=200, n_eval=100, normalize="0.5,0.25")
    assert np.allclose(own.val.x, (raw.val.x - 0.5) / 0.25, atol=1e-5)
    assert not np.allclose(mnist.val.x, raw.val.x)  # the library's standardisation
    with pytest.raises(InputError, match="MEAN,STD"):
        load_task("mnist", normalize="imagenet")
    with pytest.raises(InputError, match="STD must be > 0"):
        load_task("mnist", normalize="0.1,0")
