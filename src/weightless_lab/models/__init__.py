"""The paper's networks, a VGG-style one for its VGG-16 experiment, and a registry:
:func:`get_model` and :data:`PAPER_LAYER_NAMES`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from weightless.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["MODEL_NAMES", "PAPER_LAYER_NAMES", "get_model"]

#: Registered model names.
MODEL_NAMES = ("lenet300", "lenet5", "vggmini")

#: Per model: fully qualified weight name -> the layer name used in the paper's tables.
PAPER_LAYER_NAMES: dict[str, dict[str, str]] = {
    "lenet300": {"fc1.weight": "FC-0", "fc2.weight": "FC-1"},
    "lenet5": {"conv2.weight": "CNN-1", "fc1.weight": "FC-0"},
    "vggmini": {"fc1.weight": "FC-0", "fc2.weight": "FC-1"},
}


def _builders() -> dict[str, Callable[[], "nn.Module"]]:
    from .lenet import LeNet5, LeNet300
    from .vgg import VGGMini

    return {"lenet300": LeNet300, "lenet5": LeNet5, "vggmini": VGGMini}


def get_model(name: str, seed: int = 0) -> "nn.Module":
    """Return a freshly initialised model ``name`` (one of :data:`MODEL_NAMES`).

    The initialisation depends only on ``seed`` (the global torch RNG is left untouched).

    Raises:
        InputError: unknown model name.
    """
    import torch

    builders = _builders()
    if name not in builders:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return builders[name]()
