"""Size accounting of one layer from real bytes: dense, CSR, CSR + Huffman, Weightless.

Every size in :func:`layer_sizes` is ``len()`` of a buffer that was encoded, decoded back and
compared with what was encoded; none is a formula. Each record carries the layer's shape and
codebook (float32), so sizes are comparable:

- ``dense``: the float32 weights, row-major (the 32-bit baseline of every compression factor);
- ``csr``: plain CSR, relative indices of 5 (FC) or 8 (conv) bits (Han et al. 2016);
- ``csr_huffman``: the same entries Huffman-coded, code tables included (Deep Compression);
- ``csr_huffman_auto``: CSR + Huffman with the index width chosen per layer (stronger baseline);
- ``weightless_raw``: Weightless layer record with the filter's raw tables;
- ``weightless_entropy``: the same with each table entropy-coded (constriction ANS).

Weightless layer record: varint ndim, varint dims, varint k, k float32 codebook, then the
filter bytes (``BloomierFilter.to_bytes()``) or the entropy-coded filter record
(:mod:`weightless.entropy.filter_record`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .baselines import csr_decode, csr_encode, dc_decode, dc_encode, dense_weights
from .baselines.csr import check_layer
from .entropy._bits import Reader, write_varint
from .entropy.filter_record import decode_filter, encode_filter
from .entropy.table_coder import cells_kind, empirical_entropy_bits, encode_cells
from .errors import FormatError, InputError, WeightlessError

if TYPE_CHECKING:  # pragma: no cover
    from .filters import BloomierFilter

__all__ = ["layer_sizes", "information_bound_bytes", "weightless_layer_bytes", "weightless_layer_decode"]

_FORMATS = ("dense", "csr", "csr_huffman", "csr_huffman_auto", "weightless_raw", "weightless_entropy")


def information_bound_bytes(indices: np.ndarray, k: int) -> float:
    """Return ``(N H(p) + n H(values)) / 8``: the information bound of positions plus values
    for a layer with ``n`` non-zeros among ``N`` positions (p = n/N, empirical value entropy)."""
    flat = np.asarray(indices).reshape(-1)
    big_n = flat.size
    vals = flat[flat >= 0].astype(np.int64)
    n = vals.size
    if big_n == 0:
        return 0.0
    p = n / big_n
    hp = 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    hv = 0.0
    if n:
        c = np.bincount(vals, minlength=k)
        c = c[c > 0] / n
        hv = float(-(c * np.log2(c)).sum())
    return (big_n * hp + n * hv) / 8


def _head(shape: tuple[int, ...], codebook: np.ndarray) -> bytes:
    return b"".join(
        [write_varint(len(shape))] + [write_varint(d) for d in shape]
        + [write_varint(codebook.size), codebook.astype("<f4").tobytes()]
    )


def weightless_layer_bytes(f: "BloomierFilter", shape: tuple[int, ...], codebook: np.ndarray, *, entropy: bool) -> bytes:
    """Serialize a Weightless layer: shape, codebook, then the filter (raw or entropy-coded)."""
    body = encode_filter(f) if entropy else f.to_bytes()
    return _head(tuple(shape), np.asarray(codebook, dtype=np.float32)) + body


def weightless_layer_decode(
    data: bytes, *, entropy: bool
) -> tuple["BloomierFilter", tuple[int, ...], np.ndarray]:
    """Inverse of :func:`weightless_layer_bytes`: return ``(filter, shape, codebook)``.

    Raises:
        FormatError (subclasses): corrupt or truncated data.
    """
    from .filters import BloomierFilter

    r = Reader(data, "weightless layer")
    ndim = r.varint("ndim", 8)
    shape = tuple(r.varint(f"dim {i}", 1 << 62) for i in range(ndim))
    k = r.varint("k", 1 << 15)
    codebook = np.frombuffer(r.take(4 * k, "codebook"), dtype="<f4").astype(np.float32)
    rest = r.rest()
    f = decode_filter(rest) if entropy else BloomierFilter.from_bytes(rest)
    if f.size != math.prod(shape) or f.k != k:
        raise FormatError("weightless layer: the filter's size or k disagrees with the layer header")
    return f, shape, codebook


def _same_codebook(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))


def _checked(name: str, ok: bool) -> None:
    if not ok:  # a bug in an encoder, never a user error
        raise WeightlessError(f"internal error: {name} decoded to a different layer; please report")


def layer_sizes(
    indices: np.ndarray,
    codebook: np.ndarray,
    *,
    k: int,
    t: int,
    conv: bool,
    seed: int = 0,
    construction: str = "paper",
    shards: int = 1,
    c: float | None = None,
) -> dict[str, Any]:
    """Encode one pruned + clustered layer in every format, decode each back, check it.

    Args:
        indices: integer array of the layer's shape, -1 for a zero weight, else the cluster.
        codebook: the k float32 centroids.
        k: number of clusters (must equal ``len(codebook)``).
        t: bits per Bloomier cell (``ceil(log2 k) < t <= 16``).
        conv: True for a convolutional layer (8-bit CSR indices), False for FC (5 bits).
        seed, construction, shards, c: passed to ``weightless.filters.build``.

    Returns:
        A dict with ``shape``, ``positions`` (N), ``nonzeros`` (n), ``k``, ``t``,
        ``bytes``: {format: size}, ``factor``: {format: dense bytes / size},
        ``information_bound_bytes``, ``csr_index_bits``, ``csr_huffman_auto_index_bits``,
        ``cells``: per-shard {m, kind, bytes, zero_fraction, entropy_bytes (plug-in entropy)},
        ``seconds``: {format: {"encode": s, "decode": s}} measured here; "filter_build" is the
        Bloomier construction, "weightless_*" encode/decode time the serialization given the
        built filter (decode includes parsing and CRC), "weightless_reconstruct" the query of
        every position (``reconstruct_indices``), which CSR decoding does as part of decode.

    Raises:
        InputError: invalid layer or parameters (from the encoders or ``build``).
        ConstructionError: the filter could not be built.
    """
    from .filters import build

    flat, shape, codebook, k = check_layer(indices, np.asarray(indices).shape, codebook, k)
    if flat.size == 0:
        raise InputError(f"layer_sizes needs a layer with at least one position, got shape {shape}")
    idx = np.asarray(indices).reshape(shape)
    sizes: dict[str, int] = {"dense": _dense_bytes(idx, codebook)}
    seconds: dict[str, dict[str, float]] = {}
    ib = 8 if conv else 5
    auto_ib = _csr_sizes(idx, flat, shape, codebook, k, ib, sizes, seconds)

    keys = np.flatnonzero(flat >= 0)
    t0 = time.perf_counter()
    f = build(keys, flat[keys], k=k, t=t, size=flat.size, seed=seed,
              construction=construction, shards=shards, c=c)
    seconds["filter_build"] = {"encode": time.perf_counter() - t0}
    _weightless_sizes(f, shape, codebook, sizes, seconds)
    return {
        "shape": list(shape),
        "positions": int(flat.size),
        "nonzeros": int(keys.size),
        "k": k,
        "t": t,
        "conv": bool(conv),
        "construction": construction,
        "csr_index_bits": ib,
        "csr_huffman_auto_index_bits": auto_ib,
        "information_bound_bytes": information_bound_bytes(idx, k),
        "bytes": sizes,
        "factor": {name: sizes["dense"] / sizes[name] for name in _FORMATS},
        "cells": _cells_info(f, t),
        "seconds": seconds,
    }


def _dense_bytes(idx: np.ndarray, codebook: np.ndarray) -> int:
    """Size of the float32 weights, row-major (checked against the weights)."""
    weights = dense_weights(idx, codebook)
    dense = weights.astype("<f4").tobytes()
    _checked("dense", np.array_equal(np.frombuffer(dense, dtype="<u4"),
                                     weights.astype("<f4").view("<u4").reshape(-1)))
    return len(dense)


def _csr_sizes(idx: np.ndarray, flat: np.ndarray, shape: tuple[int, ...], codebook: np.ndarray, k: int, ib: int,
               sizes: dict[str, int], seconds: dict[str, dict[str, float]]) -> int:
    """Encode, decode and check the CSR formats (``ib``-bit indices; the auto width searched
    here); add their sizes and times to ``sizes`` / ``seconds``. Return the auto index width."""
    from .baselines.deep_compression import best_index_bits

    t0 = time.perf_counter()
    auto_ib = best_index_bits(flat, k)
    auto_search = time.perf_counter() - t0
    for name, enc, dec, bits in (
        ("csr", csr_encode, csr_decode, ib),
        ("csr_huffman", dc_encode, dc_decode, ib),
        ("csr_huffman_auto", dc_encode, dc_decode, auto_ib),
    ):
        t0 = time.perf_counter()
        data = enc(idx, shape, codebook, index_bits=bits)
        t1 = time.perf_counter()
        out, oshape, ocb = dec(data)
        t2 = time.perf_counter()
        seconds[name] = {"encode": t1 - t0, "decode": t2 - t1}
        _checked(name, oshape == shape and np.array_equal(out, idx) and _same_codebook(ocb, codebook))
        sizes[name] = len(data)
    seconds["csr_huffman_auto"]["encode"] += auto_search
    return auto_ib


def _weightless_sizes(f: "BloomierFilter", shape: tuple[int, ...], codebook: np.ndarray, sizes: dict[str, int],
                      seconds: dict[str, dict[str, float]]) -> None:
    """Serialize the built filter raw and entropy-coded, parse each back and check it, then
    time the query of every position; add the sizes and times to ``sizes`` / ``seconds``."""
    from .filters import BloomierFilter

    for name, ent in (("weightless_raw", False), ("weightless_entropy", True)):
        t0 = time.perf_counter()
        data = weightless_layer_bytes(f, shape, codebook, entropy=ent)
        t1 = time.perf_counter()
        g, oshape, ocb = weightless_layer_decode(data, entropy=ent)
        seconds[name] = {"encode": t1 - t0, "decode": time.perf_counter() - t1}
        _checked(name, oshape == shape and _same_codebook(ocb, codebook)
                 and isinstance(g, BloomierFilter) and g.to_bytes() == f.to_bytes())
        sizes[name] = len(data)
    t0 = time.perf_counter()
    g.reconstruct_indices(shape)  # lossy: equals idx except at false positives
    seconds["weightless_reconstruct"] = {"decode": time.perf_counter() - t0}


def _cells_info(f: "BloomierFilter", t: int) -> list[dict[str, Any]]:
    """Per shard of ``f``: cells, the cell record's kind and size, zero fraction, plug-in entropy."""
    out = []
    for s in f.shards:
        rec = encode_cells(s.cells, t)
        out.append({
            "m": int(s.m), "kind": cells_kind(rec), "bytes": len(rec),
            "zero_fraction": float(np.mean(s.cells == 0)) if s.m else 0.0,
            "entropy_bytes": empirical_entropy_bits(s.cells, t) / 8,
        })
    return out
