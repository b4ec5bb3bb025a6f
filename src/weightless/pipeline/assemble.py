"""The file assembly of Algorithm 1: from the encoded model to the tensors :func:`weightless.save`
writes, such that the file decodes to exactly the weights that were evaluated."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["set_clustered", "assemble", "lossless_report"]


def set_clustered(model: Any, name: str, indices: np.ndarray, codebook: np.ndarray) -> None:
    """Put ``codebook[indices]`` (0 where ``indices`` < 0) into parameter ``name`` of ``model``."""
    import torch

    from ..simplify.magnitude import get_param

    p = get_param(model, name)
    w = np.where(indices >= 0, np.asarray(codebook, np.float32)[np.maximum(indices, 0)], np.float32(0))
    with torch.no_grad():
        p.copy_(torch.from_numpy(w).to(p.device, p.dtype))


def assemble(model: Any, encoded: dict[str, tuple[np.ndarray, np.ndarray]], rest: dict[str, tuple[np.ndarray, np.ndarray]],
             filters: dict[str, Any], round_codebooks: bool) -> dict[str, Any]:
    """The tensors of the file, in the model's order: an :class:`~weightless.io.files.EncodedLayer`
    for each layer with a filter, a :class:`~weightless.io.clustered.Clustered` value for each
    clustered tensor stored losslessly (codebooks rounded to float16 when ``round_codebooks``
    and they fit), every other state entry as the model holds it. ``model`` is updated in
    place to hold exactly those values (signed zeros included).

    Raises:
        RuntimeError: a layer does not match its filter (a bug, never a user error).
    """
    import torch

    from ..io.clustered import Clustered
    from ..io.files import EncodedLayer
    from ..io.records import _round_to
    from ..simplify.magnitude import get_param

    tensors: dict[str, Any] = {}
    for n, (idx, cb) in {**encoded, **rest}.items():
        p = get_param(model, n)
        dtype = str(p.dtype).removeprefix("torch.")
        if filters.get(n) is not None:
            value = filters[n].reconstruct(tuple(p.shape), cb)
            tensors[n] = EncodedLayer(filters[n], cb, tuple(p.shape), dtype=dtype)
            if not np.array_equal(p.detach().cpu().numpy(), value):
                raise RuntimeError(f"encoded layer {n} does not match its filter")
        else:
            cb = _round_to(np.asarray(cb, np.float32), dtype)
            if round_codebooks and dtype == "float32" and np.all(np.abs(cb) < 65504):
                cb = cb.astype(np.float16).astype(np.float32)  # stored in 2 bytes a value
            c = Clustered(idx, cb.astype(np.float64), dtype)
            value = c.values()
            tensors[n] = c
        with torch.no_grad():
            p.copy_(torch.from_numpy(value).to(p.device, p.dtype))
    for n, p in model.state_dict().items():
        if n not in tensors:
            tensors[n] = p.detach().cpu().clone()  # any dtype, 0-d included, exactly as the model holds it
    return {n: tensors[n] for n in model.state_dict()}


def lossless_report(report_type: Any, name: str, lr: Any, indices: np.ndarray, codebook: np.ndarray, *,
                    backed_off: bool) -> Any:
    """The layer report (``report_type``, a LayerReport) of layer ``name`` stored losslessly
    without a decision of its own (``lr``: its simplified layer)."""
    from .whole import lossless_bytes

    size = lossless_bytes(indices, codebook)
    return report_type(
        name=name, paper_name=lr.paper_name, shape=tuple(indices.shape), nonzero=int((indices >= 0).sum()), k=int(lr.k),
        t=0, auto_t=True, t_within_tolerance=True, construction="lossless", seed=0, m=0, false_positives=0,
        filter_bytes=size, build_seconds=0.0, val_error_encoded=None, val_error_retrained=None,
        lossless_bytes=size, backed_off=backed_off)
