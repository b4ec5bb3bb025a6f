"""Sharding: which table (shard) answers which position, and the order decoders visit them.

Positions are cut into blocks of ``2**block_bits`` (4096) consecutive positions; block ``b``
goes to shard ``reduce32(hash64(b, seed ^ SHARD_SALT), S)``. Each shard is an independent
table with its own seed (the first of ``derive_seed(shard_base_seed(seed, s), 0, 1, ...)`` that
solves), so shards can be built in parallel and the result does not depend on the number of
workers. Hashing whole blocks (instead of single keys) lets the decoder visit one shard's
blocks together: with ``S`` chosen so a shard's table (``m / S`` bytes when ``t <= 8``) is a
small part of the L2 cache (:func:`recommended_shards`; 40 for VGG-16 FC-0), table lookups
of the decode are cache hits, and building is faster too. Each shard costs a
20-byte record and the rounding of its own ``ceil(c n_s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._compat import HAVE_NUMBA, njit
from .hashing import derive_seed, hash64, hash64_scalar, reduce32, seed_word
from .params import MAX_SHARDS, check_int

__all__ = [
    "BLOCK_BITS",
    "SHARD_SALT",
    "SHARD_SEED_SALT",
    "BlockPlan",
    "block_plan",
    "shard_base_seed",
    "shard_of_blocks",
    "shard_of_positions",
    "split_by_shard",
    "recommended_shards",
]

#: log2 of the number of consecutive positions that share a shard.
BLOCK_BITS = 12
#: XORed into the base seed for the block -> shard hash.
SHARD_SALT = 0x3C6EF372FE94F82B
#: XORed into the base seed (with the shard number) for each shard's first seed.
SHARD_SEED_SALT = 0xA54FF53A5F1D36F1
_MASK64 = (1 << 64) - 1


def shard_base_seed(seed: int, s: int) -> int:
    """Return the first seed tried for shard ``s`` of a filter with base ``seed``."""
    if s == 0:
        return int(seed) & _MASK64
    return derive_seed(int(seed) ^ SHARD_SEED_SALT, s)


def shard_of_blocks(blocks: np.ndarray, shards: int, seed: int) -> np.ndarray:
    """Return the shard (int32) of each block index for a filter with base ``seed``."""
    blocks = np.asarray(blocks)
    if shards == 1:
        return np.zeros(blocks.shape, dtype=np.int32)
    h = hash64(blocks.astype(np.uint64, copy=False), (int(seed) ^ SHARD_SALT) & _MASK64)
    return reduce32(h, shards).astype(np.int32)


def shard_of_positions(positions: np.ndarray, shards: int, seed: int, block_bits: int = BLOCK_BITS) -> np.ndarray:
    """Return the shard (int32) of each position for a filter with base ``seed``."""
    pos = np.asarray(positions).astype(np.uint64, copy=False)
    return shard_of_blocks(pos >> np.uint64(block_bits), shards, seed)


@njit
def _nb_split(keys, values, shards, sw, block_bits, out_k, out_v, bounds):
    """Counting sort of keys/values by shard (stable); ``bounds`` gets the S + 1 boundaries."""
    n = keys.shape[0]
    sid = np.empty(n, np.int32)
    for i in range(n):
        h = hash64_scalar(np.uint64(keys[i]) >> np.uint64(block_bits), sw)
        s = np.int32(((h >> np.uint64(32)) * np.uint64(shards)) >> np.uint64(32))
        sid[i] = s
        bounds[s + 1] += 1
    for s in range(shards):
        bounds[s + 1] += bounds[s]
    pos = bounds[:-1].copy()
    for i in range(n):
        s = sid[i]
        out_k[pos[s]] = keys[i]
        out_v[pos[s]] = values[i]
        pos[s] += 1


def split_by_shard(keys: np.ndarray, values: np.ndarray, shards: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``[(keys, values) of shard s for s in range(shards)]`` (stable order)."""
    if shards == 1:
        return [(keys, values)]
    if HAVE_NUMBA:
        ok, ov = np.empty_like(keys), np.empty_like(values)
        b = np.zeros(shards + 1, np.int64)
        _nb_split(keys, values, shards, seed_word((int(seed) ^ SHARD_SALT) & _MASK64), BLOCK_BITS, ok, ov, b)
        return [(ok[b[s] : b[s + 1]], ov[b[s] : b[s + 1]]) for s in range(shards)]
    sid = shard_of_positions(keys, shards, seed)
    idx = np.argsort(sid, kind="stable")
    bounds = np.searchsorted(sid[idx], np.arange(shards + 1))
    return [(keys[idx[bounds[s] : bounds[s + 1]]], values[idx[bounds[s] : bounds[s + 1]]]) for s in range(shards)]


@dataclass(frozen=True)
class BlockPlan:
    """How the positions ``[0, size)`` of a filter map onto its shards.

    ``block_shard[b]`` is the shard (int32) of block ``b``; ``order`` (int64) lists the blocks
    grouped by shard (ascending within a shard); ``bounds[s] : bounds[s + 1]`` is shard s's
    part of ``order``.
    """

    size: int
    block_bits: int
    shards: int
    block_shard: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    def runs(self) -> list[tuple[int, int, int]]:
        """Maximal runs ``(lo, hi, shard)`` of consecutive positions in one shard, covering
        ``[0, size)`` in order."""
        if self.shards == 1:
            return [(0, self.size, 0)]
        bs = self.block_shard
        cut = np.flatnonzero(bs[1:] != bs[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [bs.shape[0]]])
        bb = self.block_bits
        return [(int(a) << bb, min(int(b) << bb, self.size), int(bs[a])) for a, b in zip(starts, ends)]


def block_plan(size: int, block_bits: int, shards: int, seed: int) -> BlockPlan:
    """Return the :class:`BlockPlan` of a filter over ``size`` positions."""
    nblocks = ((size - 1) >> block_bits) + 1
    bshard = shard_of_blocks(np.arange(nblocks, dtype=np.uint64), shards, seed)
    order = np.argsort(bshard, kind="stable").astype(np.int64)
    bounds = np.searchsorted(bshard[order], np.arange(shards + 1)).astype(np.int64)
    return BlockPlan(size, block_bits, shards, bshard, order, bounds)


def recommended_shards(n: int, t: int, c: float = 1.25, cache_bytes: int = 96 * 1024) -> int:
    """Return a shard count S that keeps each shard's decode table (``c n / S`` cells of one
    byte for t <= 8, two bytes otherwise) within ``cache_bytes``, so that decoding hits the
    cache; 1 for small layers. Costs about 30 bytes per shard in an entropy-coded file.

    The default, 96 KiB, is a fifth of a 512 KiB L2 cache: the decode also streams its output
    and index buffers through the cache. Measured on VGG-16 FC-0 (3.07M keys, t = 6, AMD EPYC,
    512 KiB L2 per core), one thread: 375 KiB tables (S = 10) decode about 15% slower than
    78-117 KiB ones (S = 32-48); below ~50 KiB nothing more is gained and the file grows.

    Raises:
        InputError: n < 0, t not in [1, 16] or cache_bytes < 1.
    """
    n = check_int("n", n, 0, 1 << 62)
    t = check_int("t", t, 1, 16)
    cache_bytes = check_int("cache_bytes", cache_bytes, 1, 1 << 40)
    table = math.ceil(c * n) * (1 if t <= 8 else 2)
    return max(1, min(MAX_SHARDS, math.ceil(table / cache_bytes)))
