"""Compress your own PyTorch model with weightless: a small CNN with BatchNorm on Fashion-MNIST.

This is what a user does: build and train a model in plain PyTorch, hand it to
``weightless.compress`` with a training DataLoader and validation data, write the ``.wl`` file,
and load it back into a fresh instance of the same model. Run from the repository root::

    .venv/bin/python examples/own_model.py                     # full data (a few minutes)
    .venv/bin/python examples/own_model.py --n-train 5000      # a quick look

The same model through the command line (weights saved by this script with ``--save-weights``)::

    weightless compress --model-def examples.own_model:make_cnn --weights runs/cnn.pt \\
        --data fashion-mnist --nonzero 0.1 --k 16 --min-size 1000 --max-error-increase 0.5 -o runs/cnn-cli.wl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import weightless
from weightless import CompressConfig, EncodeConfig, LayerSelect, Recipe, Retraining, TrainConfig


def make_cnn() -> nn.Module:
    """A small CNN with BatchNorm for 28x28 gray images and 10 classes (~110k weights)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def train_cnn(train: DataLoader, epochs: float) -> nn.Module:
    """Train :func:`make_cnn` for ``epochs`` passes over ``train`` (Adam, one-cycle); return it in eval mode."""
    model = make_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = int(epochs * len(train))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    done = 0
    while done < steps:
        for x, y in train:
            if done >= steps:
                break
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
            done += 1
    return model.eval()


def fashion_loaders(n_train: int | None = None, n_eval: int | None = None) -> tuple[DataLoader, TensorDataset, TensorDataset]:
    """Fashion-MNIST as this example uses it: (shuffled training loader, validation set, test set)."""
    from weightless_lab.data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist()
    train = DataLoader(_ds(data.train, n_train), batch_size=128, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    return train, _ds(data.val, n_eval), _ds(data.test, n_eval)


def _ds(split, n: int | None) -> TensorDataset:
    x, y = torch.from_numpy(split.x[:n]), torch.from_numpy(split.y[:n])
    return TensorDataset(x, y)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=None, help="training images (default all 50,000)")
    ap.add_argument("--n-eval", type=int, default=None, help="validation and test images (default all 10,000)")
    ap.add_argument("--epochs", type=float, default=4.0, help="dense training epochs")
    ap.add_argument("--retrain-epochs", type=float, default=None, help="retraining epochs per encoded layer")
    ap.add_argument("--nonzero", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--min-size", type=int, default=1000, help="leave layers with fewer weights dense")
    ap.add_argument("--max-error-increase", type=float, default=0.5, help="budget, pct points vs the dense model")
    ap.add_argument("--out", default="runs/cnn.wl")
    ap.add_argument("--save-weights", default=None, help="also save the dense weights here (.pt)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    train, val, test = fashion_loaders(args.n_train, args.n_eval)

    # 1. The user's own model and training loop: plain PyTorch.
    t_dense = time.perf_counter()
    model = train_cnn(train, args.epochs)
    dense_epoch_seconds = (time.perf_counter() - t_dense) / args.epochs
    if args.save_weights:
        torch.save(model.state_dict(), args.save_weights)
    dense_err = weightless.training.evaluate(model, test)

    # 2. weightless: every Linear and Conv weight of 1,000 weights or more at 10% nonzero, k = 16,
    #    within the budget (the 144-weight first conv and the 640-weight head stay dense).
    enc = EncodeConfig()
    if args.retrain_epochs is not None:
        enc = EncodeConfig(retraining=Retraining(train=TrainConfig(epochs=args.retrain_epochs, lr=5e-4, distill=0.5)))
    config = CompressConfig(recipe=Recipe(select=LayerSelect(nonzero=args.nonzero, k=args.k, min_size=args.min_size)),
                            encode=enc,
                            max_error_increase=args.max_error_increase)
    res = weightless.compress(model, train, val, config, test=test)  # progress on stderr; BudgetError if over
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    nbytes = weightless.save(args.out, res.tensors)

    # 3. Load the file back into a fresh model and score it.
    fresh = make_cnn()
    fresh.load_state_dict(weightless.load(args.out))
    file_err = weightless.training.evaluate(fresh, test)
    from weightless.pipeline.contract import paired_ci
    from weightless.training import per_example

    vs_dense = paired_ci(per_example(fresh, test)[0], per_example(model, test)[0])
    dense_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    report = {
        "dense_test_error": dense_err, "budget_pp": args.max_error_increase, "budget": res.budget,
        "file_bytes": nbytes, "dense_bytes": dense_bytes, "ratio": round(dense_bytes / nbytes, 2),
        "test_error_from_file": file_err, "reported_test_error": res.test_error,
        "decoded_vs_dense_test": vs_dense,
        "dense_epoch_seconds": round(dense_epoch_seconds, 2),
        "t": {r.name: r.t for r in res.layers}, "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report, indent=1, default=float))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return report


if __name__ == "__main__":
    main()
