"""Bloomier filters: the lossy retrieval structure at the heart of Weightless.

``build(keys, values, k=..., t=..., size=...)`` returns a :class:`BloomierFilter`. The package
is split by job: :mod:`.sharding` (positions -> shards), :mod:`.build` (checks, shards, seed
retries), :mod:`.wire` (the byte format), :mod:`.filter` (the filter class: queries and
decodes), :mod:`.base` (the construction protocol and registry), and one module per
construction with its numba kernels beside it (:mod:`.paper` / :mod:`.paper_kernels`: the
paper's 3-hypergraph peeling; :mod:`.compact` / :mod:`.compact_kernels`: sharded Ribbon).
Constructions register themselves in :mod:`weightless.filters.base` when imported.
"""

from __future__ import annotations

from . import compact, paper  # noqa: F401  (register "compact" and "paper")
from .base import constructions, get_construction
from .build import build
from .filter import BloomierFilter, Shard
from .sharding import recommended_shards

__all__ = ["build", "BloomierFilter", "Shard", "recommended_shards", "constructions", "get_construction"]
