"""Save, load and inspect ``.wl`` files.

``save`` and ``inspect`` need numpy only; ``load`` returns numpy arrays or, when asked (the
default if PyTorch is importable), ``torch.Tensor`` values forming a state_dict that
``model.load_state_dict`` accepts.

Round trips keep every tensor's dtype and shape: 0-d and empty tensors, float64/32/16,
bfloat16, signed and unsigned integers, bool (e.g. BatchNorm's 0-d int64
``num_batches_tracked``). Dense tensors come back bit for bit; a filter layer comes back in the
dtype it was encoded from (see :class:`EncodedLayer`). numpy has no bfloat16, so
:func:`load_arrays` returns bfloat16 tensors as float32 arrays holding the same values exactly
(the record's dtype, in :func:`inspect`, still says bfloat16); :func:`load` with torch returns
``torch.bfloat16`` tensors, bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..container import Record, container_to_bytes, read_container, summarize_container, write_container
from ..errors import InputError
from .bfloat16 import bfloat16_to_float32, float32_to_bfloat16
from .clustered import Clustered, as_clustered, clustered_candidates, smallest_record
from .limits import Limits, check_records
from .records import DTYPES, decode_record, dense_record, filter_record, verify_records

__all__ = ["EncodedLayer", "build_records", "save", "load", "load_arrays", "inspect"]


@dataclass(frozen=True)
class EncodedLayer:
    """A weight tensor encoded by a Bloomier filter: the filter, its codebook, the tensor shape
    and the dtype it decodes to (the encoded tensor's: float32, float16, bfloat16 or float64;
    the codebook is rounded to it)."""

    filter: Any
    codebook: np.ndarray
    shape: tuple[int, ...]
    dtype: str = "float32"


def tensor_to_numpy(name: str, v: Any) -> tuple[np.ndarray, str]:
    """Return ``(array, dtype)`` of a numpy array, torch tensor or array-like ``v``: ``dtype`` is
    the tensor's dtype name; for bfloat16 (torch, or numpy via ml_dtypes) ``array`` holds the
    raw 16-bit words as uint16 and ``dtype`` is ``"bfloat16"``. The shape is kept (0-d too).

    Raises:
        InputError: a torch tensor numpy cannot hold (e.g. float8, sparse, quantized), named.
    """
    if hasattr(v, "detach"):  # a torch tensor
        import torch

        t = v.detach()
        try:
            t = t.cpu().contiguous()
            if t.dtype == torch.bfloat16:
                return t.view(torch.int16).numpy().view(np.uint16), "bfloat16"
            a = t.numpy()
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            raise InputError(f"tensor {name!r}: torch dtype {v.dtype} (layout {v.layout}) is not supported "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                             f"expected a dense tensor of one of {DTYPES}") from None
    else:
        a = np.asarray(v)
    if a.dtype.name == "bfloat16" and a.dtype.itemsize == 2:  # ml_dtypes' numpy bfloat16
        return a.view(np.uint16), "bfloat16"
    return a, a.dtype.name


def build_records(
    tensors: Mapping[str, Any], *, dense_dtype: str = "float32", entropy: bool = True, compact: bool = True
) -> list[Record]:
    """Return the container records of ``tensors`` (name -> array, tensor,
    :class:`EncodedLayer` or :class:`~weightless.io.clustered.Clustered`), in the order given.

    Args:
        dense_dtype: on-disk dtype of float32 tensors stored densely ("float32" or "float16");
            tensors of other dtypes are stored as they are.
        entropy: entropy-code filter tables (falls back to raw where that is not smaller).
        compact: store each tensor that is not a filter layer in its smallest *lossless*
            encoding: a :class:`Clustered` value, or a float tensor with at most 256 distinct
            nonzero values (a pruned or clustered one), is written as whichever of "sparse",
            "indexed" and "dense" is shortest (bit for bit the same tensor either way).
            False: every such tensor is "dense" (a Clustered one at its values).

    Raises:
        InputError: an unsupported tensor or dtype (the message names the tensor).
    """
    if dense_dtype not in ("float32", "float16"):
        raise InputError(f"dense dtype must be 'float32' or 'float16', got {dense_dtype!r}")
    records = []
    for name, v in tensors.items():
        if isinstance(v, EncodedLayer):
            records.append(filter_record(name, v.filter, v.codebook, v.shape, entropy=entropy, dtype=v.dtype))
            continue
        if isinstance(v, Clustered):
            values = v.values()
            words = v.dtype == "bfloat16"
            dense = dense_record(name, float32_to_bfloat16(values) if words else values.astype(v.dtype),
                                 dtype=v.dtype if words else None)
            cands = [dense, *clustered_candidates(name, v)]
            with np.errstate(over="ignore"):
                if v.dtype == "float32" and np.array_equal(values.astype(np.float16).astype(np.float64), values):
                    cands.append(dense_record(name, values.astype(np.float32), stored="float16"))  # exact
            records.append(smallest_record(name, cands) if compact else dense)
            continue
        a, dtype = tensor_to_numpy(name, v)
        stored = dense_dtype if dtype == "float32" else None
        dense = dense_record(name, a, stored=stored, dtype=dtype)
        c = None
        if compact and dense.params["stored"] == dtype:
            c = as_clustered(bfloat16_to_float32(a) if dtype == "bfloat16" else a, dtype)
        records.append(dense if c is None else smallest_record(name, [dense, *clustered_candidates(name, c)]))
    return records


def save(
    path: str | os.PathLike,
    tensors: Mapping[str, Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    dense_dtype: str = "float32",
    entropy: bool = True,
    compact: bool = True,
) -> int:
    """Write ``tensors`` (see :func:`build_records`) to a ``.wl`` file atomically.

    Returns:
        The number of bytes written.

    Raises:
        InputError: unsupported tensors or metadata that is not JSON data.
        OSError: the file cannot be written (nothing is left behind).

    Warns:
        UserWarning: readers with the default :class:`Limits` would refuse the file (it is
            written all the same; see :func:`warn_if_refused`).
    """
    records = build_records(tensors, dense_dtype=dense_dtype, entropy=entropy, compact=compact)
    warn_if_refused(records)
    return write_container(path, records, dict(metadata or {}))


def to_bytes(tensors: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None, **kw: Any) -> bytes:
    """Return the bytes :func:`save` would write."""
    records = build_records(tensors, **kw)
    warn_if_refused(records)
    return container_to_bytes(records, dict(metadata or {}))


def warn_if_refused(records: list[Record]) -> None:
    """Warn (``UserWarning``) when readers with the default :class:`Limits` would refuse these
    records, e.g. a file of large all-zero tensors (beyond ``max_expansion``); the file is
    still written, and a reader that trusts it passes larger limits."""
    import warnings

    from ..errors import FormatError

    try:
        check_records(records)
    except FormatError as exc:
        warnings.warn(f"weightless: readers with the default limits will refuse this file: {exc}",
                      UserWarning, stacklevel=3)


def load_arrays(path: str | os.PathLike, *, limits: Limits | None = None) -> dict[str, np.ndarray]:
    """Read a ``.wl`` file and decode every tensor to a numpy array (numpy only).

    Args:
        limits: caps on decoded sizes (:class:`weightless.Limits`; None: the documented
            defaults), checked for the whole file before anything is decoded.

    Returns:
        name -> array of the tensor's shape and dtype, except bfloat16 tensors, which come
        back as float32 arrays of the same values (numpy has no bfloat16).

    Raises:
        LimitError: the file declares more than ``limits`` allow (nothing was decoded).
        FormatError: the file is corrupt, truncated or of an unsupported version.
    """
    c = read_container(path)
    check_records(c.records, limits)
    return {r.name: decode_record(r, limits) for r in c.records}


def load(path: str | os.PathLike, *, framework: str = "torch", limits: Limits | None = None,
         device: Any = None) -> dict[str, Any]:
    """Read a ``.wl`` file and return ``{name: tensor}``.

    Args:
        framework: "torch" (a state_dict of ``torch.Tensor`` of the saved dtypes and shapes,
            bfloat16 included) or "numpy" (as :func:`load_arrays`).
        limits: caps on decoded sizes, see :func:`load_arrays`.
        device: torch only: decode straight onto this device ("cpu", "cuda", ...) with
            :func:`weightless.io.torch_decode.load_tensors` (same weights, bit for bit).

    Raises:
        LimitError: the file declares more than ``limits`` allow.
        FormatError: the file is corrupt, truncated or of an unsupported version.
        InputError: unknown framework, or a device with framework "numpy".
    """
    if framework not in ("torch", "numpy"):
        raise InputError(f"framework must be 'torch' or 'numpy', got {framework!r}")
    if device is not None:
        if framework != "torch":
            raise InputError("device= needs framework='torch'")
        from .torch_decode import load_tensors

        return load_tensors(path, device=device, limits=limits)
    if framework == "numpy":
        return load_arrays(path, limits=limits)
    c = read_container(path)
    check_records(c.records, limits)
    from .torch_decode import record_tensor

    return {r.name: record_tensor(r, limits) for r in c.records}


def inspect(
    path: str | os.PathLike, *, decode: bool = True, limits: Limits | None = None, full_params: bool = False
) -> dict[str, Any]:
    """Return a JSON-ready summary of a ``.wl`` file (version, metadata, records, sizes).

    Args:
        decode: also decode every record's payload (filters are parsed and checked against
            their params, not expanded), so a corrupt payload raises instead of being listed;
            each filter record then also lists its filter's parameters under ``"filter"``.
        limits: caps checked before decoding (see :func:`load_arrays`).
        full_params: list every record's params in full.

    Raises:
        LimitError: ``decode`` and the file exceeds ``limits``.
        FormatError: the file (or, with ``decode``, a payload) is corrupt.
    """
    c = read_container(path)
    if decode:
        verify_records(c.records, limits)
    out = summarize_container(c, full_params=full_params)
    if decode:  # a filter's parameters live in its payload: show them next to the record's
        from ..container.summary import summarize_params
        from .records import filter_summary

        for rec, entry in zip(c.records, out["records"]):
            if rec.encoding == "bloomier":
                fs = filter_summary(rec)
                entry["filter"] = fs if full_params else summarize_params(fs)
    return out
