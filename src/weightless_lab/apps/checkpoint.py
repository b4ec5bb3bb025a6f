"""Dense-model checkpoints in a user cache folder (default ``./checkpoints``, git-ignored).

A checkpoint's file name carries the model name, seed and a hash of the training config, the
thread count it trains with, the trainer version and torch's CPU capability, so a changed config never loads a stale
model. Files are safetensors state dicts written to a temp file and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from weightless._atomic import atomic_target
from weightless.errors import DataError
from weightless.training.loop import TrainConfig, train
from weightless.training.threads import effective_threads

__all__ = ["DEFAULT_CACHE_DIR", "checkpoint_path", "train_dense"]

DEFAULT_CACHE_DIR = Path(os.environ.get("WEIGHTLESS_CACHE", "checkpoints"))
_IGNORED = ("progress", "desc", "threads")
#: Changed whenever :func:`train` computes other floats from the same config. 2: fused
#: optimisers and one-channel convolutions channels-last (2026-12-07).
_TRAINER = 2


def _key(model_name: str, seed: int, cfg: TrainConfig, n_train: int) -> str:
    # the thread count changes the floats a training run computes (1 and 2 threads trained
    # different LeNet5 models), so it is part of the key: a cache and a fresh clone agree
    d = {k: v for k, v in asdict(cfg).items() if k not in _IGNORED}
    d["threads"] = effective_threads(cfg.threads)
    d["trainer"] = _TRAINER
    # so does the vector instruction set torch's kernels use: on one machine LeNet-300-100 trained
    # to 1.53% test error with AVX2 kernels and to 1.59% with AVX-512 (ATEN_CPU_CAPABILITY)
    import torch

    d["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    blob = json.dumps({"model": model_name, "seed": seed, "cfg": d, "n_train": n_train}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def checkpoint_path(cache_dir: str | Path, model_name: str, seed: int, cfg: TrainConfig, n_train: int) -> Path:
    """Return the file a dense checkpoint for these settings lives in."""
    return Path(cache_dir) / f"{model_name}-dense-seed{seed}-{_key(model_name, seed, cfg, n_train)}.safetensors"


def train_dense(
    model_name: str,
    data: Any,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> tuple[Any, float, bool]:
    """Return a dense model trained with ``cfg`` from seed ``seed`` (loaded from cache if there).

    Args:
        cache_dir: folder of cached checkpoints; None disables the cache.

    Returns:
        ``(model, seconds, from_cache)``: seconds spent training (0 if loaded).

    Raises:
        DataError: a cached checkpoint exists but cannot be read.
    """
    from safetensors.torch import load_file, save_file

    from ..models import get_model

    model = get_model(model_name, seed)
    n_train = len(data.train) if hasattr(data, "train") else len(data)
    path = checkpoint_path(cache_dir, model_name, seed, cfg, n_train) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            model.load_state_dict(load_file(str(path)))
        except Exception as exc:  # corrupt cache file
            raise DataError(f"cannot read checkpoint {path} ({exc}); delete it to retrain") from exc
        model.eval()
        return model, 0.0, True
    t0 = time.perf_counter()
    train(model, data, cfg)
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as (tmp, _):
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
    return model, seconds, False
