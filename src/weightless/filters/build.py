"""Building a filter: argument checks, the split into shards, and seed retries per shard.

Each shard is solved independently by its construction with the seeds
``derive_seed(shard_base_seed(seed, s), 0, 1, ...)`` until one solves, in worker processes
for large sharded layers; the result does not depend on the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from .._compat import njit
from .._compat import use_numba as _use_numba
from ..errors import ConstructionError, InputError
from .base import Shard, frozen, get_construction
from .hashing import derive_seed
from .params import MASK64, MAX_CELLS, MAX_SHARDS, MAX_SIZE, as_int_array, check_int, check_kt
from .sharding import shard_base_seed, split_by_shard

if TYPE_CHECKING:  # pragma: no cover
    from .filter import BloomierFilter

__all__ = ["build", "PARALLEL_MIN_KEYS"]

#: With ``workers=None``, layers with fewer keys are built in-process.
PARALLEL_MIN_KEYS = 1 << 18


@njit
def _nb_first_duplicate(keys, bitmap):
    for i in range(keys.shape[0]):
        p = keys[i]
        w = p >> 3
        bit = np.uint8(1) << np.uint8(p & 7)
        if bitmap[w] & bit:
            return p
        bitmap[w] |= bit
    return -1


@njit
def _nb_check(keys, values, size, k):
    """One pass over keys and values: (code, index), code 0 if every key is in [0, size) and
    every value in [0, k), 1 if key i is out of range, 2 if value i is."""
    for i in range(keys.shape[0]):
        if keys[i] < 0 or keys[i] >= size:
            return 1, i
        if values[i] < 0 or values[i] >= k:
            return 2, i
    return 0, -1


def _first_duplicate(keys: np.ndarray, size: int, use_numba: bool | None) -> int | None:
    """A key that appears twice in ``keys`` (int64 in [0, size)), or None."""
    if _use_numba(use_numba) and size <= max(64 * keys.shape[0], 1 << 27):  # bitmap <= 8 bytes per key
        d = _nb_first_duplicate(keys, np.zeros((size >> 3) + 1, np.uint8))
        return None if d < 0 else int(d)
    sk = np.sort(keys)
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    return int(sk[dup[0]]) if dup.size else None


def _solve_shard(args: tuple) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Worker: try seeds for one shard; returns (seed, cells, aux, attempts) or raises."""
    return _shard_solutions(args, 1)[0]


def _shard_solutions(args: tuple, wanted: int) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """The first ``wanted`` seeds that solve one shard, in attempt order: (seed, cells, aux,
    attempts so far) each. Raises ConstructionError if none of ``max_attempts`` solves."""
    name, keys, values, t, m, base, max_attempts, use_numba = args
    con = get_construction(name)
    found = []
    for attempt in range(max_attempts):
        seed = derive_seed(base, attempt)
        sol = con.solve(keys, values, t, m, seed, use_numba=use_numba)
        if sol is not None:
            found.append((seed, sol.cells, sol.aux, attempt + 1))
            if len(found) == wanted:
                break
    if not found:
        raise ConstructionError(
            f"construction {name!r} failed for all {max_attempts} seeds on a shard of {keys.shape[0]} keys "
            f"with {m} cells; raise max_attempts, use a larger c, or change the seed"
        )
    return found


