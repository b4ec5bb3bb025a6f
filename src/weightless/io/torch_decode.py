"""Optional PyTorch decode path: filters decoded straight into ``torch.Tensor`` on any device.

torch is imported inside the functions that use it, so importing this module (as ``load``
does) does not import torch. For the paper construction the whole
decode (the block -> shard hash, the key hash, three table lookups and the codebook) runs as
torch integer operations on the target device, in steps of :data:`STEP` positions, so a layer
goes to a GPU without a host copy of the dense weights; 64-bit unsigned arithmetic is done in
int64 (wrapping multiplication and XOR give the same bits; right shifts are made logical by
masking), so the weights are bit-identical to :meth:`BloomierFilter.reconstruct`. Other
constructions decode on the host (numba or numpy) into a tensor that is then moved.

Usage::

    from weightless.io.torch_decode import load_tensors
    state = load_tensors("m.wl", device="cuda")   # dict of tensors on the GPU
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..container import Record, read_container
from ..errors import InputError
from ..filters.filter import BloomierFilter
from ..filters.hashing import seed_word
from ..filters.paper import MIX
from ..filters.sharding import SHARD_SALT
from .limits import check_records
from .records import decode_filter_of, decode_record

if TYPE_CHECKING:
    import torch

__all__ = ["reconstruct_tensor", "reconstruct_tensor_torch_ops", "record_tensor", "load_tensors", "STEP"]

STEP = 1 << 22
"""Positions decoded per step of the device path (bounds its temporaries to ~200 MiB)."""

_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def _s64(v: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 ``x`` by ``s`` (1 <= s <= 63)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _fmix(x: torch.Tensor) -> torch.Tensor:
    z = x ^ _shr(x, 30)
    z = z * _s64(_M1)
    z = z ^ _shr(z, 27)
    z = z * _s64(_M2)
    return z ^ _shr(z, 31)


def _reduce(u32: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
    """``(u32 * n) >> 32`` for ``u32`` and ``n`` below 2**32 (int64 tensors)."""
    return _shr(u32 * n, 32)


def _paper_device(f: BloomierFilter, lut: torch.Tensor, out: torch.Tensor, step: int) -> None:
    import torch

    dev = out.device
    S = len(f.shards)
    # every shard's cells back to back, then one zero cell: a shard without cells (m = 0) looks
    # its three cells up there (its raw word is then the mask, as in the host kernels)
    cells = torch.from_numpy(np.concatenate([s.cells.astype(np.int32) for s in f.shards] + [np.zeros(1, np.int32)])).to(dev)
    ms = torch.tensor([s.m for s in f.shards], dtype=torch.int64, device=dev)
    offs = torch.zeros(S, dtype=torch.int64, device=dev)
    offs[1:] = torch.cumsum(ms, 0)[:-1]
    sws = torch.tensor([_s64(int(seed_word(s.seed))) for s in f.shards], dtype=torch.int64, device=dev)
    ssw = _s64(int(seed_word((f.seed ^ SHARD_SALT) & _MASK64)))
    tmask = (1 << f.t) - 1
    for lo in range(0, f.size, step):
        hi = min(f.size, lo + step)
        p = torch.arange(lo, hi, dtype=torch.int64, device=dev)
        if S == 1:
            s = torch.zeros_like(p)
        else:
            hb = _fmix((p >> f.block_bits) + ssw)
            s = _reduce(_shr(hb, 32), S)
        m = ms[s]
        q = m // 3
        z = _fmix(p + sws[s])
        hz = _shr(z, 32)
        a = _reduce(hz, q)
        b = _reduce(z & 0xFFFFFFFF, q) + q
        c = _reduce(_shr(z * _s64(MIX), 32), m - 2 * q) + 2 * q
        o = offs[s]
        raw = cells[o + a] ^ cells[o + b] ^ cells[o + c] ^ (z & tmask).to(torch.int32)
        raw = torch.where(m == 0, torch.full_like(raw, tmask), raw)
        out[lo:hi] = lut[raw.long()]


def reconstruct_tensor(
    f: BloomierFilter,
    shape: Any,
    codebook: Any,
    *,
    device: str | torch.device = "cpu",
    step: int = STEP,
    threads: int | None = None,
) -> torch.Tensor:
    """Decode a filter to a float32 tensor of ``shape`` on ``device``, bit-identical to
    ``f.reconstruct(shape, codebook)``.

    The paper construction decodes on ``device`` itself (torch integer ops, ``step``
    positions at a time) when it is not the CPU; on the CPU, and for other constructions, the
    host kernels (``threads`` threads) write straight into the tensor's memory, which is then
    moved to ``device``.

    Raises:
        InputError: wrong shape or codebook length, or ``step`` < 1.
    """
    import torch

    shp = f._check_shape(shape)
    lut_np = f.codebook_lut(codebook)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InputError(f"step must be a positive integer, got {step!r}")
    dev = torch.device(device)
    if dev.type != "cpu" and f.construction == "paper":
        out = torch.empty(math.prod(shp), dtype=torch.float32, device=dev)
        _paper_device(f, torch.from_numpy(lut_np).to(dev), out, step)
        return out.reshape(shp)
    host = torch.empty(shp, dtype=torch.float32, pin_memory=dev.type == "cuda" and torch.cuda.is_available())
    f.reconstruct(shp, codebook, out=host.numpy(), threads=threads)
    return host if dev.type == "cpu" else host.to(dev, non_blocking=False)


def reconstruct_tensor_torch_ops(f: BloomierFilter, shape: Any, codebook: Any, *, device: str = "cpu", step: int = STEP) -> torch.Tensor:
    """The device path of :func:`reconstruct_tensor` forced on any device (also the CPU, for
    testing it without a GPU); paper construction only.

    Raises:
        InputError: another construction, or bad shape / codebook.
    """
    import torch

    if f.construction != "paper":
        raise InputError(f"the torch-ops decode supports the paper construction, not {f.construction!r}")
    shp = f._check_shape(shape)
    out = torch.empty(math.prod(shp), dtype=torch.float32, device=torch.device(device))
    _paper_device(f, torch.from_numpy(f.codebook_lut(codebook)).to(out.device), out, step)
    return out.reshape(shp)


def record_tensor(rec: Record, limits: Any = None) -> torch.Tensor:
    """The tensor of one record; bfloat16 is viewed from its raw words, bit for bit."""
    import torch

    if rec.dtype == "bfloat16":
        return torch.from_numpy(decode_record(rec, limits, bfloat16="words").view(np.int16)).view(torch.bfloat16)
    a = decode_record(rec, limits)
    # decoded arrays are fresh, owned and writeable: share their memory instead of copying
    return torch.from_numpy(a if a.flags.writeable else np.array(a, copy=True))


def load_tensors(path: str | os.PathLike, *, device: str | torch.device = "cpu", threads: int | None = None,
                 limits: Any = None) -> dict[str, torch.Tensor]:
    """Read a ``.wl`` file and return ``{name: tensor}`` on ``device``, in the saved dtypes;
    filter layers are decoded by :func:`reconstruct_tensor`, so the weights equal
    ``weightless.load``'s.

    Raises:
        LimitError: the file declares more than ``limits`` allow (nothing was decoded).
        FormatError: the file is corrupt, truncated or of an unsupported version.
    """
    import torch

    dev = torch.device(device)
    records = read_container(path).records
    check_records(records, limits)
    out = {}
    for rec in records:
        if rec.encoding == "bloomier":
            f, cb = decode_filter_of(rec, limits)
            t = reconstruct_tensor(f, rec.shape, cb, device=dev, threads=threads)
            out[rec.name] = t.to(getattr(torch, rec.dtype))  # the codebook is exact in the record's dtype
        else:
            out[rec.name] = record_tensor(rec, limits).to(dev)
    return out
