"""Lossless records of clustered tensors (a codebook and an index per position), numpy only.

A tensor whose values come from a small set (pruned and clustered weights, a clustered bias)
is stored exactly as its codebook and indices, the structure entropy-coded by
:mod:`weightless.entropy.index_coder` (read by :mod:`~weightless.entropy.index_decoder`):

- ``"sparse"``: codebook, then the positions of the nonzeros, then the codebook index of each
  nonzero (in C order). Decodes to ``codebook[index]`` at the positions and 0 elsewhere.
- ``"indexed"``: codebook, then the codebook index of every position. For dense clustered
  tensors (a bias with 16 shared values, a layer that keeps most of its weights).

Payload of both: ``varint k`` (1..65536), ``u8 codebook format`` (0 float32, 1 float16,
2 bfloat16 words, 3 float64; the narrowest that holds every codebook value exactly is written),
``k`` codebook values little-endian, then the streams. ``params`` is ``{}`` (readers also
accept ``{"alt": bytes}``, the payload size of the other coded encoding, which writers before
2026-12-07 gave every coded record).

The decoded tensor has the record's dtype (float64/32/16 or bfloat16); a codebook value that
the dtype cannot hold exactly is a format error, so a load gives back exactly what was saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..container import Record
from ..entropy._bits import Reader, write_varint
from ..entropy.index_coder import CHUNK, encode_positions, encode_symbols, mask_stride
from ..entropy.index_decoder import parse_positions, parse_symbols
from ..entropy.range_coder import left_flags, up_indices, value_ranks
from ..errors import FieldError, InputError
from .bfloat16 import bfloat16_to_float32, float32_to_bfloat16

__all__ = ["Clustered", "CODED_ENCODINGS", "coded_record", "decode_coded", "smallest_record", "as_clustered",
           "clustered_candidates"]

CODED_ENCODINGS = ("sparse", "indexed")
_CB_FORMATS = ("<f4", "<f2", "<u2", "<f8")  # float32, float16, bfloat16 words, float64
_MAX_K = 65536
_VALUE_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class Clustered:
    """A tensor given as ``codebook[indices]`` with ``indices == -1`` meaning 0.

    Attributes:
        indices: integer array shaped like the tensor; -1 for a zero, else in [0, k).
        codebook: the k shared values (float).
        dtype: the tensor's dtype ("float32", "float16", "bfloat16" or "float64").
    """

    indices: np.ndarray
    codebook: np.ndarray
    dtype: str = "float32"

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(int(s) for s in np.shape(self.indices))

    def values(self) -> np.ndarray:
        """The tensor's float64 values (exact for every supported dtype)."""
        cb = np.asarray(self.codebook, dtype=np.float64)
        idx = np.asarray(self.indices)
        out = np.zeros(idx.shape, dtype=np.float64)
        nz = idx >= 0
        out[nz] = cb[idx[nz]]
        return out


def _bf16_words(values: np.ndarray) -> np.ndarray:
    return float32_to_bfloat16(values.astype(np.float32))


def _codebook_bytes(cb: np.ndarray) -> bytes:
    """The narrowest exact codebook encoding: format byte + values."""
    cb = np.asarray(cb, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.array_equal(cb.astype(np.float32).astype(np.float64), cb):
            f32 = cb.astype(np.float32)
            if np.array_equal(f32.astype(np.float16).astype(np.float32), f32):
                return bytes([1]) + f32.astype("<f2").tobytes()
            words = _bf16_words(f32)
            if np.array_equal(bfloat16_to_float32(words), f32):
                return bytes([2]) + words.astype("<u2").tobytes()
            return bytes([0]) + f32.astype("<f4").tobytes()
    return bytes([3]) + cb.astype("<f8").tobytes()


def _read_codebook(r: Reader, k: int, what: str) -> np.ndarray:
    fmt = r.u8(f"{what} codebook format")
    if fmt >= len(_CB_FORMATS):
        raise FieldError(f"{what}: unknown codebook format {fmt}; expected 0..{len(_CB_FORMATS) - 1}")
    dt = np.dtype(_CB_FORMATS[fmt])
    raw = np.frombuffer(r.take(k * dt.itemsize, f"{what} codebook"), dtype=dt)
    cb = bfloat16_to_float32(raw).astype(np.float64) if fmt == 2 else raw.astype(np.float64)
    if not np.all(np.isfinite(cb)):
        raise FieldError(f"{what}: the codebook holds non-finite values")
    return cb


def _check(name: str, c: Clustered) -> tuple[np.ndarray, np.ndarray]:
    if c.dtype not in _VALUE_DTYPES:
        raise InputError(f"tensor {name!r}: a clustered tensor of dtype {c.dtype!r} is not supported; "
                         f"expected one of {_VALUE_DTYPES}")
    cb = np.asarray(c.codebook, dtype=np.float64).reshape(-1)
    idx = np.asarray(c.indices)
    if not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"tensor {name!r}: indices must be integers, got {idx.dtype}")
    if not 1 <= cb.size <= _MAX_K:
        raise InputError(f"tensor {name!r}: the codebook has {cb.size} values; expected 1..{_MAX_K}")
    if idx.size and (int(idx.min()) < -1 or int(idx.max()) >= cb.size):
        raise InputError(f"tensor {name!r}: indices must lie in [-1, {cb.size}), got [{int(idx.min())}, {int(idx.max())}]")
    if not np.all(np.isfinite(cb)):
        raise InputError(f"tensor {name!r}: the codebook holds non-finite values")
    exact = _exact_in(cb, c.dtype)
    if not np.array_equal(exact, cb):
        raise InputError(f"tensor {name!r}: codebook values are not exactly representable in {c.dtype}")
    return idx.reshape(-1).astype(np.int64), cb


