"""Resource limits for decoding untrusted ``.wl`` files, checked from headers before any work.

A ``.wl`` file is small but may declare huge tensors (a 300-byte filter record can claim 2**40
positions) or huge filter tables (an entropy-coded table of ``2**26`` zero cells takes a few
bytes). :func:`check_records` reads only the container header fields (shape, dtype) and each
filter record's fixed-size header (shard count and per-shard cell counts) and raises
:class:`~weightless.errors.LimitError` (a FormatError) naming the limit that a file exceeds,
before a single decoded element or cell is allocated. With the limits respected, decoding
takes time and memory proportional to the limits (see docs/FORMAT.md, "Limits").

The defaults fit real models with room to spare (VGG-16's largest layer has 2**26.6 weights,
LLaMA-70B's largest tensor 2**30 - 2**24); pass ``limits=Limits(...)`` to
:func:`weightless.load`, :func:`weightless.load_arrays` or :func:`weightless.inspect` to raise
or lower them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from typing import Iterable

import numpy as np

from ..errors import FieldError, InputError, LimitError, TruncatedError

__all__ = ["Limits", "DEFAULT_LIMITS", "check_records", "filter_cells", "DTYPE_BYTES", "SHARD_SLACK_CELLS",
           "CELLS_ALLOWANCE", "decoded_bytes"]

#: Bytes per decoded element of every dtype a record may declare (bfloat16 decodes to float32
#: in numpy; Bloomier layers are decoded as float32 first, so they count at least 4).
DTYPE_BYTES = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 4,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1,
}
#: Cells a filter may have beyond ``max_cells_per_element * size``, per shard (small tables get
#: 8 spare cells; constructions need at least 3).
SHARD_SLACK_CELLS = 64
#: Cells any filter record may have beyond ``max_cells_per_byte`` per payload byte.
CELLS_ALLOWANCE = 1 << 16

_HEAD = struct.Struct("<4sBBBBIIQQQI")  # the filter header (weightless.filters.filter)
_SHARD_DTYPE = np.dtype([("n", "<u4"), ("m", "<u4"), ("seed", "<u8"), ("aux", "<u4")])
_MAGICS = {b"WLBF": 0, b"WLBE": 5}  # raw filter; entropy-coded (magic + version byte first)


@dataclass(frozen=True)
class Limits:
    """Caps on what decoding one file may allocate; every field is checked before decoding.

    Attributes:
        max_tensor_elements: elements of one decoded tensor (product of its shape).
        max_tensor_bytes: bytes of one decoded tensor (elements x dtype size).
        max_file_elements: elements of all decoded tensors of a file together.
        max_file_bytes: bytes of all decoded tensors of a file together.
        max_tensor_cells: filter cells of one tensor (sum over its shards); decoding holds
            about 12 bytes per cell at its peak.
        max_file_cells: filter cells of all tensors of a file together.
        max_shards: shards of one filter.
        max_cells_per_element: a filter may have at most ``max_cells_per_element * size +
            64 * shards`` cells (the writer's constructions use about 1.25 and 1.02 cells per
            key, and keys are at most the positions). This bounds decoding time by the output
            size: a table cannot be much larger than the tensor it decodes to.
        max_expansion: the decoded bytes of all tensors of a file may be at most
            ``max_expansion * P + expansion_allowance``, ``P`` the bytes of its records'
            payloads. Real files reach about 2,100 (a 0.1%-dense sparse layer), 4,600 (a
            0.1%-dense Bloomier layer) and 72 (VGG-16's FC-0 as a 4%-dense sparse record);
            a file far above that is all zeros or constants declared huge (a 57-byte file
            can declare 4 GiB). Raise it for a file you trust.
        expansion_allowance: decoded bytes a file may have beyond the expansion ratio (room
            for small all-zero or constant tensors: biases, norms).
        max_cells_per_byte: filter cells of one record may be at most ``max_cells_per_byte *
            payload bytes + 65536`` (real tables hold about 1 to 5 cells per byte: their
            nonzero cells are near-uniform; a table of zero cells costs almost nothing to
            store but as much as any other to decode).
    """

    max_tensor_elements: int = 1 << 30
    max_tensor_bytes: int = 1 << 32
    max_file_elements: int = 1 << 33
    max_file_bytes: int = 1 << 35
    max_tensor_cells: int = 1 << 28
    max_file_cells: int = 1 << 31
    max_shards: int = 1 << 14
    max_cells_per_element: int = 4
    max_expansion: int = 1 << 15
    expansion_allowance: int = 1 << 24
    max_cells_per_byte: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 0:
                raise InputError(f"Limits.{f.name} is {v!r}; expected a non-negative integer")
            object.__setattr__(self, f.name, int(v))

    @classmethod
    def scaled(cls, nbytes: int) -> "Limits":
        """Limits for decoding at most ``nbytes`` of tensors per file (and per tensor), with
        cell caps that keep the decoder's temporary memory within about the same amount."""
        nbytes = int(nbytes)
        return cls(
            max_tensor_elements=nbytes, max_tensor_bytes=nbytes,
            max_file_elements=nbytes, max_file_bytes=nbytes,
            max_tensor_cells=max(1, nbytes // 16), max_file_cells=max(1, nbytes // 16),
        )


#: The limits used when a caller passes none.
DEFAULT_LIMITS = Limits()


def _exceeds(name: str, value: int, limits: Limits, what: str) -> LimitError:
    cap = getattr(limits, name)
    return LimitError(
        f"{what} is {value}, above the limit {name} = {cap}; if the file is trusted, pass "
        f"limits=Limits({name}=...) with a larger value",
        limit=name,
    )


def filter_cells(payload: bytes, k: int) -> tuple[int, int, int, list[int]]:
    """Read a Bloomier record's filter header (after a codebook of ``k`` float32) without
    decoding anything; return ``(size, shards, total cells, cells per shard)``.

    Raises:
        TruncatedError / FieldError: the payload is too short or has no filter magic.
    """
    start = 4 * k
    magic = bytes(payload[start : start + 4])
    if magic not in _MAGICS:
        raise FieldError(f"no filter record at byte {start} (found {magic!r}); params.k or the payload is corrupt")
    head = start + _MAGICS[magic]
    if len(payload) < head + _HEAD.size:
        raise TruncatedError(f"filter header needs {head + _HEAD.size} bytes, the payload has {len(payload)}")
    fields_ = _HEAD.unpack_from(payload, head)
    shards, size = int(fields_[6]), int(fields_[7])
    end = head + _HEAD.size + _SHARD_DTYPE.itemsize * shards
    if shards < 1:
        raise FieldError(f"filter declares {shards} shards; expected at least 1")
    if len(payload) < end:
        raise TruncatedError(f"filter declares {shards} shards whose records end at byte {end}, "
                             f"the payload has {len(payload)}")
    recs = np.frombuffer(payload, dtype=_SHARD_DTYPE, count=shards, offset=head + _HEAD.size)
    per = [int(v) for v in recs["m"]]
    return size, shards, sum(per), per


def check_records(records: Iterable, limits: Limits | None = None) -> None:
    """Check decoded sizes of ``records`` (container records, one file) against ``limits``.

    Reads only header fields: each record's shape and dtype, and for ``"bloomier"`` records the
    filter header's shard count and cell counts. Nothing is decoded or allocated.

    Raises:
        LimitError: a limit is exceeded (the message and ``.limit`` name it).
        FieldError / TruncatedError: a filter header is malformed (no room for it).
        InputError: ``limits`` is not a :class:`Limits`.
    """
    lim = DEFAULT_LIMITS if limits is None else limits
    if not isinstance(lim, Limits):
        raise InputError(f"limits is a {type(lim).__name__}; expected weightless.Limits")
    file_elems = file_bytes = file_cells = payload_bytes = 0
    for rec in records:
        payload_bytes += len(rec.payload)
        numel = math.prod(rec.shape)
        per = DTYPE_BYTES.get(rec.dtype, 8)
        nbytes = numel * (max(per, 4) if rec.encoding == "bloomier" else per)
        where = f"record {rec.name!r}"
        if numel > lim.max_tensor_elements:
            raise _exceeds("max_tensor_elements", numel, lim, f"{where}: the number of elements")
        if nbytes > lim.max_tensor_bytes:
            raise _exceeds("max_tensor_bytes", nbytes, lim, f"{where}: the decoded size in bytes")
        file_elems += numel
        file_bytes += nbytes
        if file_elems > lim.max_file_elements:
            raise _exceeds("max_file_elements", file_elems, lim, f"the elements of the records up to {rec.name!r}")
        if file_bytes > lim.max_file_bytes:
            raise _exceeds("max_file_bytes", file_bytes, lim, f"the decoded bytes of the records up to {rec.name!r}")
        if rec.encoding != "bloomier":
            continue
        k = rec.params.get("k")
        if type(k) is not int or not 1 <= k <= 65536:
            raise FieldError(f"{where}: params.k = {k!r}, expected an integer in [1, 65536]")
        try:
            size, shards, cells, _ = filter_cells(rec.payload, k)
        except (FieldError, TruncatedError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if shards > lim.max_shards:
            raise _exceeds("max_shards", shards, lim, f"{where}: the number of filter shards")
        if size != numel:
            raise FieldError(f"{where}: the filter covers {size} positions, shape {list(rec.shape)} has {numel}")
        if cells > lim.max_tensor_cells:
            raise _exceeds("max_tensor_cells", cells, lim, f"{where}: the number of filter cells")
        if cells > lim.max_cells_per_element * size + SHARD_SLACK_CELLS * shards:
            raise _exceeds(
                "max_cells_per_element", cells, lim,
                f"{where}: the number of filter cells for {size} positions and {shards} shards",
            )
        if cells > lim.max_cells_per_byte * len(rec.payload) + CELLS_ALLOWANCE:
            raise _exceeds(
                "max_cells_per_byte", cells, lim,
                f"{where}: the number of filter cells for a payload of {len(rec.payload)} bytes",
            )
        file_cells += cells
        if file_cells > lim.max_file_cells:
            raise _exceeds("max_file_cells", file_cells, lim, f"the filter cells of the records up to {rec.name!r}")
    cap = lim.max_expansion * payload_bytes + lim.expansion_allowance
    if file_bytes > cap:
        raise LimitError(
            f"the file's tensors decode to {file_bytes} bytes from {payload_bytes} bytes of payload, above "
            f"max_expansion * {payload_bytes} + expansion_allowance = {cap} (max_expansion = "
            f"{lim.max_expansion}); a tiny file declaring huge all-zero or constant tensors; if the file "
            "is trusted, pass limits=Limits(max_expansion=...) with a larger value",
            limit="max_expansion",
        )


def decoded_bytes(records: Iterable) -> tuple[int, int]:
    """``(decoded bytes, payload bytes)`` of ``records`` as :func:`check_records` counts them
    (the writer's check that default readers accept what it writes)."""
    total = payload = 0
    for rec in records:
        per = DTYPE_BYTES.get(rec.dtype, 8)
        total += math.prod(rec.shape) * (max(per, 4) if rec.encoding == "bloomier" else per)
        payload += len(rec.payload)
    return total, payload
