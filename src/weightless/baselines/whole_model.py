"""Deep Compression for a whole model: every tensor as Han et al. would ship it (numpy only).

On the same simplification as a Weightless file: each clustered tensor (a filter layer's true
indices, a losslessly stored layer, a clustered bias) is CSR + Huffman coded with the published
index width (5 bits FC, 8 bits conv) or the best width, whichever is smaller, unless storing it
dense is smaller still (float32, or float16 when every value is exact in float16); every other tensor is dense at its own dtype. Sizes are lengths
of real bytes decoded back and checked. No container is added: the sum of the payloads is a
lower bound on a Deep Compression file, which makes the comparison conservative for Weightless.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .deep_compression import dc_decode, dc_encode

__all__ = ["dc_tensor_bytes", "dc_whole_model"]


def dc_tensor_bytes(indices: np.ndarray, codebook: np.ndarray) -> dict[str, Any]:
    """Deep Compression bytes of one clustered tensor (``indices`` -1 = zero).

    Returns:
        ``{"bytes": int, "how": "csr_huffman" | "csr_huffman_best" | "dense" | "dense_float16"}``,
        the smallest.

    Raises:
        RuntimeError: a record did not decode back (a bug).
    """
    idx = np.asarray(indices)
    cb = np.asarray(codebook, dtype=np.float32)
    with np.errstate(over="ignore"):  # values exact in float16 would be shipped in 2 bytes, as ours are
        half = bool(np.array_equal(cb.astype(np.float16).astype(np.float32), cb))
    dense = (2 if half else 4) * int(idx.size)
    flat = idx.reshape(-1, idx.shape[-1]) if idx.ndim > 2 else idx.reshape(1, -1) if idx.ndim < 2 else idx
    conv = idx.ndim > 2
    best = {"bytes": dense, "how": "dense_float16" if half else "dense"}
    for how, bits in (("csr_huffman", 8 if conv else 5), ("csr_huffman_best", "auto")):
        data = dc_encode(flat, flat.shape, cb, index_bits=bits)
        if not np.array_equal(np.asarray(dc_decode(data)[0]).reshape(flat.shape), flat):
            raise RuntimeError(f"{how} did not round-trip")  # a bug, not a user error
        if len(data) < best["bytes"]:
            best = {"bytes": len(data), "how": how}
    return best


def dc_whole_model(tensors: Mapping[str, Any], true_indices: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Deep Compression sizes of every tensor of a compressed model.

    Args:
        tensors: what :func:`weightless.save` takes (``CompressResult.tensors``): filter layers
            (:class:`~weightless.io.files.EncodedLayer`), :class:`~weightless.io.clustered.Clustered`
            tensors and plain arrays / torch tensors.
        true_indices: name -> the true cluster indices of each filter layer (no false positives).

    Returns:
        ``{"bytes": total, "tensors": {name: {"bytes", "how"}}}``.
    """
    from ..io.files import EncodedLayer, tensor_to_numpy
    from ..io.clustered import Clustered

    out: dict[str, dict[str, Any]] = {}
    for name, v in tensors.items():
        if isinstance(v, EncodedLayer):
            out[name] = dc_tensor_bytes(np.asarray(true_indices[name]).reshape(v.shape), v.codebook)
        elif isinstance(v, Clustered):
            out[name] = dc_tensor_bytes(np.asarray(v.indices), np.asarray(v.codebook, dtype=np.float32))
        else:
            a, _ = tensor_to_numpy(name, v)
            out[name] = {"bytes": int(a.nbytes), "how": "dense"}
    return {"bytes": sum(t["bytes"] for t in out.values()), "tensors": out}
