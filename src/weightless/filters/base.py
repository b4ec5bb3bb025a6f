"""The contract between the filter container and its constructions.

A *construction* is one way of laying out and solving a retrieval table: the paper's
3-hypergraph peeling with ``m = ceil(c n)`` cells ("paper"), or a compact construction with
far less slack ("compact"). The public filter class (``weightless.filters.filter``) handles
validation, sharding, seeds and retries, serialization and the exact-``k`` range check; a
construction only solves and queries one shard's table. Constructions register themselves
with :func:`register` and are looked up by name or by the integer code stored in files.

Every construction stores, per shard:
- ``cells``: a ``uint16`` array of ``m`` cells, each below ``2**t`` (bit-packed on disk);
- ``aux``: a ``uint8`` array of extra metadata (empty for the paper construction), stored
  verbatim and counted in every size.

A raw lookup returns the t-bit word ``r`` for a key; the filter answers ``r`` if ``r < k``
and "empty" (a zero weight) otherwise. For a non-key ``r`` is uniform over ``[0, 2**t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InputError

__all__ = ["Solution", "Construction", "register", "get_construction", "constructions"]


@dataclass(frozen=True)
class Solution:
    """A solved table for one shard: ``cells`` (uint16, length m) and ``aux`` (uint8, may be empty)."""

    cells: np.ndarray
    aux: np.ndarray


class Construction(Protocol):
    """What a construction provides. ``keys`` are uint64 words (flat positions), ``seed`` an int."""

    name: str
    code: int

    def num_cells(self, n: int, c: float | None) -> int:
        """Number of cells m for n keys (``c`` is the requested m/n, or None for the default)."""
        ...

    def solve(
        self, keys: np.ndarray, values: np.ndarray, t: int, m: int, seed: int
    ) -> Solution | None:
        """Solve the table so every key's raw lookup equals its value; None if this seed fails."""
        ...

    def lookup(
        self, cells: np.ndarray, aux: np.ndarray, t: int, seed: int, keys: np.ndarray
    ) -> np.ndarray:
        """Raw t-bit lookup words (uint16) for arbitrary keys."""
        ...

    def decode_into(
        self,
        cells: np.ndarray,
        aux: np.ndarray,
        t: int,
        k: int,
        seed: int,
        start: int,
        codebook: np.ndarray,
        out: np.ndarray,
    ) -> None:
        """Whole-layer decode: for i in range(len(out)), key = start + i, raw word r:
        ``out[i] = codebook[r] if r < k else 0`` (``codebook`` float32 of length k)."""
        ...


_REGISTRY: dict[str, Construction] = {}


def register(construction: Construction) -> Construction:
    """Add a construction to the registry (name and code must be unique); returns it."""
    for other in _REGISTRY.values():
        if other.code == construction.code and other.name != construction.name:
            raise InputError(f"construction code {construction.code} already used by {other.name!r}")
    _REGISTRY[construction.name] = construction
    return construction


def constructions() -> dict[str, Construction]:
    """Return the registered constructions by name."""
    return dict(_REGISTRY)


def get_construction(name_or_code: str | int) -> Construction:
    """Return the construction with this name or file code.

    Raises:
        InputError: no construction has this name or code.
    """
    for con in _REGISTRY.values():
        if con.name == name_or_code or con.code == name_or_code:
            return con
    known = ", ".join(f"{c.name!r} (code {c.code})" for c in _REGISTRY.values()) or "none"
    raise InputError(f"unknown filter construction {name_or_code!r}; known: {known}")
