"""weightless: lossy weight encoding of neural networks with Bloomier filters.

The codec core (``weightless.filters``, ``weightless.entropy``, ``weightless.container``,
``weightless.baselines``) needs only numpy (numba optional, for speed). PyTorch is needed only
by simplification, retraining and model I/O, and is imported lazily by those modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    BudgetError,
    ConstructionError,
    DataError,
    FormatError,
    InputError,
    LimitError,
    WeightlessError,
)

__version__ = "0.1.0"

_LAZY = {
    "save": "io.files", "load": "io.files", "load_arrays": "io.files", "inspect": "io.files", "to_bytes": "io.files",
    "EncodedLayer": "io.files", "Clustered": "io.clustered", "compress": "pipeline.api", "encode_tensors": "convenience",
    "read_checkpoint": "convenience", "Limits": "io.limits", "CompressConfig": "pipeline.config", "EncodeConfig": "pipeline.config",
    "DecisionRule": "pipeline.config", "FilterSearch": "pipeline.config", "Retraining": "pipeline.config",
    "TailConfig": "pipeline.config",
    "LayerSelect": "simplify.select", "Recipe": "simplify.recipe", "Task": "training.task", "TrainConfig": "training.loop",
}


if TYPE_CHECKING:  # the lazy names, visible to type checkers and IDEs
    from .convenience import encode_tensors, read_checkpoint
    from .io.clustered import Clustered
    from .io.files import EncodedLayer, inspect, load, load_arrays, save, to_bytes
    from .io.limits import Limits
    from .pipeline.api import compress
    from .pipeline.config import CompressConfig, DecisionRule, EncodeConfig, FilterSearch, Retraining, TailConfig
    from .simplify.recipe import Recipe
    from .simplify.select import LayerSelect
    from .training.loop import TrainConfig
    from .training.task import Task


def __getattr__(name: str):  # PEP 562: keep ``import weightless`` light (no numpy until needed)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'weightless' has no attribute {name!r}")

__all__ = [
    "__version__",
    "save",
    "load",
    "load_arrays",
    "inspect",
    "to_bytes",
    "EncodedLayer",
    "Clustered",
    "compress",
    "encode_tensors",
    "read_checkpoint",
    "Limits",
    "CompressConfig",
    "EncodeConfig",
    "DecisionRule",
    "FilterSearch",
    "Retraining",
    "TailConfig",
    "LayerSelect",
    "Recipe",
    "Task",
    "TrainConfig",
    "WeightlessError",
    "InputError",
    "ConstructionError",
    "BudgetError",
    "FormatError",
    "DataError",
    "LimitError",
]
