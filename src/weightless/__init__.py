"""weightless: lossy weight encoding of neural networks with Bloomier filters.

The codec core (``weightless.filters``, ``weightless.entropy``, ``weightless.container``,
``weightless.baselines``) needs only numpy (numba optional, for speed). PyTorch is needed only
by simplification, retraining and model I/O, and is imported lazily by those modules.
"""

from __future__ import annotations

from .errors import (
    ConstructionError,
    DataError,
    FormatError,
    InputError,
    WeightlessError,
)

__version__ = "0.1.0"

from .api import inspect, load, save  # noqa: E402  (numpy only; torch imported by load() when asked)

__all__ = [
    "__version__",
    "save",
    "load",
    "inspect",
    "WeightlessError",
    "InputError",
    "ConstructionError",
    "FormatError",
    "DataError",
]
