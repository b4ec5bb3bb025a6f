"""Tensors <-> container records: the encodings a ``.wl`` file may hold (numpy only).

Encodings (the ``encoding`` field of a :class:`~weightless.container.Record`):

- ``"dense"``: the tensor's bytes, little-endian, C order; ``params = {"stored": dtype}``
  where ``stored`` is the dtype on disk (``float16`` halves a float32 tensor; lossy) and the
  record's ``dtype`` is the dtype it decodes to. A ``bfloat16`` tensor is stored as its raw
  16-bit words (``stored = "bfloat16"``), so it comes back bit for bit.
- ``"bloomier"``: a Bloomier-filter layer (paper section 3.2). The payload is the codebook
  (k little-endian float32 centroids) followed by the filter record of
  :func:`weightless.entropy.encode_filter` (entropy-coded tables, or the raw bit-packed filter
  when coding does not help; the filter record's magic says which), so a layer's payload
  length is its whole cost. ``params`` is ``{"k": k}`` (the codebook length; the filter's own
  header holds t, construction, seeds and shards, which :func:`filter_summary` reads for
  ``inspect``). Files written before format 2 carry full copies of the filter's parameters
  (t, k, construction, seeds, shards, n, m, coding); on decode each copy must match the header.
- ``"sparse"`` and ``"indexed"``: a clustered tensor stored losslessly as its codebook and
  entropy-coded indices (:mod:`weightless.io.clustered`).

A decoded Bloomier layer is ``codebook[value]`` where the filter answers and 0 elsewhere, in
the record's ``dtype``: ``float32`` (the default), ``float16``, ``bfloat16`` or ``float64``, the
dtype of the tensor it encodes. The codebook on disk is float32, rounded to that dtype when it
is narrower, so the decoded values are exactly the codebook's.

numpy has no bfloat16: :func:`decode_record` returns a bfloat16 tensor as float32 (the same
values exactly; every bfloat16 is a float32) or, with ``bfloat16="words"``, as its raw 16-bit
words (uint16), which :func:`weightless.load` views as ``torch.bfloat16``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..container import Record
from ..errors import FieldError, InputError
from .bfloat16 import bfloat16_to_float32, float32_to_bfloat16

__all__ = [
    "dense_record",
    "filter_record",
    "decode_record",
    "decode_filter_of",
    "filter_summary",
    "verify_records",
    "ENCODINGS",
    "DTYPES",
    "FILTER_DTYPES",
]

ENCODINGS = ("dense", "bloomier", "sparse", "indexed")
_NUMPY_DTYPES = (
    "float64", "float32", "float16",
    "int64", "int32", "int16", "int8",
    "uint64", "uint32", "uint16", "uint8",
    "bool",
)
#: Dtypes a tensor may have to be saved (numpy's names; bfloat16 as in torch).
DTYPES = _NUMPY_DTYPES + ("bfloat16",)
#: Dtypes a Bloomier-filter layer may decode to.
FILTER_DTYPES = ("float32", "float16", "bfloat16", "float64")
#: stored dtype -> the dtypes a dense record so stored may decode to (besides itself).
_DENSE_WIDENS = {"float16": ("float32",)}
_FILTER_MAGICS = (b"WLBE", b"WLBF")  # entropy-coded and raw filter records


def _round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 ``values`` rounded to ``dtype`` (one of FILTER_DTYPES) and widened back to float32."""
    if dtype == "bfloat16":
        return bfloat16_to_float32(float32_to_bfloat16(values))
    if dtype == "float16":
        with np.errstate(over="ignore"):  # too large for float16: inf, rejected by the caller
            return values.astype(np.float16).astype(np.float32)
    return values


