"""Top-level conveniences: encode an already simplified checkpoint without retraining and read
checkpoints (:func:`weightless.compress`, the whole pipeline, is in :mod:`weightless.pipeline.api`).

:func:`encode_tensors` and :func:`read_checkpoint` (for safetensors and ``layers.npz``) need
numpy only; ``.pt`` checkpoints and :func:`compress` need PyTorch.

Which tensors :func:`encode_tensors` encodes with a Bloomier filter by default
(:func:`default_filter_layers`): every floating tensor with at least 2 dimensions whose number
of distinct nonzero values is at most 256 (:data:`AUTO_MAX_K`) and whose nonzero fraction is at
most 50% (:data:`AUTO_MAX_NONZERO`). The codebook of such a tensor is its sorted distinct
nonzero values (k of them), so the filter layer decodes to exactly the input values at the
nonzero positions, plus the filter's false positives (positions that were zero and decode to
some codebook value: the paper's lossy part, about ``2**-t`` of the zeros). Its default
``t`` is ``ceil(log2 k) + 4`` (:func:`default_t`), capped at 16.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .io.files import EncodedLayer, tensor_to_numpy
from .errors import DataError, InputError

if TYPE_CHECKING:  # pragma: no cover - the report type lives with the pipeline (imported when encoding)
    from .pipeline.encode import LayerReport

__all__ = [
    "AUTO_MAX_K",
    "AUTO_MAX_NONZERO",
    "default_t",
    "default_filter_layers",
    "EncodedTensors",
    "encode_tensors",
    "read_checkpoint",
]

#: Largest number of distinct nonzero values of a tensor chosen for a filter by default.
AUTO_MAX_K = 256
#: Largest nonzero fraction of a tensor chosen for a filter by default.
AUTO_MAX_NONZERO = 0.5
_T_MAX = 16


def default_t(k: int) -> int:
    """Return the default bits per cell for ``k`` values: ``ceil(log2 k) + 4``, at most 16.

    Raises:
        InputError: ``k`` < 1 or too large for a 16-bit cell.
    """
    if k < 1 or k >= 1 << _T_MAX:
        raise InputError(f"k must be in [1, {(1 << _T_MAX) - 1}], got {k}")
    return min(max(int(math.ceil(math.log2(k))), 0) + 4, _T_MAX)


def _as_numpy(name: str, v: Any) -> tuple[np.ndarray, str]:
    """``(array, dtype)``; a bfloat16 tensor as its float32 values (exact) with dtype "bfloat16"."""
    from .io.bfloat16 import bfloat16_to_float32

    a, dtype = tensor_to_numpy(name, v)
    return (bfloat16_to_float32(a) if dtype == "bfloat16" else a), dtype


def _distinct_nonzero(a: np.ndarray, limit: int | None) -> np.ndarray | None:
    """Sorted distinct nonzero values of ``a`` (None if more than ``limit``)."""
    nz = a[a != 0]
    if nz.size == 0:
        return np.zeros(0, dtype=a.dtype)
    u = np.unique(nz)
    if limit is not None and u.size > limit:
        return None
    return u


def default_filter_layers(tensors: Mapping[str, Any]) -> list[str]:
    """Return the names (in input order) of the tensors encoded with a filter by default: float
    tensors with >= 2 dims, 1..256 distinct nonzero values, nonzero fraction <= 50%."""
    out = []
    for name, v in tensors.items():
        a, _ = _as_numpy(str(name), v)
        if a.ndim < 2 or a.dtype.kind != "f" or a.size == 0:
            continue
        nnz = int(np.count_nonzero(a))
        if nnz == 0 or nnz > AUTO_MAX_NONZERO * a.size:
            continue
        u = _distinct_nonzero(a, AUTO_MAX_K)
        if u is not None and u.size >= 1 and np.all(np.isfinite(u)):
            out.append(name)
    return out


@dataclass
class EncodedTensors:
    """Result of :func:`encode_tensors`: ``tensors`` is what :func:`weightless.save` takes
    (name -> numpy array, :class:`EncodedLayer` decoding to the tensor's dtype, or for a
    bfloat16 tensor left dense the tensor as given); ``layers`` reports the filter layers with
    the pipeline's report type (:class:`weightless.pipeline.encode.LayerReport`): no accuracy
    rule ran, so its error fields are None, ``t_within_tolerance`` is True and ``auto_t`` says
    whether ``t`` was :func:`default_t`."""

    tensors: dict[str, Any]
    layers: list[LayerReport] = field(default_factory=list)


def _indices_of(a: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    idx = np.full(a.shape, -1, dtype=np.int64)
    nz = a != 0
    idx[nz] = np.searchsorted(codebook, a[nz])
    return idx


def encode_tensors(
    tensors: Mapping[str, Any],
    *,
    layers: Sequence[str] | None = None,
    t: int | Mapping[str, int] | None = None,
    clustered: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    construction: str = "paper",
    c: float | None = None,
    shards: int = 1,
    seed: int = 0,
) -> EncodedTensors:
    """Encode already simplified tensors with Bloomier filters, without retraining.

    Args:
        tensors: name -> array or torch tensor (the whole state_dict; tensors not encoded with
            a filter are passed through as numpy arrays).
        layers: names to encode with a filter (None: :func:`default_filter_layers`, plus every
            name of ``clustered``).
        t: bits per cell: one int for every filter layer, or name -> int (others get
            :func:`default_t`), or None (:func:`default_t` everywhere).
        clustered: optional name -> (indices int, -1 = zero; codebook float32), e.g. from the
            ``layers.npz`` of ``weightless simplify --out``; used instead of deriving the
            codebook from the distinct values.
        construction, c, shards: filter construction, cells per key, shards.
        seed: base seed; each layer's filter seed is
            :func:`weightless.pipeline.encode.layer_seed` of it and the layer name.

    Returns:
        An :class:`EncodedTensors`. Deterministic: same inputs -> same filters.

    Raises:
        InputError: unknown layer names, a named layer with no nonzero value, more distinct
            values than a 16-bit cell holds, non-finite values, t out of range or too small
            (t must exceed ceil(log2 k)), or a ``t`` for a layer that is not filter-encoded.
        ConstructionError: a filter could not be built.
    """
    originals = {str(n): v for n, v in tensors.items()}
    converted = {n: _as_numpy(n, v) for n, v in originals.items()}
    arrays = {n: a for n, (a, _) in converted.items()}
    clustered = dict(clustered or {})
    chosen = _chosen_layers(arrays, layers, clustered)
    _check_t(t, chosen)
    out: dict[str, Any] = {}
    reports: list[LayerReport] = []
    chosen_set = set(chosen)
    for name, a in arrays.items():
        dtype = converted[name][1]
        if name not in chosen_set:
            out[name] = originals[name] if dtype == "bfloat16" else a  # save() keeps bfloat16
            continue
        idx, cb = _layer_clusters(name, a, clustered)
        tl, auto = _layer_t(name, int(cb.size), t)
        out[name], rep = _encode_layer(name, a, dtype, idx, cb, tl, auto, construction=construction, c=c,
                                       shards=shards, seed=seed)
        reports.append(rep)
    return EncodedTensors(out, reports)


def _chosen_layers(arrays: Mapping[str, np.ndarray], layers: Sequence[str] | None,
                   clustered: Mapping[str, Any]) -> list[str]:
    """The names to filter-encode, in input order for the default choice (:func:`encode_tensors`)."""
    unknown = [n for n in clustered if n not in arrays]
    if unknown:
        raise InputError(f"clustered layers {unknown} are not among the tensors")
    if layers is None:
        chosen = [n for n in default_filter_layers(arrays) if n not in clustered] + list(clustered)
        return [n for n in arrays if n in set(chosen)]
    chosen = [str(n) for n in layers]
    missing = [n for n in chosen if n not in arrays]
    if missing:
        raise InputError(f"--layers names {missing}, which the checkpoint does not hold; it has {list(arrays)}")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"layer names repeat: {chosen}")
    return chosen


def _check_t(t: int | Mapping[str, int] | None, chosen: list[str]) -> None:
    """Check the form of :func:`encode_tensors`'s ``t`` (its range is checked per layer)."""
    if isinstance(t, Mapping):
        extra = [n for n in t if n not in chosen]
        if extra:
            raise InputError(f"t given for {extra}, which are not filter-encoded; filter layers: {chosen}")
    elif t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer))):
        raise InputError(f"t must be an integer, a mapping name -> integer, or None; got {t!r}")


