"""The clean simplified (pruned + clustered) weight tensors that bench_lossless.py codes.

For each of the four ``compress`` recipes (LeNet-300-100 and LeNet5, magnitude and DNS; the
dense model from the checkpoint cache, trained there when missing, then the paper's recipe
with seed 0, as ``weightless compress`` simplifies it) and for examples/own_model.py (its CNN
trained as the example does, then its recipe: 10% nonzero, k = 16, layers of 1,000 weights or
more), writes ``<out>/<model>.npz`` holding ``<layer>/indices`` (-1 = pruned) and
``<layer>/codebook`` of every simplified layer. CPU-heavy (simplification retrains): run it
under the shared lock. Existing files are kept (delete one to simplify that model again).

    .venv/bin/python benchmarks/lossless_tensors.py [--out runs/lossless] [--only lenet5-dns]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

MODELS = ("lenet300-magnitude", "lenet300-dns", "lenet5-magnitude", "lenet5-dns", "own_model")


def _mnist(name: str):
    """(simplify result) of an MNIST recipe, as ``weightless compress`` runs it."""
    from weightless.simplify import simplify
    from weightless_lab.apps.checkpoint import train_dense
    from weightless_lab.apps.mnist import DENSE_TRAINING, PAPER_RECIPES, mnist_task

    model, pruning = name.split("-")
    task = mnist_task()
    dense_cfg = replace(DENSE_TRAINING[model], seed=0, progress=False, desc="dense")
    net, _, _ = train_dense(model, task.train, dense_cfg, seed=0, cache_dir="checkpoints")
    return simplify(net, task, replace(PAPER_RECIPES[(model, pruning)], seed=0))


def _own_model():
    """(simplify result) of examples/own_model.py's CNN and recipe."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.own_model import fashion_loaders, train_cnn
    from weightless import LayerSelect, Recipe
    from weightless.simplify import simplify
    from weightless.training.task import as_task

    train, val, test = fashion_loaders()
    net = train_cnn(train, 4.0)
    return simplify(net, as_task(train, val, test), Recipe(select=LayerSelect(nonzero=0.1, k=16, min_size=1000)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lossless")
    ap.add_argument("--only", choices=MODELS, action="append")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or MODELS:
        path = out / f"{name}.npz"
        if path.exists():
            print(f"{name}: {path} exists")
            continue
        t0 = time.perf_counter()
        res = _own_model() if name == "own_model" else _mnist(name)
        arrays = {}
        for lname, layer in res.layers.items():
            arrays[f"{lname}/indices"] = np.asarray(layer.indices)
            arrays[f"{lname}/codebook"] = np.asarray(layer.codebook)
        np.savez(path, **arrays)
        print(f"{name}: {len(res.layers)} layers, test error {res.test_error}, "
              f"{time.perf_counter() - t0:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
