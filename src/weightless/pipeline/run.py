"""One compression run on MNIST, end to end: data, dense training (cached), simplification,
encoding with retraining, the ``.wl`` file, and the test error of the model decoded from it.

Used by ``weightless compress`` and by the reproduction; the report is JSON data.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .compress import EncodeConfig, encode_with_retraining

__all__ = ["RunOptions", "PAPER_T", "prepare", "compress_run", "baseline_sizes"]

#: The t of the paper's Table 1, per (model, pruning) and layer.
PAPER_T: dict[tuple[str, str], dict[str, int]] = {
    ("lenet300", "magnitude"): {"fc1.weight": 8, "fc2.weight": 9},
    ("lenet300", "dns"): {"fc1.weight": 9, "fc2.weight": 8},
    ("lenet5", "magnitude"): {"conv2.weight": 8, "fc1.weight": 7},
    ("lenet5", "dns"): {"conv2.weight": 8, "fc1.weight": 8},
}


@dataclass(frozen=True)
class RunOptions:
    """Options of one compression run (see ``weightless compress --help``).

    ``t``: "auto" (chosen on the validation split), "paper" (Table 1) or {layer: t}.
    ``quick``: smoke run on 10,000 training images with 1/8 of the epochs.
    """

    model: str = "lenet300"
    pruning: str = "magnitude"
    t: str | dict[str, int] = "auto"
    tolerance: float = 0.05
    retrain_epochs: float = 2.0
    retrain_lr: float = 5e-4
    t_max: int = 12
    construction: str = "auto"
    seed_trials: int = 8
    c: float | None = None
    shards: int = 1
    entropy: bool = True
    dense_dtype: str = "float32"
    seed: int = 0
    quick: bool = False
    cache_dir: str | None = "checkpoints"
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid option."""
        if self.model not in ("lenet300", "lenet5"):
            raise InputError(f"model must be 'lenet300' or 'lenet5', got {self.model!r}")
        if self.pruning not in ("magnitude", "dns"):
            raise InputError(f"pruning must be 'magnitude' or 'dns', got {self.pruning!r}")
        if isinstance(self.t, str) and self.t not in ("auto", "paper"):
            raise InputError(f"t must be 'auto', 'paper' or a per-layer mapping, got {self.t!r}")
        if not self.retrain_epochs >= 0:
            raise InputError(f"retrain epochs must be >= 0, got {self.retrain_epochs}")
        if self.shards < 1:
            raise InputError(f"shards must be >= 1, got {self.shards}")


def prepare(opts: RunOptions, log: Callable[[str], None]) -> tuple[Any, Any, dict[str, Any]]:
    """Load MNIST, train (or load the cached) dense model and simplify it with the paper's
    Table 1 recipe. Returns ``(data, simplify_result, info)``."""
    from ..data.mnist import load_mnist
    from ..simplify import DENSE_TRAINING, PAPER_RECIPES, simplify
    from ..training import evaluate
    from ..training.checkpoint import train_dense

    data = load_mnist()
    dense_cfg = replace(DENSE_TRAINING[opts.model], seed=opts.seed, progress=opts.progress, desc="dense")
    recipe = replace(PAPER_RECIPES[(opts.model, opts.pruning)], seed=opts.seed)
    if opts.quick:
        data = data.subset(10_000, 10_000)
        dense_cfg = replace(dense_cfg, epochs=max(1.0, dense_cfg.epochs / 8))
        recipe = recipe.scaled(1 / 8)
    model, dense_seconds, cached = train_dense(opts.model, data, dense_cfg, seed=opts.seed, cache_dir=opts.cache_dir)
    dense_err = evaluate(model, data.test)
    log(f"dense {opts.model}: test error {dense_err:.2f}% ({'cached' if cached else f'trained in {dense_seconds:.0f}s'})")
    t1 = time.perf_counter()
    simplified = simplify(model, data, recipe, progress=opts.progress)
    log(
        f"simplified ({opts.pruning}): test error {simplified.test_error:.2f}%, val error {simplified.val_error:.2f}%, "
        + ", ".join(f"{l.paper_name} {100 * l.nonzero_fraction:.2f}% nonzero k={l.k}" for l in simplified.layers.values())
    )
    info = {
        "dense_test_error": dense_err,
        "dense_from_cache": cached,
        "seconds_dense": round(dense_seconds, 2),  # 0 when loaded from the cache
        "seconds_simplify": round(time.perf_counter() - t1, 2),
    }
    return data, simplified, info


