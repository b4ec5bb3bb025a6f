"""A folder cache of simplified models (:class:`~weightless.simplify.SimplifyResult`): the
weights as safetensors, the layers' indices and codebooks as ``.npz``, the rest as JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_simplified", "save_simplified"]


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
    from .common import _jsonable

    (tmp / "meta.json").write_text(json.dumps(_jsonable(meta)))
    try:
        os.replace(tmp, cdir)
    except OSError:  # another run saved it first
        pass



def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