def _layer_clusters(name: str, a: np.ndarray, clustered: Mapping[str, tuple[np.ndarray, np.ndarray]]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, codebook)`` of one filter layer: given in ``clustered``, else its sorted
    distinct nonzero float32 values. Raises InputError for a layer that cannot be encoded."""
    if name in clustered:
        idx, cb = clustered[name]
        idx = np.asarray(idx)
        cb = np.asarray(cb, dtype=np.float32).ravel()
        if idx.shape != a.shape:
            raise InputError(f"{name}: indices of shape {idx.shape}, tensor of shape {a.shape}")
    else:
        if a.dtype.kind != "f":
            raise InputError(f"{name}: only float tensors can be filter-encoded, got {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name}: holds non-finite values; cannot filter-encode it")
        a32 = a.astype(np.float32, copy=False)  # codebooks are float32; decoded in a's dtype
        found = _distinct_nonzero(a32, (1 << _T_MAX) - 1)
        if found is None:
            raise InputError(f"{name}: more than {(1 << _T_MAX) - 1} distinct nonzero values; cluster it first")
        cb = found
        idx = _indices_of(a32, cb)
    if cb.size == 0:
        raise InputError(f"{name}: has no nonzero value; store it dense (leave it out of --layers)")
    return idx, cb


def _layer_t(name: str, k: int, t: int | Mapping[str, int] | None) -> tuple[int, bool]:
    """``(t, whether it is the default)`` of one filter layer with ``k`` values."""
    given = t.get(name) if isinstance(t, Mapping) else t
    tl = default_t(k) if given is None else int(given)
    need = max(int(math.ceil(math.log2(k))), 0) + 1
    if not need <= tl <= _T_MAX:
        raise InputError(f"{name}: t = {tl} out of range for k = {k}; need {need} <= t <= {_T_MAX}")
    return tl, given is None


def _encode_layer(name: str, a: np.ndarray, dtype: str, idx: np.ndarray, cb: np.ndarray, tl: int, auto: bool, *,
                  construction: str, c: float | None, shards: int, seed: int) -> tuple[EncodedLayer, LayerReport]:
    """Build the filter of one layer; return its :class:`EncodedLayer` and report."""
    from .filters import build
    from .io.records import FILTER_DTYPES
    from .pipeline.encode import LayerReport
    from .pipeline.steps import layer_seed

    k = int(cb.size)
    flat = idx.reshape(-1)
    keys = np.flatnonzero(flat >= 0).astype(np.int64)
    values = flat[keys].astype(np.int64)
    t0 = time.perf_counter()
    f = build(keys, values, k=k, t=tl, size=int(flat.size), seed=layer_seed(seed, name),
              construction=construction, c=c, shards=shards)
    secs = time.perf_counter() - t0
    shape = tuple(int(s) for s in a.shape)
    layer = EncodedLayer(f, cb, shape, dtype if dtype in FILTER_DTYPES else "float32")
    report = LayerReport(
        name=name, paper_name=name, shape=shape, nonzero=int(keys.size), k=k, t=tl, auto_t=auto,
        t_within_tolerance=True, construction=f.construction, seed=int(f.seed), m=int(f.m),
        false_positives=int(f.count_false_positives()), filter_bytes=int(f.nbytes), build_seconds=secs,
        val_error_encoded=None, val_error_retrained=None)
    return layer, report


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("reading .safetensors needs the 'safetensors' package") from exc
    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        first = exc
    try:  # numpy has no bfloat16: read such files through torch when it is installed
        import torch
        from safetensors.torch import load_file as load_torch
    except ImportError:
        raise DataError(f"cannot read {path} as safetensors: {msg}") from first
    try:
        tensors = load_torch(str(path))
    except Exception:
        raise DataError(f"cannot read {path} as safetensors: {msg}") from first
    return {n: (v.float() if v.dtype == torch.bfloat16 else v).contiguous().numpy() for n, v in tensors.items()}


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, ...)
        raise DataError(
            f"cannot read {path} as a torch state_dict with weights_only=True ({type(exc).__name__}); expected "
            "a file written by torch.save(model.state_dict(), path) holding only tensors"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path} does not hold a state_dict (a dict of name -> tensor)")
    out = {}
    for n, v in obj.items():
        if v.dtype == torch.bfloat16:
            v = v.float()
        out[str(n)] = v.detach().cpu().contiguous().numpy()
    return out


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Read a checkpoint: ``.safetensors``, a torch state_dict file (``.pt``/``.pth``/``.bin``,
    loaded with ``weights_only=True``), or a folder written by ``weightless simplify --out``
    (``model.safetensors`` + ``layers.npz``). bfloat16 tensors are widened to float32 (this
    needs PyTorch for safetensors files).

    Returns:
        ``(tensors, clustered)``: name -> numpy array, and for a simplify folder the
        name -> (indices, codebook) of its simplified layers (else empty).

    Raises:
        FileNotFoundError: no such file or folder.
        DataError: the file cannot be parsed.
        InputError: an unknown file kind.
    """
    p = Path(path)
    if p.is_dir():
        model, npz = p / "model.safetensors", p / "layers.npz"
        if not model.is_file():
            raise InputError(f"folder {p} has no model.safetensors; expected the output of 'weightless simplify --out'")
        tensors = _read_safetensors(model)
        clustered: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if npz.is_file():
            from .simplify.io import load_simplified_layers

            clustered = load_simplified_layers(npz)
            for n, (idx, _cb) in clustered.items():
                a = tensors.get(n)
                if a is None or a.shape != idx.shape:
                    raise DataError(f"{npz}: layer {n} does not match a tensor of {model}")
        return tensors, clustered
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.suffix == ".safetensors":
        return _read_safetensors(p), {}
    if p.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return _read_torch(p), {}
    raise InputError(f"{p}: unknown checkpoint kind {p.suffix!r}; expected .safetensors, .pt/.pth/.bin, "
                     "or a folder from 'weightless simplify --out'")