def baseline_sizes(indices: np.ndarray, codebook: np.ndarray, conv: bool) -> dict[str, int]:
    """Deep Compression sizes of one simplified layer (real bytes, decoded back and checked):
    plain CSR and CSR + Huffman with the published index widths (5 bits FC, 8 bits conv), and
    CSR + Huffman with the best index width for this layer (a stronger baseline)."""
    from ..baselines import csr_decode, csr_encode, dc_decode, dc_encode

    bits = 8 if conv else 5
    out = {}
    for key, enc, dec, b in (
        ("csr", csr_encode, csr_decode, bits),
        ("csr_huffman", dc_encode, dc_decode, bits),
        ("csr_huffman_best", dc_encode, dc_decode, "auto"),
    ):
        data = enc(indices, indices.shape, codebook, index_bits=b)
        back = dec(data)[0]
        if not np.array_equal(np.asarray(back).reshape(indices.shape), indices):
            raise RuntimeError(f"{key} baseline did not round-trip")  # a bug, not a user error
        out[key] = len(data)
    return out


def compress_run(opts: RunOptions, output: str | os.PathLike, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole compression and write ``output`` (a ``.wl`` file).

    Returns:
        A JSON-ready report: options, per-layer rows (sizes in real bytes, Deep Compression
        baseline, errors), file size, and the test error of the model decoded from the file.

    Raises:
        InputError: invalid options. DataError: MNIST missing. ConstructionError.
    """
    from .. import api
    from ..models import get_model
    from ..training import TrainConfig, evaluate

    opts.validate()
    t_all = time.perf_counter()
    data, simplified, info = prepare(opts, log)
    if opts.t == "paper":
        tmap = dict(PAPER_T[(opts.model, opts.pruning)])
    elif opts.t == "auto":
        tmap = {}
    else:
        tmap = dict(opts.t)
    retrain = None
    if opts.retrain_epochs > 0:
        epochs = opts.retrain_epochs / (8 if opts.quick else 1)
        retrain = TrainConfig(epochs=max(epochs, 0.05), lr=opts.retrain_lr, seed=opts.seed)
    cfg = EncodeConfig(
        t=tmap, tolerance=opts.tolerance, retrain=retrain, construction=opts.construction, c=opts.c,
        shards=opts.shards, seed_trials=opts.seed_trials, entropy=opts.entropy, dense_dtype=opts.dense_dtype, seed=opts.seed, t_max=opts.t_max,
    )
    t_enc = time.perf_counter()
    res = encode_with_retraining(simplified, data, cfg, progress=opts.progress, log=log)
    seconds_encode = time.perf_counter() - t_enc
    metadata = {
        "model": opts.model,
        "pruning": opts.pruning,
        "weightless_version": __import__("weightless").__version__,
        "seed": opts.seed,
        "simplified_test_error": round(res.simplified_test_error, 4),
        "test_error": round(res.test_error, 4),
    }
    nbytes = api.save(output, res.tensors, metadata=metadata, dense_dtype=opts.dense_dtype, entropy=opts.entropy)
    # The honest figure: evaluate the model decoded from the file just written.
    t_load = time.perf_counter()
    state = api.load(output)
    seconds_load = time.perf_counter() - t_load
    decoded = get_model(opts.model)
    decoded.load_state_dict(state)
    decoded_err = evaluate(decoded, data.test)
    summary = api.inspect(output)
    rec_bytes = {r["name"]: r["payload_bytes"] for r in summary["records"]}
    rows = []
    for rep in res.layers:
        enc = res.tensors[rep.name]
        base = baseline_sizes(res.indices[rep.name], enc.codebook, conv=len(rep.shape) > 2)
        dense_bytes = 4 * int(np.prod(rep.shape))
        wl = rec_bytes[rep.name]
        row = rep.as_dict()
        row.pop("trials")
        row.update(
            nonzero_percent=round(100 * rep.nonzero / int(np.prod(rep.shape)), 3),
            cells_per_key=round(rep.m / max(rep.nonzero, 1), 4),
            dense_bytes=dense_bytes,
            weightless_bytes=wl,
            csr_bytes=base["csr"],
            csr_huffman_bytes=base["csr_huffman"],
            csr_huffman_best_bytes=base["csr_huffman_best"],
            weightless_factor=round(dense_bytes / wl, 2),
            csr_huffman_factor=round(dense_bytes / base["csr_huffman"], 2),
            improvement_vs_deep_compression=round(min(base["csr_huffman"], base["csr_huffman_best"]) / wl, 3),
            trials=rep.trials,
        )
        rows.append(row)
    n_params = sum(int(np.prod(v.shape)) for v in state.values())
    return {
        "options": {k: v for k, v in opts.__dict__.items()},
        "output": str(output),
        "file_bytes": nbytes,
        "dense_model_bytes": 4 * n_params,
        "model_compression_factor": round(4 * n_params / nbytes, 2),
        "layers": rows,
        "dense_test_error": info["dense_test_error"],
        "simplified_test_error": res.simplified_test_error,
        "simplified_val_error": res.simplified_val_error,
        "encoded_val_error": res.val_error,
        "encoded_test_error": res.test_error,
        "decoded_test_error": decoded_err,
        "seconds": {
            "dense": info["seconds_dense"],
            "simplify": info["seconds_simplify"],
            "encode_and_retrain": round(seconds_encode, 2),
            "load_file": round(seconds_load, 3),
            "total": round(time.perf_counter() - t_all, 2),
        },
    }
