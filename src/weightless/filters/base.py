"""The contract between the filter container and its constructions.

A *construction* is one way of laying out and solving a retrieval table: the paper's
3-hypergraph peeling with ``m = ceil(c n)`` cells ("paper"), or a compact construction with
far less slack ("compact"). The filter package handles validation, sharding, seeds and
retries (:mod:`.build`), serialization (:mod:`.wire`) and the exact-``k`` range check
(:mod:`.filter`); a construction only solves and queries its shards' tables. Constructions register themselves
with :func:`register` and are looked up by name or by the integer code stored in files.

Every construction stores, per shard:
- ``cells``: a ``uint16`` array of ``m`` cells, each below ``2**t`` (bit-packed on disk);
- ``aux``: a ``uint8`` array of extra metadata (empty for the paper construction), stored
  verbatim and counted in every size.

A raw lookup returns the t-bit word ``r`` for a key; the filter answers ``r`` if ``r < k``
and "empty" (a zero weight) otherwise. For a non-key ``r`` is uniform over ``[0, 2**t)``.

The :class:`Construction` protocol declares every method the filter calls. Four are the core
(``num_cells``, ``solve``, ``lookup``, ``decode_lut``); the others are hooks with a generic
implementation in :class:`ConstructionBase` (``decode_into``, ``validate``, ``prepare``,
``decode_layer``, ``count_below``) that a construction overrides when it has something faster or stricter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import InputError
from .parallel import run_pieces
from .sharding import BlockPlan

__all__ = ["Solution", "Shard", "frozen", "Construction", "ConstructionBase", "register", "get_construction", "constructions"]


@dataclass(frozen=True)
class Solution:
    """A solved table for one shard: ``cells`` (uint16, length m) and ``aux`` (uint8, may be empty)."""

    cells: np.ndarray
    aux: np.ndarray


@dataclass(frozen=True)
class Shard:
    """One table: ``n`` keys, ``m`` cells (``uint16``, each ``< 2**t``), the ``seed`` that
    solved it, and the construction's ``aux`` bytes (``uint8``). The arrays are read-only."""

    n: int
    m: int
    seed: int
    cells: np.ndarray
    aux: np.ndarray


def frozen(a: Any, dtype: Any) -> np.ndarray:
    """A read-only C-contiguous copy of ``a`` with ``dtype`` (filters never change)."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.flags.writeable = False
    return out


@runtime_checkable
class Construction(Protocol):
    """What a construction provides. ``keys`` are uint64 words (flat positions), ``seed`` an
    int; ``use_numba`` forces (True) or forbids (False) numba kernels, None: use them if present;
    ``threads`` bounds the threads of a decode (the result never depends on it)."""

    name: str
    code: int
    #: True if :meth:`solve` needs numba (raises ConstructionError without it).
    solve_needs_numba: bool

    def num_cells(self, n: int, c: float | None) -> int:
        """Number of cells m for n keys (``c`` is the requested m/n, or None for the default)."""
        ...

    def solve(
        self, keys: np.ndarray, values: np.ndarray, t: int, m: int, seed: int, *, use_numba: bool | None = None
    ) -> Solution | None:
        """Solve the table so every key's raw lookup equals its value; None if this seed fails."""
        ...

    def lookup(
        self, cells: np.ndarray, aux: np.ndarray, t: int, seed: int, keys: np.ndarray, *, use_numba: bool | None = None
    ) -> np.ndarray:
        """Raw t-bit lookup words (uint16) for arbitrary keys."""
        ...

    def decode_lut(
        self,
        cells: np.ndarray,
        aux: np.ndarray,
        t: int,
        seed: int,
        start: int,
        lut: np.ndarray,
        out: np.ndarray,
        *,
        use_numba: bool | None = None,
        threads: int = 1,
    ) -> None:
        """``out[i] = lut[raw(start + i)]`` for i < len(out) (``lut`` has ``2**t`` entries)."""
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
        *,
        use_numba: bool | None = None,
    ) -> None:
        """Whole-range decode: for i in range(len(out)), key = start + i, raw word r:
        ``out[i] = codebook[r] if r < k else 0`` (``codebook`` float32 of length k)."""
        ...

    def validate(self, cells: np.ndarray, aux: np.ndarray, t: int, n: int, m: int) -> None:
        """Check a loaded shard's ``aux`` against its cells; raise FormatError or InputError."""
        ...

    def prepare(self, shards: Sequence[Shard], t: int, *, use_numba: bool | None = None) -> Any:
        """Decode-ready tables of a filter's shards, passed to :meth:`decode_layer` and
        :meth:`count_below` (the filter caches them)."""
        ...

    def decode_layer(
        self,
        tables: Any,
        t: int,
        plan: BlockPlan,
        lut: np.ndarray,
        out: np.ndarray,
        *,
        use_numba: bool | None = None,
        threads: int = 1,
    ) -> None:
        """``out[p] = lut[raw(p)]`` for every position p of the layer (``plan`` maps positions
        to shards; ``tables`` from :meth:`prepare`)."""
        ...

    def count_below(
        self, tables: Any, t: int, plan: BlockPlan, k: int, *, use_numba: bool | None = None, threads: int = 1
    ) -> int:
        """Number of positions of the layer whose raw word is below ``k``."""
        ...


