"""The models the experiments start from: MNIST (:func:`load_data`), the dense model from the
checkpoint cache (:func:`dense_model`) and the simplified model of a Table 1 recipe
(:func:`prepare_simplified`) from a folder cache of
:class:`~weightless.simplify.SimplifyResult`: the weights as safetensors, the layers' indices
and codebooks as ``.npz``, the rest as JSON."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from weightless.errors import InputError

from .common import Log, ReproConfig, _jsonable

__all__ = ["load_data", "dense_model", "prepare_simplified", "load_simplified", "save_simplified"]


def load_data(quick: bool) -> Any:
    """MNIST (train 50k / val 10k / test 10k), or for ``quick`` the first 10k training and
    2k validation and test images."""
    from ..data.mnist import load_mnist

    data = load_mnist()
    return data.subset(10_000, 2_000) if quick else data


def dense_model(model: str, data: Any, cfg: ReproConfig, log: Log) -> tuple[Any, dict[str, Any]]:
    """The trained dense model (from the checkpoint cache when there). Returns ``(model, info)``."""
    from weightless.training import evaluate
    from ..apps.checkpoint import train_dense

    dcfg = _dense_cfg(model, cfg)
    net, secs, cached = train_dense(model, data, dcfg, seed=cfg.seed, cache_dir=cfg.cache_dir)
    err = evaluate(net, data.test)
    log(f"dense {model}: test error {err:.2f}% ({'cached' if cached else f'trained in {secs:.0f} s'})")
    return net, {"dense_test_error": err, "dense_from_cache": cached, "dense_epochs": dcfg.epochs,
                 "seconds_dense": round(secs, 2)}


def _dense_cfg(model: str, cfg: ReproConfig) -> Any:
    from ..apps.mnist import DENSE_TRAINING

    dcfg = replace(DENSE_TRAINING[model], seed=cfg.seed, progress=cfg.progress, desc=f"dense {model}")
    return replace(dcfg, epochs=max(1.0, dcfg.epochs / 8)) if cfg.quick else dcfg


def _recipe(model: str, pruning: str, cfg: ReproConfig) -> Any:
    from ..apps.mnist import PAPER_RECIPES

    return replace(PAPER_RECIPES[(model, pruning)], seed=cfg.seed).scaled(cfg.simplify_scale)


def _simplified_key(model: str, pruning: str, cfg: ReproConfig, data: Any) -> str:
    from ..apps.checkpoint import checkpoint_path

    # the dense checkpoint's name: its config, thread count and trainer version
    dense = checkpoint_path("", model, cfg.seed, _dense_cfg(model, cfg), len(data.train)).name
    blob = json.dumps(
        {"model": model, "pruning": pruning, "seed": cfg.seed, "quick": cfg.quick, "n_train": len(data.train),
         "n_val": len(data.val), "n_test": len(data.test),
         "recipe": repr(_recipe(model, pruning, cfg)), "dense": dense, "v": 2},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def prepare_simplified(model: str, pruning: str, cfg: ReproConfig, data: Any, log: Log) -> tuple[Any, dict[str, Any]]:
    """Return ``(simplify_result, info)`` for the paper's Table 1 recipe (epochs scaled by
    ``cfg.simplify_scale``), from ``<cache_dir>/simplified/`` when a run with the same settings
    saved it, else simplified now (and saved).

    Raises:
        DataError: MNIST missing. InputError: unknown model or pruning.
    """
    from ..models import get_model
    from ..apps.mnist import PAPER_TABLE1

    if (model, pruning) not in PAPER_TABLE1:
        raise InputError(f"no paper recipe for model {model!r} with pruning {pruning!r}")
    recipe = _recipe(model, pruning, cfg)
    key = _simplified_key(model, pruning, cfg, data)
    cdir = None if cfg.cache_dir is None else Path(cfg.cache_dir) / "simplified" / f"{model}-{pruning}-{key}"
    if cdir is not None and (cdir / "meta.json").exists():
        try:
            res, meta = load_simplified(cdir, get_model(model), recipe, data)
            log(f"simplified {model}/{pruning}: loaded from {cdir} (test error {res.test_error:.2f}%)")
            return res, {**meta["info"], "simplified_from_cache": True}
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            log(f"simplified cache {cdir} unreadable ({exc}); simplifying again")
    from weightless.simplify import simplify

    net, info = dense_model(model, data, cfg, log)
    t0 = time.perf_counter()
    res = simplify(net, data, recipe, progress=cfg.progress)
    info["seconds_simplify"] = round(time.perf_counter() - t0, 2)
    log(
        f"simplified {model}/{pruning} in {info['seconds_simplify']:.0f} s: test error {res.test_error:.2f}%, "
        + ", ".join(f"{l.paper_name} {100 * l.nonzero_fraction:.2f}% k={l.k}" for l in res.layers.values())
    )
    if cdir is not None:
        save_simplified(cdir, res, info)
    return res, {**info, "simplified_from_cache": False}


def load_simplified(cdir: Path, net: Any, recipe: Any, data: Any) -> tuple[Any, dict[str, Any]]:
    """The :class:`~weightless.simplify.SimplifyResult` that :func:`save_simplified` wrote in
    ``cdir``, its weights loaded into ``net`` (errors measured again on ``data``), and the saved
    metadata.

    Raises:
        OSError, KeyError, ValueError, RuntimeError: a missing or unreadable cache entry.
    """
    from safetensors.torch import load_file

    from weightless.simplify.recipe import LayerResult, SimplifyResult
    from weightless.training import evaluate

    meta = json.loads((cdir / "meta.json").read_text())
    net.load_state_dict(load_file(str(cdir / "model.safetensors")))
    arrays = np.load(cdir / "layers.npz")
    layers = {}
    for name, lm in meta["layers"].items():
        idx = arrays[f"{name}/indices"]
        layers[name] = LayerResult(
            name=name, paper_name=lm["paper_name"], method=lm["method"], k=lm["k"], init=lm["init"],
            indices=idx, codebook=arrays[f"{name}/codebook"], mask=idx >= 0, nonzero_fraction=float((idx >= 0).mean()),
        )
    res = SimplifyResult(
        model=net, recipe=recipe, layers=layers, test_error=evaluate(net, data.test), val_error=evaluate(net, data.val),
        dense_test_error=meta["dense_test_error"], pruned_test_error=meta["pruned_test_error"], seconds=meta["seconds"],
    )
    return res, meta


def save_simplified(cdir: Path, res: Any, info: dict[str, Any]) -> None:
    """Save a :class:`~weightless.simplify.SimplifyResult` (weights, layers, errors, ``info``)
    into the folder ``cdir``, written aside and renamed into place (a run that saved it first
    wins)."""
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cdir.parent if cdir.parent.exists() else _mkdir(cdir.parent)))
    save_file({k: v.detach().contiguous() for k, v in res.model.state_dict().items()}, str(tmp / "model.safetensors"))
    np.savez(tmp / "layers.npz", **{f"{n}/indices": l.indices for n, l in res.layers.items()},
             **{f"{n}/codebook": l.codebook for n, l in res.layers.items()})
    meta = {
        "layers": {n: {"paper_name": l.paper_name, "method": l.method, "k": l.k, "init": l.init}
                   for n, l in res.layers.items()},
        "dense_test_error": res.dense_test_error, "pruned_test_error": res.pruned_test_error,
        "seconds": res.seconds, "info": info,
    }
    (tmp / "meta.json").write_text(json.dumps(_jsonable(meta)))
    try:
        os.replace(tmp, cdir)
    except OSError:  # another run saved it first
        pass



def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
