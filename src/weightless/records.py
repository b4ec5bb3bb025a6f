"""Tensors <-> container records: the encodings a ``.wl`` file may hold (numpy only).

Encodings (the ``encoding`` field of a :class:`~weightless.container.Record`):

- ``"dense"``: the tensor's bytes, little-endian, C order; ``params = {"stored": dtype}``
  where ``stored`` is the dtype on disk (``float16`` halves a float32 tensor; lossy) and the
  record's ``dtype`` is the dtype it decodes to.
- ``"bloomier"``: a Bloomier-filter layer (paper section 3.2). The payload is the codebook
  (k little-endian float32 centroids) followed by the filter record of
  :func:`weightless.entropy.encode_filter` (entropy-coded tables, or the raw bit-packed filter
  when coding does not help; the filter record's magic says which), so a layer's payload
  length is its whole cost. ``params`` carries, for reading and inspection,
  copies of the filter's parameters (t, k, construction, seeds, shards, n, m, coding); on
  decode each copy must match the filter's own header.

A decoded Bloomier layer is ``codebook[value]`` where the filter answers and 0 elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .container import Record
from .errors import FieldError, InputError

__all__ = ["dense_record", "filter_record", "decode_record", "decode_filter_of", "verify_records", "ENCODINGS"]

ENCODINGS = ("dense", "bloomier")
_DENSE_STORED = {
    "float32": ("float32",),
    "float16": ("float32", "float16"),
    "float64": ("float64",),
}
_FILTER_MAGICS = (b"WLBE", b"WLBF")  # entropy-coded and raw filter records
_NUMPY_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def dense_record(name: str, array: Any, *, stored: str | None = None) -> Record:
    """Return a ``"dense"`` record of ``array``.

    Args:
        stored: dtype on disk; None keeps the array's dtype. ``"float16"`` is allowed for
            float32 arrays (values are rounded to half precision).

    Raises:
        InputError: unsupported dtype, or a ``stored`` dtype that cannot hold the array.
    """
    a = np.ascontiguousarray(array)
    dtype = a.dtype.name
    if dtype not in _NUMPY_DTYPES:
        raise InputError(f"tensor {name!r}: dtype {dtype} is not supported; expected one of {_NUMPY_DTYPES}")
    stored = dtype if stored is None else str(stored)
    if stored != dtype and dtype not in _DENSE_STORED.get(stored, ()):
        raise InputError(f"tensor {name!r}: cannot store {dtype} as {stored}; use float16 only for float32 tensors")
    payload = a.astype(np.dtype(stored).newbyteorder("<"), copy=False).tobytes()
    return Record(name, "dense", tuple(a.shape), dtype, {"stored": stored}, payload)


def filter_record(name: str, f: Any, codebook: Any, shape: tuple[int, ...], *, entropy: bool = True) -> Record:
    """Return a ``"bloomier"`` record of filter ``f`` with its ``codebook`` for a tensor of ``shape``.

    Args:
        entropy: entropy-code the tables (falls back to raw when that is not smaller).

    Raises:
        InputError: codebook length differs from ``f.k`` or ``shape`` does not match ``f.size``.
    """
    from .entropy import encode_filter

    cb = np.asarray(codebook, dtype=np.float32).ravel()
    if cb.shape[0] != f.k:
        raise InputError(f"tensor {name!r}: codebook has {cb.shape[0]} values, filter k = {f.k}")
    if not np.all(np.isfinite(cb)):
        raise InputError(f"tensor {name!r}: codebook has non-finite values")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != f.size:
        raise InputError(f"tensor {name!r}: shape {shape} has {math.prod(shape)} positions, filter size {f.size}")
    coded = encode_filter(f) if entropy else f.to_bytes()
    payload = cb.astype("<f4").tobytes() + coded
    params = _filter_params(f, "raw" if coded[:4] == _FILTER_MAGICS[1] else "ans")
    return Record(name, "bloomier", shape, "float32", params, payload)


def _split_codebook(rec: Record) -> tuple[np.ndarray, bytes]:
    k = rec.params.get("k")
    if type(k) is not int or not 1 <= k <= 65536:
        raise FieldError(f"record {rec.name!r}: params.k = {k!r}, expected an integer in [1, 65536]")
    if len(rec.payload) < 4 * k:
        raise FieldError(
            f"record {rec.name!r}: payload of {len(rec.payload)} bytes cannot hold a codebook of {k} float32"
        )
    cb = np.frombuffer(rec.payload, dtype="<f4", count=k).astype(np.float32)
    if not np.all(np.isfinite(cb)):
        raise FieldError(f"record {rec.name!r}: codebook holds non-finite values")
    return cb, rec.payload[4 * k :]


def _same(a: Any, b: Any) -> bool:
    """JSON equality that also compares types: 1.0 and True are not the integer 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return a == b


def _check_params(rec: Record, expected: dict) -> None:
    """``rec.params`` must be exactly ``expected`` (same keys, values and JSON types)."""
    extra = sorted(set(rec.params) - set(expected))
    if extra:
        raise FieldError(f"record {rec.name!r}: unknown params {extra[:5]} for encoding {rec.encoding!r}; "
                         f"expected exactly {sorted(expected)}")
    for key, want in expected.items():
        if key not in rec.params:
            raise FieldError(f"record {rec.name!r}: params has no {key!r}; expected {sorted(expected)}")
        if not _same(rec.params[key], want):
            got = repr(rec.params[key])
            raise FieldError(
                f"record {rec.name!r}: params.{key} = {got[:80]}, but the payload says {repr(want)[:80]}"
            )


