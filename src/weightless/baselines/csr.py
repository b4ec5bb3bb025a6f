"""Deep Compression's sparse storage (Han et al., ICLR 2016): CSR with relative indices.

A *pruned + clustered* layer is an integer ``indices`` array (``-1`` where the weight is zero,
else its cluster in ``[0, k)``) plus a float32 ``codebook`` of ``k`` centroids. Following Han
et al., the layer is flattened in row-major (C) order and stored as a list of *entries*, each
an (index code, value code) pair:

- **index code** (``index_bits`` = b bits; 5 for FC, 8 for conv in the paper) = the number of
  zero positions skipped since the previous entry (the first entry counts from position 0), so
  codes ``0 .. 2**b - 1`` cover position differences ``1 .. 2**b``;
- **filler zero**: when more than ``2**b - 1`` zeros separate two non-zeros, an entry with
  index code ``2**b - 1`` and the reserved **value code k** is inserted (it stands for a zero
  weight at the position it lands on), as often as needed;
- **value code** = the cluster index, in ``[0, k)``, or ``k`` for a filler. The value alphabet
  has ``k + 1`` symbols if the layer has at least one filler, else ``k`` (flag bit 0).

Plain CSR (this module) packs index codes as b-bit fields and value codes as
``ceil(log2(alphabet))``-bit fields (0 bits when the alphabet has one symbol, e.g. k = 1 and no
filler). Zeros after the last non-zero are implied by the shape.

Record layout (all records of this module and :mod:`.deep_compression`)::

    magic      4 bytes   b"WCSR" (plain CSR) or b"WDCH" (CSR + Huffman)
    version    u8        1
    index_bits u8        1..16
    flags      u8        bit 0: the value alphabet includes the filler code k; others zero
    ndim       varint    0..8, then ndim varint dims (product <= max_positions)
    k          varint    1..32767
    entries    varint    number of entries E (non-zeros + fillers), <= number of positions
    codebook   k float32 little-endian
    --- plain CSR payload ---
    index stream  ceil(E*b/8) bytes, value stream  ceil(E*value_bits/8) bytes (each zero padded)

Every record decodes to exactly the layer that was encoded; corrupt or truncated records raise
:class:`~weightless.errors.FormatError` subclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..entropy._bits import Reader, pack_fixed, packed_size, unpack_fixed, write_varint
from ..errors import BadMagicError, FieldError, InputError, UnsupportedVersionError

__all__ = ["csr_encode", "csr_decode", "dense_weights", "DEFAULT_MAX_POSITIONS", "Entries",
           "layer_entries", "value_bits"]

MAGIC_CSR = b"WCSR"
MAGIC_DC = b"WDCH"
VERSION = 1
MAX_K = 32767
MAX_NDIM = 8
MAX_INDEX_BITS = 16
DEFAULT_MAX_POSITIONS = 1 << 28
"""Largest layer (number of weights) a decoder accepts unless told otherwise (268M)."""


@dataclass(frozen=True)
class Entries:
    """The CSR entry streams of a layer: ``gaps`` (index codes) and ``values`` (value codes)."""

    shape: tuple[int, ...]
    k: int
    index_bits: int
    gaps: np.ndarray
    values: np.ndarray
    has_filler: bool

    @property
    def value_alphabet(self) -> int:
        """Number of value symbols: k, plus one for the filler code if used."""
        return self.k + int(self.has_filler)


def value_bits(alphabet: int) -> int:
    """Bits per plain-CSR value field for an alphabet of this size (0 if it has one symbol)."""
    return max(0, math.ceil(math.log2(alphabet))) if alphabet > 1 else 0


def _check_index_bits(index_bits: object) -> int:
    if isinstance(index_bits, bool) or not isinstance(index_bits, (int, np.integer)):
        raise InputError(f"index_bits must be an int in [1, {MAX_INDEX_BITS}] or 'auto', got {index_bits!r}")
    if not 1 <= int(index_bits) <= MAX_INDEX_BITS:
        raise InputError(f"index_bits must be in [1, {MAX_INDEX_BITS}], got {index_bits}")
    return int(index_bits)


def check_layer(indices: np.ndarray, shape: object, codebook: np.ndarray, k: int | None):
    """Validate a pruned + clustered layer; return (flat indices, shape, codebook, k).

    Raises:
        InputError: shapes disagree, k disagrees with the codebook, or an index is outside [-1, k).
    """
    indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise InputError(f"indices must be an integer array, got dtype {indices.dtype}")
    try:
        shape_t = tuple(int(d) for d in (shape if shape is not None else indices.shape))
    except TypeError as exc:
        raise InputError(f"shape must be a sequence of ints, got {shape!r}") from exc
    if len(shape_t) > MAX_NDIM or any(d < 0 for d in shape_t):
        raise InputError(f"shape must have <= {MAX_NDIM} non-negative dims, got {shape_t}")
    if indices.size != math.prod(shape_t):
        raise InputError(f"indices has {indices.size} elements but shape {shape_t} needs {math.prod(shape_t)}")
    codebook = np.asarray(codebook, dtype=np.float32).reshape(-1)
    kk = codebook.size if k is None else int(k)
    if kk != codebook.size:
        raise InputError(f"k = {kk} but the codebook has {codebook.size} entries")
    if not 1 <= kk <= MAX_K:
        raise InputError(f"k must be in [1, {MAX_K}], got {kk}")
    flat = indices.reshape(-1)  # original dtype: no int64 copy of a 100M-weight layer
    if flat.size and (int(flat.min()) < -1 or int(flat.max()) >= kk):
        raise InputError(f"indices must lie in [-1, {kk}), got [{int(flat.min())}, {int(flat.max())}]")
    return flat, shape_t, codebook, kk


def layer_entries(flat: np.ndarray, shape: tuple[int, ...], k: int, index_bits: int) -> Entries:
    """Build the CSR entry streams (with filler zeros) of a validated flat index array."""
    pos = np.flatnonzero(flat >= 0)
    vals = flat[pos].astype(np.int64)
    gaps = np.diff(pos, prepend=-1) - 1
    span = 1 << index_bits
    fillers = gaps >> index_bits
    rem = gaps & (span - 1)
    total_fill = int(fillers.sum())
    e = pos.size + total_fill
    gap_codes = np.full(e, span - 1, dtype=np.int64)
    value_codes = np.full(e, k, dtype=np.int64)
    slots = np.cumsum(fillers + 1) - 1
    gap_codes[slots] = rem
    value_codes[slots] = vals
    return Entries(shape, k, index_bits, gap_codes, value_codes, total_fill > 0)


def write_header(magic: bytes, ent: Entries, codebook: np.ndarray) -> bytes:
    """Serialize the common record header (see the module docstring)."""
    parts = [magic, bytes([VERSION, ent.index_bits, int(ent.has_filler)]), write_varint(len(ent.shape))]
    parts += [write_varint(d) for d in ent.shape]
    parts += [write_varint(ent.k), write_varint(ent.gaps.size)]
    parts.append(codebook.astype("<f4").tobytes())
    return b"".join(parts)


@dataclass(frozen=True)
class Header:
    """A parsed record header."""

    index_bits: int
    has_filler: bool
    shape: tuple[int, ...]
    k: int
    entries: int
    codebook: np.ndarray

    @property
    def value_alphabet(self) -> int:
        return self.k + int(self.has_filler)


def read_header(r: Reader, magic: bytes, max_positions: int) -> Header:
    """Parse and validate the common header; leaves ``r`` at the payload."""
    got = r.take(4, "magic")
    if got != magic:
        raise BadMagicError(f"{r.what}: magic {got!r}, expected {magic!r}")
    version = r.u8("version")
    if version != VERSION:
        raise UnsupportedVersionError(f"{r.what}: format version {version}, this reader supports {VERSION}")
    index_bits = r.u8("index_bits")
    if not 1 <= index_bits <= MAX_INDEX_BITS:
        raise FieldError(f"{r.what}: index_bits = {index_bits}, expected 1..{MAX_INDEX_BITS}")
    flags = r.u8("flags")
    if flags & ~1:
        raise FieldError(f"{r.what}: unknown flag bits 0x{flags:02x}")
    ndim = r.varint("ndim", MAX_NDIM)
    shape = []
    n = 1
    for i in range(ndim):
        d = r.varint(f"dim {i}", max_positions)
        shape.append(d)
        n *= d
        if n > max_positions:
            raise FieldError(
                f"{r.what}: the layer has more than {max_positions} positions; pass a larger "
                "max_positions if it is genuine"
            )
    k = r.varint("k", MAX_K)
    if k < 1:
        raise FieldError(f"{r.what}: k = 0, expected 1..{MAX_K}")
    entries = r.varint("entries", n)
    codebook = np.frombuffer(r.take(4 * k, "codebook"), dtype="<f4").astype(np.float32)
    return Header(index_bits, bool(flags & 1), tuple(shape), k, entries, codebook)


def rebuild(h: Header, gaps: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """Turn decoded entry streams back into the dense int16 index array of shape ``h.shape``.

    Raises:
        FieldError: a value code out of range, or entries running past the end of the layer.
    """
    n = math.prod(h.shape)
    out = np.full(n, -1, dtype=np.int16)
    if gaps.size:
        if int(values.max()) >= h.value_alphabet:
            raise FieldError(f"{what}: value code {int(values.max())} >= alphabet {h.value_alphabet}")
        pos = np.cumsum(gaps.astype(np.int64) + 1) - 1
        if int(pos[-1]) >= n:
            raise FieldError(f"{what}: entries run to position {int(pos[-1])} past the layer's {n}")
        real = values < h.k
        out[pos[real]] = values[real]
    return out.reshape(h.shape)


def best_width(flat: np.ndarray, cost: Callable[[int, np.ndarray, np.ndarray, int], float]) -> int:
    """Return the index width b in 1..MAX_INDEX_BITS minimising ``cost(b, pos, gaps, fill)``
    (``pos``: flat positions of the nonzeros, ``gaps``: zeros before each, ``fill``: filler
    entries needed at width b); the smallest b wins ties."""
    pos = np.flatnonzero(flat >= 0)
    gaps = np.diff(pos, prepend=-1) - 1
    best = None
    for b in range(1, MAX_INDEX_BITS + 1):
        fill = int((gaps >> b).sum())
        size = cost(b, pos, gaps, fill)
        if best is None or size < best[0]:
            best = (size, b)
    return best[1]


def _best_plain_bits(flat: np.ndarray, k: int) -> int:
    return best_width(flat, lambda b, pos, gaps, fill: (pos.size + fill) * (b + value_bits(k + (fill > 0))))


def csr_encode(
    indices: np.ndarray,
    shape: object,
    codebook: np.ndarray,
    *,
    index_bits: int | str = 5,
    k: int | None = None,
) -> bytes:
    """Encode a pruned + clustered layer as plain CSR with relative indices (module docstring).

    Args:
        indices: integer array, -1 for a zero weight, else a cluster index in [0, k).
        shape: the layer's shape (``indices.size`` must match; ``indices`` may be any shape).
        codebook: the k float32 centroids.
        index_bits: bits per relative index (Han et al.: 5 for FC, 8 for conv), or "auto" for
            the width giving the smallest record.
        k: number of clusters; defaults to ``len(codebook)`` and must equal it.

    Returns:
        The record bytes.

    Raises:
        InputError: invalid arguments.
    """
    flat, shape_t, codebook, k = check_layer(indices, shape, codebook, k)
    b = _best_plain_bits(flat, k) if index_bits == "auto" else _check_index_bits(index_bits)
    ent = layer_entries(flat, shape_t, k, b)
    vb = value_bits(ent.value_alphabet)
    return write_header(MAGIC_CSR, ent, codebook) + pack_fixed(ent.gaps, b) + pack_fixed(ent.values, vb)


def csr_decode(
    data: bytes, *, max_positions: int = DEFAULT_MAX_POSITIONS
) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Decode a plain CSR record.

    Returns:
        ``(indices, shape, codebook)``: an int16 array of ``shape`` (-1 for zero weights, else
        the cluster index), the shape tuple, and the float32 codebook. Use
        :func:`dense_weights` for the float32 weight matrix.

    Raises:
        FormatError (subclasses): bad magic/version, truncated or corrupt data, a layer larger
            than ``max_positions``.
    """
    r = Reader(data, "CSR record")
    h = read_header(r, MAGIC_CSR, max_positions)
    vb = value_bits(h.value_alphabet)
    idx_bytes = packed_size(h.entries, h.index_bits)
    gaps = unpack_fixed(r.take(idx_bytes, "index stream"), h.entries, h.index_bits, "CSR index stream")
    values = unpack_fixed(r.rest(), h.entries, vb, "CSR value stream")
    return rebuild(h, gaps, values, "CSR record"), h.shape, h.codebook


def dense_weights(indices: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Return the float32 weights of a layer: ``codebook[i]`` where ``i >= 0``, else 0."""
    indices = np.asarray(indices)
    codebook = np.asarray(codebook, dtype=np.float32)
    out = np.zeros(indices.shape, dtype=np.float32)
    mask = indices >= 0
    out[mask] = codebook[indices[mask]]
    return out
