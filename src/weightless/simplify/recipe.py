"""One-call simplification: prune (magnitude or DNS), cluster, optionally fine-tune centroids.

A :class:`Recipe` names the model, the per-layer targets (:class:`LayerRecipe`) and the training
schedules; :data:`PAPER_RECIPES` holds the four settings of the paper's Table 1. :func:`simplify`
takes a *trained dense* model and returns a :class:`SimplifyResult` ready for encoding. Layers
not named in the recipe stay dense float (they are still retrained alongside).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data.mnist import MNIST
from ..errors import InputError
from ..models import PAPER_LAYER_NAMES
from ..training.loop import TrainConfig, evaluate
from .cluster import INITS, ClusteredLayer, cluster_weight, finetune_codebooks
from .dns import DNSConfig, prune_dns
from .magnitude import PruneSchedule, get_param, prune_magnitude

__all__ = [
    "LayerRecipe",
    "Recipe",
    "LayerResult",
    "SimplifyResult",
    "simplify",
    "PAPER_RECIPES",
    "PAPER_TABLE1",
    "DENSE_TRAINING",
]

METHODS = ("magnitude", "dns")


@dataclass(frozen=True)
class LayerRecipe:
    """How to simplify one weight tensor.

    Attributes:
        name: fully qualified tensor name, e.g. "fc1.weight".
        method: "magnitude" or "dns".
        nonzero: fraction of weights kept, in (0, 1].
        k: number of shared values (clusters) for the nonzero weights.
        init: k-means initialisation, "density", "linear" or "random".
    """

    name: str
    method: str = "magnitude"
    nonzero: float = 0.05
    k: int = 9
    init: str = "density"

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid field."""
        if self.method not in METHODS:
            raise InputError(f"{self.name}: method must be one of {METHODS}, got {self.method!r}")
        if not (0.0 < self.nonzero <= 1.0):
            raise InputError(f"{self.name}: nonzero must be in (0, 1], got {self.nonzero}")
        if not (1 <= self.k <= 32767):
            raise InputError(f"{self.name}: k must be in [1, 32767], got {self.k}")
        if self.init not in INITS:
            raise InputError(f"{self.name}: init must be one of {INITS}, got {self.init!r}")


@dataclass(frozen=True)
class Recipe:
    """A simplification recipe.

    Attributes:
        model: registry name of the model ("lenet300" or "lenet5").
        layers: per-layer settings; all must use the same pruning method.
        prune: schedule of magnitude pruning (used when the method is "magnitude").
        dns: schedule of Dynamic Network Surgery (used when the method is "dns").
        finetune: trained quantization after clustering (None: skip).
        seed: seeds k-means random init.
    """

    model: str
    layers: tuple[LayerRecipe, ...]
    prune: PruneSchedule = field(default_factory=PruneSchedule)
    dns: DNSConfig = field(default_factory=DNSConfig)
    finetune: TrainConfig | None = field(default_factory=lambda: TrainConfig(epochs=1, lr=1e-4))
    seed: int = 0

    @property
    def method(self) -> str:
        """The pruning method shared by all layers."""
        return self.layers[0].method

    def validate(self) -> None:
        """Raise :class:`InputError` if the recipe is inconsistent."""
        if not self.layers:
            raise InputError("a recipe needs at least one layer")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            raise InputError(f"duplicate layer names in recipe: {names}")
        for l in self.layers:
            l.validate()
        methods = {l.method for l in self.layers}
        if len(methods) != 1:
            raise InputError(f"all layers of a recipe must share one pruning method, got {sorted(methods)}")

    def scaled(self, factor: float) -> "Recipe":
        """Return a copy with every training phase's epochs multiplied by ``factor`` (> 0)."""
        if not factor > 0:
            raise InputError(f"factor must be > 0, got {factor}")

        def s(c: TrainConfig | None) -> TrainConfig | None:
            return None if c is None else replace(c, epochs=max(c.epochs * factor, 0.05))

        return replace(
            self,
            prune=replace(self.prune, retrain=s(self.prune.retrain), final=s(self.prune.final)),
            dns=replace(self.dns, surgery=s(self.dns.surgery), retrain=s(self.dns.retrain)),
            finetune=s(self.finetune),
        )


@dataclass
class LayerResult:
    """One simplified layer.

    Attributes:
        indices: int16, shaped like the weight; -1 = zero, else cluster id in [0, k).
        codebook: float32 (k,), increasing.
        mask: bool, True where the weight is nonzero.
        nonzero_fraction: fraction of nonzero weights.
        paper_name: the layer's name in the paper (e.g. "FC-0"), or the tensor name.
    """

    name: str
    paper_name: str
    method: str
    k: int
    init: str
    indices: np.ndarray
    codebook: np.ndarray
    mask: np.ndarray
    nonzero_fraction: float

    def weights(self) -> np.ndarray:
        """The reconstructed float32 weights."""
        return ClusteredLayer(self.indices, self.codebook).weights()