def dense_record(name: str, array: Any, *, stored: str | None = None, dtype: str | None = None) -> Record:
    """Return a ``"dense"`` record of ``array`` (any shape, 0-d and empty included).

    Args:
        stored: dtype on disk; None keeps the array's dtype. ``"float16"`` is allowed for
            float32 arrays (values are rounded to half precision).
        dtype: the tensor's dtype when ``array`` only holds its bits: ``"bfloat16"`` with
            ``array`` the raw 16-bit words as uint16 (numpy has no bfloat16). None: the
            array's own dtype.

    Raises:
        InputError: unsupported dtype (the message names the tensor), or a ``stored`` dtype
            that cannot hold the array.
    """
    a = np.asarray(array)  # not ascontiguousarray: that turns a 0-d array into shape (1,)
    if dtype is not None and dtype != a.dtype.name:
        if dtype != "bfloat16" or a.dtype != np.uint16:
            raise InputError(f"tensor {name!r}: dtype {dtype!r} given for a {a.dtype} array; only "
                             "'bfloat16' may be given, with the raw words as uint16")
    else:
        dtype = a.dtype.name
    if dtype not in DTYPES:
        raise InputError(f"tensor {name!r}: dtype {dtype} is not supported; expected one of {DTYPES}")
    stored = dtype if stored is None else str(stored)
    if stored != dtype and dtype not in _DENSE_WIDENS.get(stored, ()):
        raise InputError(f"tensor {name!r}: cannot store {dtype} as {stored}; use float16 only for float32 tensors")
    disk = np.uint16 if stored == "bfloat16" else stored
    payload = a.astype(np.dtype(disk).newbyteorder("<"), copy=False).tobytes()
    return Record(name, "dense", tuple(int(d) for d in a.shape), dtype, {"stored": stored}, payload)


