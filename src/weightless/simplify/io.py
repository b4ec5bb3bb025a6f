"""Save and load a simplification result: the model state (safetensors), the per-layer indices
and codebooks (``layers.npz``) and a JSON summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import write_atomic
from ..errors import DataError

__all__ = ["save_simplified", "load_simplified_layers"]


def save_simplified(result: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write ``result`` (a SimplifyResult) into ``out_dir``; return the paths written.

    Files: ``model.safetensors``, ``layers.npz`` (``<name>.indices`` int16 and
    ``<name>.codebook`` float32 per layer) and ``summary.json``.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"model": out / "model.safetensors", "layers": out / "layers.npz", "summary": out / "summary.json"}
    save_file({k: v.detach().contiguous() for k, v in result.model.state_dict().items()}, str(paths["model"]))
    arrays: dict[str, np.ndarray] = {}
    for name, layer in result.layers.items():
        arrays[f"{name}.indices"] = layer.indices
        arrays[f"{name}.codebook"] = layer.codebook
    with open(paths["layers"], "wb") as f:
        np.savez(f, **arrays)
    write_atomic(paths["summary"], json.dumps(result.summary(), indent=2) + "\n")
    return paths


def load_simplified_layers(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read ``layers.npz``: layer name -> (indices int16, codebook float32).

    Raises:
        DataError: the file is unreadable or an entry is missing/ill-typed.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            items = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, arr in items.items():
        if key.endswith(".indices"):
            name = key[: -len(".indices")]
            cb = items.get(f"{name}.codebook")
            if cb is None or arr.dtype != np.int16 or cb.dtype != np.float32:
                raise DataError(f"{path}: layer {name} lacks a float32 codebook or int16 indices")
            out[name] = (arr, cb)
    return out