_COUNT_STEP = 1 << 20  # positions per step of the generic count (bounds its buffer to 2 MiB)


class ConstructionBase:
    """Generic implementations of the protocol's hooks, in terms of ``decode_lut``."""

    name: str
    code: int
    solve_needs_numba = False

    def decode_lut(self, cells, aux, t, seed, start, lut, out, *, use_numba=None, threads=1) -> None:  # type: ignore[no-untyped-def]
        """Generic: looks up ``start .. start + len(out) - 1`` in steps of 65536 keys."""
        step = 1 << 16
        for a in range(0, out.shape[0], step):
            b = min(out.shape[0], a + step)
            keys = np.arange(start + a, start + b, dtype=np.uint64)
            out[a:b] = lut[self.lookup(cells, aux, t, seed, keys, use_numba=use_numba)]  # type: ignore[attr-defined]

    def decode_into(self, cells, aux, t, k, seed, start, codebook, out, *, use_numba=None) -> None:  # type: ignore[no-untyped-def]
        """See :class:`Construction`; through :meth:`decode_lut`."""
        lut = np.zeros(1 << int(t), dtype=out.dtype)
        lut[:k] = np.asarray(codebook, dtype=out.dtype)[:k]
        self.decode_lut(cells, aux, t, seed, start, lut, out, use_numba=use_numba)

    def validate(self, cells: np.ndarray, aux: np.ndarray, t: int, n: int, m: int) -> None:
        """Generic: accepts every aux (constructions with structured aux override this)."""

    def prepare(self, shards, t, *, use_numba=None):  # type: ignore[no-untyped-def]
        """Generic: the shards themselves."""
        return tuple(shards)

    def decode_layer(self, shards, t, plan, lut, out, *, use_numba=None, threads=1) -> None:  # type: ignore[no-untyped-def]
        """Generic: :meth:`decode_lut` over each run of consecutive positions of one shard; one
        run gets every thread, several runs are dealt to ``threads`` threads in turn."""
        runs = plan.runs()
        if len(runs) == 1 or threads <= 1:
            for lo, hi, s in runs:
                sh = shards[s]
                self.decode_lut(sh.cells, sh.aux, t, sh.seed, lo, lut, out[lo:hi], use_numba=use_numba, threads=threads)
            return

        def work(part: list) -> None:
            for lo, hi, s in part:
                sh = shards[s]
                self.decode_lut(sh.cells, sh.aux, t, sh.seed, lo, lut, out[lo:hi], use_numba=use_numba)

        run_pieces(work, [(runs[i::threads],) for i in range(min(threads, len(runs)))])

    def count_below(self, shards, t, plan, k, *, use_numba=None, threads=1) -> int:  # type: ignore[no-untyped-def]
        """Generic: decodes to 0/1 flags in steps of 2**20 positions and counts them."""
        lut = (np.arange(1 << int(t)) < k).astype(np.uint8)
        buf = np.empty(_COUNT_STEP, np.uint8)
        total = 0
        for lo, hi, s in plan.runs():
            sh = shards[s]
            for a in range(lo, hi, _COUNT_STEP):
                b = min(hi, a + _COUNT_STEP)
                self.decode_lut(sh.cells, sh.aux, t, sh.seed, a, lut, buf[: b - a], use_numba=use_numba, threads=threads)
                total += int(np.count_nonzero(buf[: b - a]))
        return total


_REGISTRY: dict[str, Construction] = {}


def register(construction: Construction) -> Construction:
    """Add a construction to the registry (name and code must be unique); returns it.

    Raises:
        InputError: the code is taken, or the object lacks a method of :class:`Construction`
            (derive from :class:`ConstructionBase` for the generic hooks).
    """
    if not isinstance(construction, Construction):
        missing = [a for a in ("name", "code", *_METHODS) if not hasattr(construction, a)]
        raise InputError(f"construction {construction!r} lacks {missing}; derive it from ConstructionBase")
    for other in _REGISTRY.values():
        if other.code == construction.code and other.name != construction.name:
            raise InputError(f"construction code {construction.code} already used by {other.name!r}")
    _REGISTRY[construction.name] = construction
    return construction


_METHODS = ("num_cells", "solve", "lookup", "decode_lut", "decode_into", "validate", "prepare", "decode_layer", "count_below")


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
