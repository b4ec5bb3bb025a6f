"""Whole-model figures of a written ``.wl`` file: every tensor's encoding and bytes, the
container overhead, and the whole-model Deep Compression baseline on the same simplification
with its own test error (used by ``weightless compress``, the own-model path and ``reproduce``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

__all__ = ["dc_model", "whole_model_report", "format_whole"]


def dc_model(res: Any) -> Any:
    """The model Deep Compression would ship: ``res.model`` with every filter layer holding its
    true clustered weights (no false positives, the final codebook)."""
    import torch

    from weightless.io.files import EncodedLayer
    from weightless.simplify.magnitude import get_param

    m = copy.deepcopy(res.model)
    for name, v in res.tensors.items():
        if isinstance(v, EncodedLayer):
            idx = np.asarray(res.indices[name]).reshape(v.shape)
            w = np.where(idx >= 0, np.asarray(v.codebook, np.float32)[np.maximum(idx, 0)], np.float32(0))
            p = get_param(m, name)
            with torch.no_grad():
                p.copy_(torch.from_numpy(w).to(p.device, p.dtype))
    return m


def whole_model_report(res: Any, path: str | os.PathLike, task: Any, decoded_errors: np.ndarray | None) -> dict[str, Any]:
    """Whole-model figures of ``path`` (the file written from ``res.tensors``).

    Args:
        res: the :class:`~weightless.pipeline.encode.CompressResult`.
        task: the task (its test split scores the Deep Compression model; None: not scored).
        decoded_errors: per-example test errors of the model decoded from ``path`` (or None).

    Returns:
        JSON-ready: file and dense bytes, ratio, container overhead, per tensor (encoding,
        bytes, Deep Compression bytes and how), Deep Compression's whole-model bytes, ratio and
        test error, and the paired test-error difference Weightless - Deep Compression (95% CI).
    """
    from weightless.io import files as api
    from weightless.baselines.whole_model import dc_whole_model
    from weightless.training import per_example
    from weightless.pipeline.contract import paired_ci

    summary = api.inspect(path)
    dc = dc_whole_model(res.tensors, res.indices)
    dense = sum(int(v.numel()) * 4 for v in res.model.state_dict().values() if v.dtype.is_floating_point)
    dense += sum(int(v.numel()) * v.element_size() for v in res.model.state_dict().values() if not v.dtype.is_floating_point)
    dc_err = dc_ci = wl_err = None
    if decoded_errors is not None and getattr(task, "test", None) is not None:
        dc_errs = per_example(dc_model(res), task, "test")[0]
        dc_err = 100.0 * float(dc_errs.mean())
        wl_err = 100.0 * float(np.mean(decoded_errors))
        dc_ci = paired_ci(np.asarray(decoded_errors), dc_errs)
    tensors = [{"name": r["name"], "encoding": r["encoding"], "shape": r["shape"], "bytes": r["payload_bytes"],
                "dc_bytes": dc["tensors"][r["name"]]["bytes"], "dc_how": dc["tensors"][r["name"]]["how"]}
               for r in summary["records"]]
    return {
        "file_bytes": summary["file_bytes"],
        "dense_float32_bytes": dense,
        "factor": round(dense / summary["file_bytes"], 2),
        "overhead_bytes": summary["overhead_bytes"],
        "overhead_percent": summary["overhead_percent"],
        "test_error": wl_err,
        "dc_bytes": dc["bytes"],
        "dc_factor": round(dense / dc["bytes"], 2),
        "dc_test_error": dc_err,
        "weightless_minus_dc_test": dc_ci,
        "tensors": tensors,
    }


def format_whole(w: dict[str, Any]) -> str:
    """Lines for a terminal: per tensor, then the whole file against Deep Compression."""
    head = f"{'tensor':<16}{'shape':<14}{'encoding':<10}{'WL bytes':>10}{'DC bytes':>10}  DC as"
    lines = [head, "-" * len(head)]
    for t in w["tensors"]:
        lines.append(f"{t['name']:<16}{'x'.join(map(str, t['shape'])) or '()':<14}{t['encoding']:<10}{t['bytes']:>10}"
                     f"{t['dc_bytes']:>10}  {t['dc_how']}")
    err = "" if w["test_error"] is None else f", test error {w['test_error']:.2f}%"
    dc_err = "" if w["dc_test_error"] is None else f", test error {w['dc_test_error']:.2f}%"
    lines.append(f"whole file: {w['file_bytes']} bytes = {w['factor']}x the float32 model{err}; container overhead "
                 f"{w['overhead_bytes']} bytes ({w['overhead_percent']}%)")
    lines.append(f"Deep Compression, same simplification: {w['dc_bytes']} bytes = {w['dc_factor']}x{dc_err}")
    ci = w["weightless_minus_dc_test"]
    if ci is not None:
        lines.append(f"test error Weightless - Deep Compression: {ci['difference']:+.2f} pp "
                     f"(95% CI {ci['ci95_low']:+.2f} .. {ci['ci95_high']:+.2f})")
    return "\n".join(lines)
