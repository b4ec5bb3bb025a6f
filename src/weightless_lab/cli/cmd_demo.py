"""``weightless demo``: a short demonstration of the Bloomier filter codec.

Makes a random layer of LeNet-300-100 FC-0's shape (784 x 300), prunes it by magnitude to 5%
nonzero and clusters the survivors into k = 9 centroids (the paper's Table 1 settings, t = 8),
encodes it in a Bloomier filter, round-trips the filter through bytes, and reports the size,
bits per nonzero, false positives and timings. Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

__all__ = ["register", "run", "make_layer", "demo"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command to ``subparsers``."""
    p = subparsers.add_parser(
        "demo",
        help="encode a random pruned and clustered layer in a Bloomier filter and report",
        description=(
            "Build a Bloomier filter for a random sparse, clustered 784x300 layer, round-trip it "
            "through bytes and print its size, bits per nonzero, false positives and timings."
        ),
    )
    p.add_argument("--rows", type=int, default=784, help="layer rows (default 784)")
    p.add_argument("--cols", type=int, default=300, help="layer columns (default 300)")
    p.add_argument("--density", type=float, default=0.05, help="fraction of nonzero weights (default 0.05)")
    p.add_argument("--k", type=int, default=9, help="number of clusters (default 9)")
    p.add_argument("--t", type=int, default=8, help="bits per filter cell (default 8)")
    p.add_argument("--shards", type=int, default=1, help="filter shards (default 1)")
    p.add_argument("--construction", default="paper", help="filter construction (default paper)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the layer and the filter")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=run)


def make_layer(rows: int, cols: int, density: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random layer pruned by magnitude and clustered with 1-D k-means.

    Returns:
        (keys, values, codebook): int64 flat positions of the nonzeros, their cluster indices
        in [0, k), and the k float32 centroids.
    Raises:
        InputError: density not in (0, 1] or k < 1.
    """
    from weightless.errors import InputError

    if not 0.0 < density <= 1.0:
        raise InputError(f"density must be in (0, 1], got {density}")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32) * np.float32(0.05)
    n = max(1, int(round(density * w.size)))
    flat = w.reshape(-1)
    keys = np.sort(np.argpartition(-np.abs(flat), n - 1)[:n]).astype(np.int64)
    x = flat[keys].astype(np.float64)
    centroids = np.quantile(x, (np.arange(k) + 0.5) / k)
    for _ in range(25):  # Lloyd iterations
        idx = np.abs(x[:, None] - centroids[None, :]).argmin(axis=1)
        for j in range(k):
            sel = idx == j
            if sel.any():
                centroids[j] = x[sel].mean()
    idx = np.abs(x[:, None] - centroids[None, :]).argmin(axis=1)
    return keys, idx.astype(np.int64), centroids.astype(np.float32)


def demo(
    rows: int = 784,
    cols: int = 300,
    density: float = 0.05,
    k: int = 9,
    t: int = 8,
    shards: int = 1,
    construction: str = "paper",
    seed: int = 0,
) -> dict:
    """Run the demonstration and return the report (JSON-able dict).

    Raises:
        InputError: invalid parameters.
        WeightlessError: the decoded layer differs from the encoded one (a bug).
    """
    from weightless.errors import WeightlessError
    from weightless.filters import BloomierFilter, build

    keys, values, codebook = make_layer(rows, cols, density, k, seed)
    size = rows * cols
    # load (or compile) the kernels first, so the timings below are the codec's own
    tw = time.perf_counter()
    warm = build(np.arange(0, 64, 2), np.zeros(32, np.int64), k=1, t=2, size=64, construction=construction)
    warm.reconstruct((64,), [1.0])
    warm.count_false_positives()
    t0 = time.perf_counter()
    f = build(keys, values, k=k, t=t, size=size, seed=seed, shards=shards, construction=construction)
    t1 = time.perf_counter()
    data = f.to_bytes()
    t2 = time.perf_counter()
    g = BloomierFilter.from_bytes(data)
    t3 = time.perf_counter()
    w = g.reconstruct((rows, cols), codebook)
    t4 = time.perf_counter()
    flat = w.reshape(-1)
    if not np.array_equal(flat[keys], codebook[values]):
        raise WeightlessError("demo: a stored weight did not decode to its centroid")
    fp = g.count_false_positives()
    n = int(keys.shape[0])
    dense = size * 4
    return {
        "layer": [rows, cols],
        "nonzeros": n,
        "density": n / size,
        "k": k,
        "t": t,
        "shards": shards,
        "construction": f.construction,
        "cells": f.m,
        "cells_per_key": f.m / n,
        "bytes": len(data),
        "header_bytes": len(f.header_bytes()),
        "bits_per_nonzero": 8 * len(data) / n,
        "dense_float32_bytes": dense,
        "compression_vs_dense": dense / len(data),
        "false_positives": fp,
        "false_positive_rate": fp / (size - n),
        "expected_false_positive_rate": k / 2**t,
        "keys_ok": True,
        "kernel_load_s": t0 - tw,
        "build_s": t1 - t0,
        "serialize_s": t2 - t1,
        "parse_s": t3 - t2,
        "decode_s": t4 - t3,
        "decode_positions_per_s": size / (t4 - t3),
    }


def run(args: argparse.Namespace) -> int:
    """Print the demonstration report; return 0."""
    rep = demo(args.rows, args.cols, args.density, args.k, args.t, args.shards, args.construction, args.seed)
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    lines = [
        f"Bloomier filter demo: random {rep['layer'][0]}x{rep['layer'][1]} layer, "
        f"{rep['nonzeros']} nonzeros ({100 * rep['density']:.2f}%), k={rep['k']} clusters, t={rep['t']} bits",
        f"  construction        {rep['construction']} ({rep['cells']} cells, {rep['cells_per_key']:.3f} per nonzero, "
        f"{rep['shards']} shard(s))",
        f"  size                {rep['bytes']} bytes (header {rep['header_bytes']}), "
        f"{rep['bits_per_nonzero']:.2f} bits/nonzero, {rep['compression_vs_dense']:.1f}x smaller than float32",
        f"  round trip          every nonzero decoded to its centroid: {'yes' if rep['keys_ok'] else 'NO'}",
        f"  false positives     {rep['false_positives']} ({rep['false_positive_rate']:.4%}; "
        f"expected k/2^t = {rep['expected_false_positive_rate']:.4%})",
        f"  timings             build {1e3 * rep['build_s']:.1f} ms, serialize {1e3 * rep['serialize_s']:.1f} ms, "
        f"parse {1e3 * rep['parse_s']:.1f} ms, decode {1e3 * rep['decode_s']:.1f} ms "
        f"({rep['decode_positions_per_s'] / 1e6:.0f}M positions/s); "
        f"loading the kernels took {1e3 * rep['kernel_load_s']:.0f} ms",
    ]
    print("\n".join(lines))
    return 0