@dataclass
class SimplifyResult:
    """What :func:`simplify` returns (``model`` holds exactly the simplified weights)."""

    model: Any
    recipe: Recipe
    layers: dict[str, LayerResult]
    test_error: float
    val_error: float
    dense_test_error: float
    pruned_test_error: float
    seconds: dict[str, float]

    @property
    def nonzero_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of nonzero weights."""
        return {n: l.nonzero_fraction for n, l in self.layers.items()}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (errors in %, per-layer nonzero % and k)."""
        return {
            "model": self.recipe.model,
            "pruning": self.recipe.method,
            "dense_test_error": round(self.dense_test_error, 4),
            "pruned_test_error": round(self.pruned_test_error, 4),
            "test_error": round(self.test_error, 4),
            "val_error": round(self.val_error, 4),
            "layers": {
                n: {
                    "paper_name": l.paper_name,
                    "shape": list(l.indices.shape),
                    "nonzero": int(l.mask.sum()),
                    "nonzero_percent": round(100.0 * l.nonzero_fraction, 4),
                    "k": l.k,
                    "init": l.init,
                    "codebook": [float(c) for c in l.codebook],
                }
                for n, l in self.layers.items()
            },
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def simplify(model: Any, data: MNIST, recipe: Recipe, progress: bool = False) -> SimplifyResult:
    """Simplify a trained dense ``model`` with ``recipe``: prune, retrain, cluster, fine-tune.

    The input model is not modified; ``result.model`` is a simplified copy whose recipe layers
    hold exactly ``codebook[indices]`` (zeros where pruned).

    Returns:
        A :class:`SimplifyResult` with the per-layer indices/codebooks/masks and the test and
        validation errors (%) of the simplified model.

    Raises:
        InputError: invalid recipe, or a layer the model does not have.
    """
    import torch

    recipe.validate()
    for l in recipe.layers:
        get_param(model, l.name)
    if not isinstance(data, MNIST):
        raise InputError(f"data must be an MNIST (train/val/test), got {type(data).__name__}")
    model = copy.deepcopy(model)
    seconds: dict[str, float] = {}
    dense_err = evaluate(model, data.test)
    targets = {l.name: l.nonzero for l in recipe.layers}
    t0 = time.perf_counter()
    if recipe.method == "magnitude":
        masks = prune_magnitude(model, data, targets, recipe.prune, progress=progress)
    else:
        masks = prune_dns(model, data, targets, recipe.dns, progress=progress)
    seconds["prune"] = time.perf_counter() - t0
    pruned_err = evaluate(model, data.test)
    t0 = time.perf_counter()
    clustered: dict[str, ClusteredLayer] = {}
    with torch.no_grad():
        for i, l in enumerate(recipe.layers):
            p = get_param(model, l.name)
            w = (p * masks[l.name]).detach().cpu().numpy()
            cl = cluster_weight(w, l.k, l.init, seed=recipe.seed + i)
            p.copy_(torch.from_numpy(cl.weights()))
            clustered[l.name] = cl
    if recipe.finetune is not None:
        clustered = finetune_codebooks(model, data, clustered, recipe.finetune, progress=progress)
    seconds["cluster"] = time.perf_counter() - t0
    paper = PAPER_LAYER_NAMES.get(recipe.model, {})
    layers: dict[str, LayerResult] = {}
    for l in recipe.layers:
        cl = clustered[l.name]
        mask = cl.mask
        layers[l.name] = LayerResult(
            name=l.name,
            paper_name=paper.get(l.name, l.name),
            method=l.method,
            k=l.k,
            init=l.init,
            indices=cl.indices,
            codebook=cl.codebook,
            mask=mask,
            nonzero_fraction=float(mask.mean()),
        )
    return SimplifyResult(
        model=model,
        recipe=recipe,
        layers=layers,
        test_error=evaluate(model, data.test),
        val_error=evaluate(model, data.val),
        dense_test_error=dense_err,
        pruned_test_error=pruned_err,
        seconds=seconds,
    )


#: Dense training of each model before simplification.
DENSE_TRAINING: dict[str, TrainConfig] = {
    "lenet300": TrainConfig(epochs=20, batch_size=128, lr=1e-3, weight_decay=1e-4),
    "lenet5": TrainConfig(epochs=5, batch_size=128, lr=1e-3),
}

#: The paper's Table 1: (model, pruning) -> (error %, {tensor: (nonzero %, k)}).
PAPER_TABLE1: dict[tuple[str, str], tuple[float, dict[str, tuple[float, int]]]] = {
    ("lenet300", "magnitude"): (1.76, {"fc1.weight": (5.0, 9), "fc2.weight": (5.0, 9)}),
    ("lenet300", "dns"): (2.03, {"fc1.weight": (1.8, 9), "fc2.weight": (1.8, 10)}),
    ("lenet5", "magnitude"): (0.98, {"conv2.weight": (7.0, 9), "fc1.weight": (5.5, 9)}),
    ("lenet5", "dns"): (0.96, {"conv2.weight": (3.1, 10), "fc1.weight": (0.73, 10)}),
}


def _paper_recipe(model: str, method: str) -> Recipe:
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
    return Recipe(model=model, layers=lr, prune=prune, dns=dns, finetune=finetune)


#: The four recipes of the paper's Table 1, keyed by (model, pruning method).
PAPER_RECIPES: dict[tuple[str, str], Recipe] = {key: _paper_recipe(*key) for key in PAPER_TABLE1}