def _exact_in(cb: np.ndarray, dtype: str) -> np.ndarray:
    """``cb`` rounded to ``dtype`` and widened back to float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype == "float64":
            return cb
        f32 = cb.astype(np.float32)
        if dtype == "bfloat16":
            return bfloat16_to_float32(_bf16_words(f32)).astype(np.float64)
        return f32.astype(dtype).astype(np.float64)


def coded_record(name: str, c: Clustered, encoding: str) -> Record:
    """Return the ``encoding`` ("sparse" or "indexed") record of clustered tensor ``c``.

    Raises:
        InputError: an unknown encoding, indices out of range, a codebook that is empty, too
            long, not finite or not exact in ``c.dtype``; "indexed" with zeros (-1) among the
            indices (zero must then be a codebook value).
    """
    if encoding not in CODED_ENCODINGS:
        raise InputError(f"encoding must be one of {CODED_ENCODINGS}, got {encoding!r}")
    idx, cb = _check(name, c)
    head = write_varint(cb.size) + _codebook_bytes(cb)
    ranks, cols = value_ranks(cb), idx.size // _rows(c.shape) if idx.size else 1
    if encoding == "sparse":
        mask, pos = idx >= 0, np.flatnonzero(idx >= 0)
        stride = mask_stride(mask.reshape(_rows(c.shape), cols)) if _rows(c.shape) > 1 else 0
        up = (stride, up_indices(pos, cols, stride)) if stride else None
        body = (encode_positions(mask, _rows(c.shape), stride=stride)
                + encode_symbols(idx[mask], cb.size, (ranks, left_flags(pos, cols)), up))
    else:
        if idx.size and int(idx.min()) < 0:
            raise InputError(f"tensor {name!r}: 'indexed' needs an index at every position (zero as a codebook value)")
        body = encode_symbols(idx, cb.size, (ranks, left_flags(np.arange(idx.size), cols)))
    return Record(name, encoding, c.shape, c.dtype, {}, head + body)


def decode_coded(rec: Record, *, bfloat16: str = "float32") -> np.ndarray:
    """Decode a ``"sparse"`` or ``"indexed"`` record to its array (bfloat16 as float32 values,
    or with ``bfloat16="words"`` as its uint16 words).

    The whole payload is parsed first (every length, count and minimum-length rule, trailing
    bytes), then the streams are decoded in chunks straight into the output array, so the
    peak memory is the output plus a few MiB; with the blocks positions model or the left
    symbols model, plus 8 bytes per nonzero (the positions, then the symbols, whole).

    Raises:
        FieldError / TruncatedError: a corrupt payload, params other than ``alt``, a dtype
            that cannot hold the codebook exactly.
    """
    what = f"record {rec.name!r}"
    if rec.dtype not in _VALUE_DTYPES:
        raise FieldError(f"{what}: {rec.encoding} records decode to one of {_VALUE_DTYPES}, header says {rec.dtype}")
    if rec.encoding not in CODED_ENCODINGS:
        raise FieldError(f"{what}: encoding {rec.encoding!r} is not one of {CODED_ENCODINGS}")
    _check_alt(rec)
    r = Reader(rec.payload, what)
    k = r.varint("k", _MAX_K)
    if k < 1:
        raise FieldError(f"{what}: k = 0; a codebook needs at least one value")
    cb = _read_codebook(r, k, what)
    if not np.array_equal(_exact_in(cb, rec.dtype), cb):
        raise FieldError(f"{what}: codebook values are not exactly representable in {rec.dtype}")
    size = math.prod(rec.shape)
    positions = parse_positions(r, size, what, _rows(rec.shape)) if rec.encoding == "sparse" else None
    symbols = parse_symbols(r, size if positions is None else positions.n, k, what, value_ranks(cb))
    r.expect_end()
    if rec.dtype == "bfloat16":
        values = _bf16_words(cb) if bfloat16 == "words" else cb.astype(np.float32)
    else:
        values = cb.astype(rec.dtype)
    if symbols.needs_positions:  # models 3, 4: every position first (the contexts), then the symbols
        pos = np.arange(size) if positions is None else positions.every()
        symbols.attach(pos, size // _rows(rec.shape) if size else 1)
        out = np.zeros(size, dtype=values.dtype)
        out[pos] = values[symbols.take(pos.size)]
    elif positions is None:
        out = np.empty(size, dtype=values.dtype)
        for at in range(0, size, CHUNK):
            n = min(CHUNK, size - at)
            out[at : at + n] = values[symbols.take(n)]
    else:
        out = np.zeros(size, dtype=values.dtype)
        for pos in positions.chunks():
            out[pos] = values[symbols.take(pos.size)]
    symbols.finish()
    return out.reshape(rec.shape)


def _rows(shape: tuple[int, ...]) -> int:
    """Rows of the lines model: the first dimension of a tensor with at least 2 (else 1)."""
    return int(shape[0]) if len(shape) >= 2 and int(shape[0]) > 0 else 1


def _check_alt(rec: Record) -> None:
    extra = set(rec.params) - {"alt"}
    if extra:
        raise FieldError(f"record {rec.name!r}: unknown params {sorted(extra)[:5]} for encoding {rec.encoding!r}")
    alt = rec.params.get("alt", 0)
    if type(alt) is not int or alt < 0:
        raise FieldError(f"record {rec.name!r}: params.alt must be a byte count, got {alt!r}")


def as_clustered(a: np.ndarray, dtype: str, max_k: int = 256) -> Clustered | None:
    """Return ``a`` (float) as a :class:`Clustered` if it holds at most ``max_k`` distinct
    nonzero values, all finite, else None. Exact: -0.0 is kept as a codebook value."""
    if dtype not in _VALUE_DTYPES or a.size == 0:
        return None
    flat = np.asarray(a).reshape(-1)
    if not np.all(np.isfinite(flat)):
        return None
    bits = flat.view(np.uint64 if flat.dtype.itemsize == 8 else np.uint32 if flat.dtype.itemsize == 4 else np.uint16)
    head = bits[: 1 << 16]
    if np.unique(head[head != 0]).size > max_k:  # cheap early exit for float weights
        return None
    nz = bits != 0
    u, inv = np.unique(bits[nz], return_inverse=True)
    if u.size > max_k:
        return None
    if u.size == 0:  # all zeros: one (unused) codebook value
        return Clustered(np.full(a.shape, -1, dtype=np.int64), np.zeros(1), dtype)
    idx = np.full(flat.size, -1, dtype=np.int64)
    idx[nz] = inv
    return Clustered(idx.reshape(a.shape), u.view(flat.dtype).astype(np.float64), dtype)


def smallest_record(name: str, candidates: list[Record]) -> Record:
    """Return the shortest of ``candidates`` (records of the same tensor; ties keep the first),
    with no params: readers accept the ``alt`` that earlier writers gave a coded record (the
    other coded encoding's size, for ``inspect``), but its 10-14 header bytes a record were 1%
    of a LeNet5 file and nothing needs them."""
    return min(candidates, key=lambda r: len(r.payload))


def clustered_candidates(name: str, c: Clustered) -> list[Record]:
    """The lossless records of ``c``: "sparse", and "indexed" when zero is not a value."""
    out = [coded_record(name, c, "sparse")]
    idx = np.asarray(c.indices)
    if idx.size and int(idx.min()) >= 0:
        out.append(coded_record(name, c, "indexed"))
    elif idx.size:  # zero joins the codebook as its own value
        cb = np.append(np.asarray(c.codebook, dtype=np.float64), 0.0)
        if cb.size <= _MAX_K:
            full = np.where(idx < 0, cb.size - 1, idx)
            out.append(coded_record(name, Clustered(full, cb, c.dtype), "indexed"))
    return out