def _filter_params(f: Any, coding: str) -> dict:
    """The params :func:`filter_record` writes for filter ``f`` (the single definition)."""
    p = f.params()
    return {
        "coding": coding,
        "construction": p["construction"],
        "k": p["k"],
        "t": p["t"],
        "n": p["n"],
        "m": int(sum(s["m"] for s in p["shards"])),
        "seed": p["seed"],
        "shards": [{"n": s["n"], "m": s["m"], "seed": s["seed"]} for s in p["shards"]],
    }


def decode_filter_of(rec: Record, limits: Any = None) -> tuple[Any, np.ndarray]:
    """Return ``(filter, codebook)`` of a ``"bloomier"`` record.

    Args:
        limits: a :class:`weightless.limits.Limits` (None: the defaults), checked first.

    Raises:
        LimitError: the record exceeds ``limits`` (nothing was decoded).
        FormatError: corrupt payload, or params that differ from the filter's own header.
    """
    from .entropy import decode_filter
    from .limits import DEFAULT_LIMITS, check_records

    if rec.encoding != "bloomier":
        raise FieldError(f"record {rec.name!r}: encoding {rec.encoding!r}, expected 'bloomier'")
    if rec.dtype != "float32":
        raise FieldError(f"record {rec.name!r}: bloomier records decode to float32, header says {rec.dtype}")
    lim = DEFAULT_LIMITS if limits is None else limits
    check_records([rec], lim)
    cb, coded = _split_codebook(rec)
    f = decode_filter(coded, max_cells=lim.max_tensor_cells)
    if f.size != math.prod(rec.shape):
        raise FieldError(
            f"record {rec.name!r}: filter covers {f.size} positions, shape {list(rec.shape)} "
            f"has {math.prod(rec.shape)}"
        )
    if f.k != cb.shape[0]:
        raise FieldError(f"record {rec.name!r}: filter k = {f.k}, codebook has {cb.shape[0]} values")
    _check_params(rec, _filter_params(f, "raw" if bytes(coded[:4]) == _FILTER_MAGICS[1] else "ans"))
    return f, cb


def decode_record(rec: Record, limits: Any = None) -> np.ndarray:
    """Decode one record to a numpy array of its shape and dtype.

    Args:
        limits: a :class:`weightless.limits.Limits` (None: the defaults), checked before
            anything is decoded.

    Raises:
        LimitError: the record exceeds ``limits``.
        FieldError: unknown encoding, or params inconsistent with the payload.
        FormatError: a corrupt payload.
    """
    from .limits import check_records

    if rec.encoding == "dense":
        check_records([rec], limits)
        stored = rec.params.get("stored")
        if not isinstance(stored, str) or stored not in _NUMPY_DTYPES:
            raise FieldError(f"record {rec.name!r}: params.stored = {stored!r}, expected one of {_NUMPY_DTYPES}")
        if rec.dtype not in _NUMPY_DTYPES:
            raise FieldError(f"record {rec.name!r}: dtype {rec.dtype} cannot be decoded by this reader")
        if stored != rec.dtype and rec.dtype not in _DENSE_STORED.get(stored, ()):
            raise FieldError(f"record {rec.name!r}: params.stored = {stored!r} cannot hold dtype {rec.dtype}; "
                             f"expected {rec.dtype!r} (or 'float16' for float32)")
        _check_params(rec, {"stored": stored})
        dt = np.dtype(stored).newbyteorder("<")
        count = math.prod(rec.shape)
        if len(rec.payload) != count * dt.itemsize:
            raise FieldError(
                f"record {rec.name!r}: payload is {len(rec.payload)} bytes, expected {count * dt.itemsize} "
                f"({count} x {stored})"
            )
        a = np.frombuffer(rec.payload, dtype=dt, count=count)
        if stored == "bool" and count and int(a.view(np.uint8).max()) > 1:
            raise FieldError(f"record {rec.name!r}: a bool payload byte is neither 0 nor 1")
        a = a.astype(rec.dtype)
        return a.reshape(rec.shape)
    if rec.encoding == "bloomier":
        f, cb = decode_filter_of(rec, limits)
        return f.reconstruct(rec.shape, cb)
    raise FieldError(f"record {rec.name!r}: unknown encoding {rec.encoding!r}; this reader knows {ENCODINGS}")


def verify_records(records: Any, limits: Any = None) -> None:
    """Check every record's payload as a decoder would, without expanding filters: limits for
    the whole file first, then dense records are decoded and Bloomier filters parsed (tables,
    CRC, params). Returns None.

    Raises:
        LimitError: a limit is exceeded.
        FormatError: a payload is corrupt or inconsistent with its params.
    """
    from .limits import check_records

    records = list(records)
    check_records(records, limits)
    for rec in records:
        if rec.encoding == "bloomier":
            decode_filter_of(rec, limits)
        else:
            decode_record(rec, limits)
