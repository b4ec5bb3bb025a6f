"""Bloomier filters: the lossy retrieval structure at the heart of Weightless.

``build(keys, values, k=..., t=..., size=...)`` returns a :class:`BloomierFilter`; see
:mod:`weightless.filters.filter` for sharding and the byte format, and
:mod:`weightless.filters.paper` for the paper's construction (3-hypergraph peeling).
Constructions register themselves in :mod:`weightless.filters.base` when imported.
"""

from __future__ import annotations

import importlib as _importlib

from . import paper  # noqa: F401  (registers "paper")

try:  # the compact construction lives in its own module, which may not exist yet
    _importlib.import_module(f"{__name__}.compact")  # registers "compact"
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the checkout
    if _exc.name != f"{__name__}.compact":
        raise

from .base import constructions, get_construction
from .filter import BloomierFilter, Shard, build, recommended_shards

__all__ = ["build", "BloomierFilter", "Shard", "recommended_shards", "constructions", "get_construction"]
