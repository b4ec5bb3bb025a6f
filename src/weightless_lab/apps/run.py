"""One compression run of a paper LeNet on MNIST, end to end, through the public API: data,
dense training (cached), :func:`weightless.compress` with the paper's Table 1 recipe, the
``.wl`` file, and the test error of the model decoded from it (with a paired 95% confidence
interval against the simplified model).

Used by ``weightless compress --model lenet300|lenet5`` and by ``make demo``; the report is JSON.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from weightless.errors import InputError
from weightless.pipeline.config import EncodeConfig
from weightless.pipeline.contract import paired_ci
from .encode_options import override_encode
from .mnist import PAPER_T

__all__ = ["RunOptions", "PAPER_T", "compress_run", "baseline_sizes"]

@dataclass(frozen=True)
class RunOptions:
    """Options of one compression run (see ``weightless compress --help``).

    ``encode``: the encoding (:class:`~weightless.pipeline.config.EncodeConfig`, whose defaults
    are defined once, there); :meth:`encode_config` adds the run's ``seed`` (filters and
    retraining), the paper's Table 1 t when ``paper_t`` and, for ``quick``, 1/8 of the retraining.
    ``tolerance``: instead of a budget, the paper's setting: ``tolerance`` percentage points over
    the simplified model (also the encoding's rule tolerance).
    ``quick``: smoke run on 10,000 training images with 1/8 of the epochs.
    """

    model: str = "lenet300"
    pruning: str = "magnitude"
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    paper_t: bool = False
    tolerance: float | None = None
    entropy: bool = True
    dense_dtype: str = "float32"
    seed: int = 0
    quick: bool = False
    cache_dir: str | None = "checkpoints"
    progress: bool = True
    max_error_increase: float | None = None
    max_error: float | None = None
    allow_over_budget: bool = False
    compare_lossless: bool = False

    def budget(self) -> dict[str, Any]:
        """The budget fields of :class:`~weightless.pipeline.config.CompressConfig`: the given
        budget against the model as given; with only ``tolerance``, the paper's setting
        (``tolerance`` over the simplified model); with neither, the default budget."""
        over: dict[str, Any] = {"allow_over_budget": self.allow_over_budget}
        if self.max_error_increase is not None or self.max_error is not None:
            return {**over, "max_error_increase": self.max_error_increase, "max_error": self.max_error}
        if self.tolerance is not None:
            return {**over, "reference": "simplified", "max_error_increase": self.tolerance}
        return over

    def validate(self) -> None:
        """Raise :class:`InputError` for an invalid option (before any training)."""
        if self.model not in ("lenet300", "lenet5"):
            raise InputError(f"model must be 'lenet300' or 'lenet5', got {self.model!r}")
        if self.pruning not in ("magnitude", "dns"):
            raise InputError(f"pruning must be 'magnitude' or 'dns', got {self.pruning!r}")
        if not isinstance(self.encode, EncodeConfig):
            raise InputError(f"encode must be an EncodeConfig, got {type(self.encode).__name__}")
        self.encode_config().validate()

    def encode_config(self) -> EncodeConfig:
        """The :class:`EncodeConfig` of this run: ``encode`` with the run's seed, the paper's t
        (``paper_t``, at the recipe's k), ``tolerance`` and, for ``quick``, 1/8 of the retraining
        epochs."""
        enc = override_encode(self.encode, t=dict(PAPER_T[(self.model, self.pruning)]) if self.paper_t else None,
                              seed=self.seed, tolerance=self.tolerance, smaller_k=() if self.paper_t else None,
                              harder=() if self.paper_t else None)
        train = enc.retraining.train
        if self.quick and train is not None:
            enc = replace(enc, retraining=replace(enc.retraining, train=replace(train, epochs=max(train.epochs / 8, 0.05))))
        return enc


def baseline_sizes(indices: np.ndarray, codebook: np.ndarray, conv: bool) -> dict[str, int]:
    """Deep Compression sizes of one simplified layer (real bytes, decoded back and checked):
    plain CSR and CSR + Huffman with the published index widths (5 bits FC, 8 bits conv), and
    CSR + Huffman with the best index width for this layer (a stronger baseline)."""
    from weightless.baselines import csr_decode, csr_encode, dc_decode, dc_encode

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


def lossless_alternative(res: Any, enc: EncodeConfig, task: Any, output: str | os.PathLike, opts: RunOptions,
                         dec_errs: np.ndarray) -> dict[str, Any]:
    """The same pipeline from the same simplified model with every recipe layer stored lossless
    (t = 0, no filter), under the same contract: its file bytes and test error, and the paired
    95% CI of the filter file's test error against it (what the filters bought)."""
    from weightless.io import files as api
    from weightless.pipeline.encode import encode_with_retraining
    from weightless.training import per_example

    from ..models import get_model

    lossless = replace(enc, filters=replace(enc.filters, t={r.name: 0 for r in res.layers}))
    alt = encode_with_retraining(res.simplified, task, lossless, contract=res.contract)
    path = str(output).removesuffix(".wl") + ".lossless.wl"
    nbytes = api.save(path, alt.tensors, dense_dtype=opts.dense_dtype, entropy=opts.entropy)
    model = get_model(opts.model)
    model.load_state_dict(api.load(path))
    errs = per_example(model, task, "test")[0]
    return {"output": path, "file_bytes": nbytes, "decoded_test_error": 100.0 * float(errs.mean()),
            "filters_vs_lossless_test": paired_ci(dec_errs, errs)}


def compress_run(opts: RunOptions, output: str | os.PathLike, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole compression and write ``output`` (a ``.wl`` file).

    Returns:
        A JSON-ready report: options, per-layer rows (sizes in real bytes, Deep Compression
        baseline, errors), file size, and the test error of the model decoded from it.

    Raises:
        InputError: invalid options. DataError: MNIST missing. ConstructionError.
    """
    from weightless.io import files as api
    from weightless.pipeline.api import compress
    from ..models import get_model
    from weightless.pipeline.config import CompressConfig
    from weightless.training import per_example
    from .checkpoint import train_dense
    from .mnist import DENSE_TRAINING, PAPER_RECIPES, mnist_task
    from .whole import whole_model_report

    opts.validate()
    enc = opts.encode_config()
    t_all = time.perf_counter()
    task = mnist_task(10_000, 10_000) if opts.quick else mnist_task()
    dense_cfg = replace(DENSE_TRAINING[opts.model], seed=opts.seed, progress=opts.progress, desc="dense")
    recipe = replace(PAPER_RECIPES[(opts.model, opts.pruning)], seed=opts.seed)
    if opts.quick:
        dense_cfg = replace(dense_cfg, epochs=max(1.0, dense_cfg.epochs / 8))
        recipe = recipe.scaled(1 / 8)
    model, dense_seconds, cached = train_dense(opts.model, task.train, dense_cfg, seed=opts.seed, cache_dir=opts.cache_dir)
    dense_errs = per_example(model, task, "test")[0]  # scored once: the figure and the paired CI below
    dense_err = 100.0 * float(dense_errs.mean())
    log(f"dense {opts.model}: test error {dense_err:.2f}% ({'cached' if cached else f'trained in {dense_seconds:.0f}s'})")
    t_enc = time.perf_counter()
    res = compress(model, task, config=CompressConfig(recipe=recipe, encode=enc, progress=opts.progress, **opts.budget()),
                   log=log)
    seconds_encode = time.perf_counter() - t_enc
    metadata: dict[str, Any] = {}  # every byte counts: the JSON report says what the file is
    nbytes = api.save(output, res.tensors, metadata=metadata, dense_dtype=opts.dense_dtype, entropy=opts.entropy)
    # The honest figure: evaluate the model decoded from the file just written.
    t_load = time.perf_counter()
    state = api.load(output)
    seconds_load = time.perf_counter() - t_load
    decoded = get_model(opts.model)
    decoded.load_state_dict(state)
    dec_errs = per_example(decoded, task, "test")[0]
    decoded_err = 100.0 * float(dec_errs.mean())
    ci = paired_ci(dec_errs, per_example(res.simplified.model, task, "test")[0])
    ci_dense = paired_ci(dec_errs, dense_errs)
    whole = whole_model_report(res, output, task, dec_errs)
    rec_bytes = {t["name"]: t["bytes"] for t in whole["tensors"]}  # from the inspect it made
    lossless = lossless_alternative(res, enc, task, output, opts, dec_errs) if opts.compare_lossless else None
    rows = []
    for rep in res.layers:
        tensor = res.tensors[rep.name]
        base = baseline_sizes(res.indices[rep.name], tensor.codebook, conv=len(rep.shape) > 2)
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
        "options": {k: v for k, v in opts.__dict__.items() if k != "encode"},
        "encode_config": repr(enc),
        "output": str(output),
        "file_bytes": nbytes,
        "dense_model_bytes": 4 * n_params,
        "model_compression_factor": round(4 * n_params / nbytes, 2),
        "layers": rows,
        "dense_test_error": dense_err,
        "simplified_test_error": res.simplified_test_error,
        "simplified_val_error": res.simplified_val_error,
        "encoded_val_error": res.val_error,
        "encoded_test_error": res.test_error,
        "decoded_test_error": decoded_err,
        "decoded_vs_simplified_test": ci,
        "decoded_vs_dense_test": ci_dense,
        "every_layer_lossless": lossless,
        "budget": res.budget,
        "validation_disjoint": res.validation_disjoint,
        "whole_model": whole,
        "whole_model_decisions": res.tail,
        "seconds": {
            "dense": round(dense_seconds, 2),  # 0 when loaded from the cache
            "simplify_encode_and_retrain": round(seconds_encode, 2),
            "load_file": round(seconds_load, 3),
            "total": round(time.perf_counter() - t_all, 2),
        },
    }
