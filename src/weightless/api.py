"""Save, load and inspect ``.wl`` files.

``save`` and ``inspect`` need numpy only; ``load`` returns numpy arrays or, when asked (the
default if PyTorch is importable), ``torch.Tensor`` values forming a state_dict that
``model.load_state_dict`` accepts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .container import Record, container_to_bytes, read_container, summarize_container, write_container
from .errors import InputError
from .records import decode_record, dense_record, filter_record

__all__ = ["EncodedLayer", "build_records", "save", "load", "load_arrays", "inspect"]


@dataclass(frozen=True)
class EncodedLayer:
    """A weight tensor encoded by a Bloomier filter: the filter, its codebook and the tensor shape."""

    filter: Any
    codebook: np.ndarray
    shape: tuple[int, ...]


def _as_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().contiguous().numpy()
    return np.asarray(v)


def build_records(
    tensors: Mapping[str, Any], *, dense_dtype: str = "float32", entropy: bool = True
) -> list[Record]:
    """Return the container records of ``tensors`` (name -> array, tensor or :class:`EncodedLayer`),
    in the order given.

    Args:
        dense_dtype: on-disk dtype of float32 tensors stored densely ("float32" or "float16").
        entropy: entropy-code filter tables (falls back to raw where that is not smaller).

    Raises:
        InputError: an unsupported tensor or dtype.
    """
    if dense_dtype not in ("float32", "float16"):
        raise InputError(f"dense dtype must be 'float32' or 'float16', got {dense_dtype!r}")
    records = []
    for name, v in tensors.items():
        if isinstance(v, EncodedLayer):
            records.append(filter_record(name, v.filter, v.codebook, v.shape, entropy=entropy))
        else:
            a = _as_numpy(v)
            stored = dense_dtype if a.dtype == np.float32 else None
            records.append(dense_record(name, a, stored=stored))
    return records


def save(
    path: str | os.PathLike,
    tensors: Mapping[str, Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    dense_dtype: str = "float32",
    entropy: bool = True,
) -> int:
    """Write ``tensors`` (see :func:`build_records`) to a ``.wl`` file atomically.

    Returns:
        The number of bytes written.

    Raises:
        InputError: unsupported tensors or metadata that is not JSON data.
        OSError: the file cannot be written (nothing is left behind).
    """
    records = build_records(tensors, dense_dtype=dense_dtype, entropy=entropy)
    return write_container(path, records, dict(metadata or {}))


def to_bytes(tensors: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None, **kw: Any) -> bytes:
    """Return the bytes :func:`save` would write."""
    return container_to_bytes(build_records(tensors, **kw), dict(metadata or {}))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.wl`` file and decode every tensor to a numpy array (numpy only).

    Raises:
        FormatError: the file is corrupt, truncated or of an unsupported version.
    """
    c = read_container(path)
    return {r.name: decode_record(r) for r in c.records}


def load(path: str | os.PathLike, *, framework: str = "torch", device: Any = None) -> dict[str, Any]:
    """Read a ``.wl`` file and return ``{name: tensor}``.

    Args:
        framework: "torch" (a state_dict of ``torch.Tensor``) or "numpy".
        device: torch only: decode straight onto this device ("cpu", "cuda", ...) with
            :func:`weightless.torch_decode.load_tensors` (same weights, bit for bit).

    Raises:
        FormatError: the file is corrupt, truncated or of an unsupported version.
        InputError: unknown framework, or a device with framework "numpy".
    """
    if framework not in ("torch", "numpy"):
        raise InputError(f"framework must be 'torch' or 'numpy', got {framework!r}")
    if device is not None:
        if framework != "torch":
            raise InputError("device= needs framework='torch'")
        from .torch_decode import load_tensors

        return load_tensors(path, device=device)
    arrays = load_arrays(path)
    if framework == "numpy":
        return arrays
    import torch

    # decoded arrays are fresh, owned and writeable: share their memory instead of copying
    return {k: torch.from_numpy(v if v.flags.writeable else np.array(v, copy=True)) for k, v in arrays.items()}


def inspect(path: str | os.PathLike) -> dict[str, Any]:
    """Return a JSON-ready summary of a ``.wl`` file (version, metadata, records, sizes).

    Raises:
        FormatError: the file is corrupt.
    """
    return summarize_container(read_container(path))