def filter_record(
    name: str, f: Any, codebook: Any, shape: tuple[int, ...], *, entropy: bool = True, dtype: str = "float32"
) -> Record:
    """Return a ``"bloomier"`` record of filter ``f`` with its ``codebook`` for a tensor of ``shape``.

    Args:
        entropy: entropy-code the tables (falls back to raw when that is not smaller).
        dtype: the dtype the layer decodes to (one of :data:`FILTER_DTYPES`: the encoded
            tensor's); the float32 codebook is rounded to it.

    Raises:
        InputError: codebook length differs from ``f.k``, ``shape`` does not match ``f.size``,
            an unsupported ``dtype``, or codebook values that are not finite in ``dtype``.
    """
    from ..entropy import encode_filter

    if dtype not in FILTER_DTYPES:
        raise InputError(f"tensor {name!r}: a filter layer of dtype {dtype!r} is not supported; "
                         f"expected one of {FILTER_DTYPES}")
    cb = np.asarray(codebook, dtype=np.float32).ravel()
    if cb.shape[0] != f.k:
        raise InputError(f"tensor {name!r}: codebook has {cb.shape[0]} values, filter k = {f.k}")
    if np.all(np.isfinite(cb)):
        cb = _round_to(cb, dtype)
    if not np.all(np.isfinite(cb)):
        raise InputError(f"tensor {name!r}: codebook has values that are not finite in {dtype}")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != f.size:
        raise InputError(f"tensor {name!r}: shape {shape} has {math.prod(shape)} positions, filter size {f.size}")
    coded = encode_filter(f) if entropy else f.to_bytes()
    payload = cb.astype("<f4").tobytes() + coded
    return Record(name, "bloomier", shape, dtype, {"k": int(f.k)}, payload)


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
        limits: a :class:`weightless.io.limits.Limits` (None: the defaults), checked first.

    Raises:
        LimitError: the record exceeds ``limits`` (nothing was decoded).
        FormatError: corrupt payload, or params that differ from the filter's own header.
    """
    from ..entropy import decode_filter
    from .limits import DEFAULT_LIMITS, check_records

    if rec.encoding != "bloomier":
        raise FieldError(f"record {rec.name!r}: encoding {rec.encoding!r}, expected 'bloomier'")
    if rec.dtype not in FILTER_DTYPES:
        raise FieldError(f"record {rec.name!r}: bloomier records decode to one of {FILTER_DTYPES}, "
                         f"header says {rec.dtype}")
    lim = DEFAULT_LIMITS if limits is None else limits
    check_records([rec], lim)
    cb, coded = _split_codebook(rec)
    if not np.array_equal(_round_to(cb, rec.dtype), cb):
        raise FieldError(f"record {rec.name!r}: codebook values are not exactly representable in {rec.dtype}")
    f = decode_filter(coded, max_cells=lim.max_tensor_cells)
    if f.size != math.prod(rec.shape):
        raise FieldError(
            f"record {rec.name!r}: filter covers {f.size} positions, shape {list(rec.shape)} "
            f"has {math.prod(rec.shape)}"
        )
    if f.k != cb.shape[0]:
        raise FieldError(f"record {rec.name!r}: filter k = {f.k}, codebook has {cb.shape[0]} values")
    full = _filter_params(f, "raw" if bytes(coded[:4]) == _FILTER_MAGICS[1] else "ans")
    # files since format 2 carry only k (the filter's header holds the rest); older ones a full copy
    _check_params(rec, {"k": full["k"]} if set(rec.params) == {"k"} else full)
    return f, cb


def filter_summary(rec: Record) -> dict:
    """The filter parameters of a ``"bloomier"`` record, read from its payload (for ``inspect``).

    Raises:
        FormatError: a corrupt payload.
    """
    f, _ = decode_filter_of(rec)
    return _filter_params(f, "raw" if bytes(rec.payload[4 * f.k : 4 * f.k + 4]) == _FILTER_MAGICS[1] else "ans")


def decode_record(rec: Record, limits: Any = None, *, bfloat16: str = "float32") -> np.ndarray:
    """Decode one record to a numpy array of its shape and dtype.

    Args:
        limits: a :class:`weightless.io.limits.Limits` (None: the defaults), checked before
            anything is decoded.
        bfloat16: how a ``bfloat16`` record comes back (numpy has no bfloat16): ``"float32"``
            (the same values, exactly) or ``"words"`` (the raw 16-bit words as uint16).

    Raises:
        InputError: ``bfloat16`` is neither "float32" nor "words".
        LimitError: the record exceeds ``limits``.
        FieldError: unknown encoding, or params inconsistent with the payload.
        FormatError: a corrupt payload.
    """
    if bfloat16 not in ("float32", "words"):
        raise InputError(f"bfloat16 must be 'float32' or 'words', got {bfloat16!r}")
    if rec.encoding == "dense":
        from .limits import check_records

        check_records([rec], limits)
        a = _decode_dense(rec)
    elif rec.encoding == "bloomier":
        f, cb = decode_filter_of(rec, limits)
        a = f.reconstruct(rec.shape, cb)
        if rec.dtype == "bfloat16":
            a = float32_to_bfloat16(a)
        elif rec.dtype != "float32":
            a = a.astype(rec.dtype)
    elif rec.encoding in ("sparse", "indexed"):
        from .limits import check_records
        from .clustered import decode_coded

        check_records([rec], limits)
        a = decode_coded(rec, bfloat16=bfloat16)
        if rec.dtype == "bfloat16" and bfloat16 == "float32":
            return a  # already the float32 of the same values
    else:
        raise FieldError(f"record {rec.name!r}: unknown encoding {rec.encoding!r}; this reader knows {ENCODINGS}")
    if rec.dtype == "bfloat16" and bfloat16 == "float32":
        a = bfloat16_to_float32(a)
    return a


def _decode_dense(rec: Record) -> np.ndarray:
    """A dense record's array; bfloat16 as its uint16 words."""
    stored = rec.params.get("stored")
    if not isinstance(stored, str) or stored not in DTYPES:
        raise FieldError(f"record {rec.name!r}: params.stored = {stored!r}, expected one of {DTYPES}")
    if rec.dtype != stored and rec.dtype not in _DENSE_WIDENS.get(stored, ()):
        raise FieldError(f"record {rec.name!r}: dtype {rec.dtype} cannot be decoded from stored {stored}")
    _check_params(rec, {"stored": stored})
    dt = np.dtype(np.uint16 if stored == "bfloat16" else stored).newbyteorder("<")
    count = math.prod(rec.shape)
    if len(rec.payload) != count * dt.itemsize:
        raise FieldError(
            f"record {rec.name!r}: payload is {len(rec.payload)} bytes, expected {count * dt.itemsize} "
            f"({count} x {stored})"
        )
    a = np.frombuffer(rec.payload, dtype=dt, count=count)
    if stored == "bool" and count and int(a.view(np.uint8).max()) > 1:
        raise FieldError(f"record {rec.name!r}: a bool payload byte is neither 0 nor 1")
    return a.astype(np.uint16 if rec.dtype == "bfloat16" else rec.dtype).reshape(rec.shape)


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