def build(
    keys: Any,
    values: Any,
    *,
    k: int,
    t: int,
    size: int,
    seed: int = 0,
    construction: str = "paper",
    c: float | None = None,
    shards: int = 1,
    workers: int | None = None,
    max_attempts: int = 64,
    use_numba: bool | None = None,
) -> "BloomierFilter":
    """Build a filter mapping each key (a flat position in ``[0, size)``) to its value.

    Args:
        keys: distinct integer positions in ``[0, size)``.
        values: integers in ``[0, k)``, one per key.
        k: number of clusters (values), >= 1.
        t: bits per cell, ``ceil(log2 k) < t <= 16``.
        size: number of positions of the layer (product of its shape).
        seed: base seed (0 <= seed < 2**64); retries use :func:`derive_seed`.
        construction: registered construction name ("paper", "compact", ...).
        c: cells per key (m/n) for the construction, None for its default.
        shards: number of shards S (tables), >= 1.
        workers: processes for a sharded build (None: min(S, CPU count) when there are at
            least 2**18 keys, else in-process); 1 builds in-process. The result does not
            depend on it.
        max_attempts: seeds tried per shard before giving up.
        use_numba: force (True) or forbid (False) the numba kernels; None: use them if present.

    Returns:
        The :class:`~weightless.filters.filter.BloomierFilter`.
    Raises:
        InputError: any argument is invalid (duplicate keys, keys outside ``[0, size)``, values
            outside ``[0, k)``, bad ``k``/``t``, non-integer arrays, mismatched lengths, ...).
        ConstructionError: some shard failed for ``max_attempts`` seeds.
    """
    from .filter import BloomierFilter

    con, parts, tasks, nworkers = _tasks(keys, values, k, t, size, seed, construction, c, shards, workers, max_attempts,
                                         use_numba)
    if nworkers <= 1 or len(tasks) == 1:
        results = [_solve_shard(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=nworkers) as pool:
            results = list(pool.map(_solve_shard, tasks))
    out = [
        Shard(n=int(ks.shape[0]), m=task[4], seed=int(sseed), cells=frozen(cells, np.uint16), aux=frozen(aux, np.uint8))
        for (ks, _), task, (sseed, cells, aux) in zip(parts, tasks, (r[:3] for r in results))
    ]
    return BloomierFilter(k=int(k), t=int(t), size=int(size), seed=int(seed), construction=con.name, shards=tuple(out))


def _tasks(keys: Any, values: Any, k: int, t: int, size: int, seed: int, construction: str, c: float | None,
           shards: int, workers: int | None, max_attempts: int, use_numba: bool | None) -> tuple[Any, list, list, int]:
    """Check :func:`build`'s arguments; return (construction, per-shard (keys, values), per-shard
    solver tasks, worker processes to use). Raises InputError as :func:`build` documents."""
    k, t = check_kt(k, t)
    size = check_int("size", size, 1, MAX_SIZE)
    seed = check_int("seed", seed, 0, MASK64)
    shards = check_int("shards", shards, 1, MAX_SHARDS)
    max_attempts = check_int("max_attempts", max_attempts, 1, 1 << 20)
    if workers is not None:
        workers = check_int("workers", workers, 1, 1024)
    con = get_construction(construction)
    keys = as_int_array("keys", keys)
    values = as_int_array("values", values)
    if keys.shape[0] != values.shape[0]:
        raise InputError(f"keys and values must have the same length, got {keys.shape[0]} and {values.shape[0]}")
    n = int(keys.shape[0])
    if n:
        code = _nb_check(keys, values, size, k)[0] if _use_numba(use_numba) else -1
        if code != 0:  # report the ranges (numpy) only when something is wrong, or without numba
            kmin, kmax = int(keys.min()), int(keys.max())
            if kmin < 0 or kmax >= size:
                raise InputError(f"keys must lie in [0, size) = [0, {size}); got keys in [{kmin}, {kmax}]")
            vmin, vmax = int(values.min()), int(values.max())
            if vmin < 0 or vmax >= k:
                raise InputError(f"values must lie in [0, k) = [0, {k}); got values in [{vmin}, {vmax}]")
        dup = _first_duplicate(keys, size, use_numba)
        if dup is not None:
            raise InputError(f"keys must be distinct; position {dup} appears more than once")
    parts = split_by_shard(keys, values, shards, seed)  # the tables do not depend on the key order
    tasks = []
    for s, (ks, vs) in enumerate(parts):
        m = int(con.num_cells(int(ks.shape[0]), c))
        if m > MAX_CELLS:
            raise InputError(f"a shard needs {m} cells, more than {MAX_CELLS}; use more shards")
        tasks.append((con.name, ks.astype(np.uint64), vs.astype(np.uint16), t, m, shard_base_seed(seed, s), max_attempts, use_numba))
    if workers is None:  # processes pay off only for large layers
        nworkers = min(shards, os.cpu_count() or 1) if n >= PARALLEL_MIN_KEYS else 1
    else:
        nworkers = min(workers, shards)
    return con, parts, tasks, nworkers
