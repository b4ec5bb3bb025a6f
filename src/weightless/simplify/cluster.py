"""Weight sharing by 1-D k-means (Deep Compression, Han et al. 2016), with trained quantization.

:func:`kmeans_1d` is Lloyd's algorithm on sorted values: with sorted centroids, each cluster
is a contiguous run of the sorted data between midpoints, so one iteration is a binary search
plus prefix sums. Initialisations: ``"density"`` (centroids at evenly spaced quantiles of the
weights' CDF, the paper's choice), ``"linear"`` (evenly spaced between min and max) and
``"random"`` (Forgy: k distinct values drawn from the data). Only nonzero weights are clustered;
zeros stay zero. :func:`finetune_codebooks` trains the shared values with assignments fixed
(the gradient of a centroid is the sum of its members' gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import ConstructionError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from ..training.loop import DataLike, TrainConfig

__all__ = ["INITS", "kmeans_1d", "assign_nearest", "ClusteredLayer", "cluster_weight", "finetune_codebooks"]

INITS = ("density", "linear", "random")


def _init_centroids(xs: np.ndarray, k: int, init: str, seed: int) -> np.ndarray:
    """xs: sorted float64 values with at least k distinct entries."""
    if init == "density":
        c = np.quantile(xs, (np.arange(k) + 0.5) / k)
        if np.unique(c).size == k:
            return c
        u = np.unique(xs)
        return u[np.floor((np.arange(k) + 0.5) * u.size / k).astype(np.int64)]
    if init == "linear":
        return np.linspace(xs[0], xs[-1], k)
    u = np.unique(xs)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(u, size=k, replace=False))


def assign_nearest(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Return, for each value, the index of its nearest entry of the sorted ``codebook``.

    Ties (a value exactly between two centroids) go to the lower centroid.
    """
    c = np.asarray(codebook, dtype=np.float64)
    bounds = (c[:-1] + c[1:]) / 2.0
    return np.searchsorted(bounds, np.asarray(values, dtype=np.float64), side="left").astype(np.int64)


def _contiguous_codebook(xs: np.ndarray, k: int) -> np.ndarray:
    """Fallback when Lloyd's centroids collapse in float32 (near-equal values): split the sorted
    distinct values into k contiguous groups and take each group's mean over ``xs``. The groups
    are disjoint ranges, so for float32 inputs the float32 means are strictly increasing."""
    uniq = np.unique(xs)
    cuts = uniq[np.linspace(0, uniq.size, k + 1).astype(np.int64)[1:-1]]
    edges = np.concatenate([[0], np.searchsorted(xs, cuts, side="left"), [xs.size]])
    cs = np.concatenate([[0.0], np.cumsum(xs)])
    return ((cs[edges[1:]] - cs[edges[:-1]]) / np.diff(edges)).astype(np.float32)


def kmeans_1d(
    values: np.ndarray,
    k: int,
    init: str = "density",
    seed: int = 0,
    *,
    max_iter: int = 300,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster 1-D ``values`` into ``k`` groups.

    Returns:
        ``(codebook, assignment)``: the k centroids as float32, strictly increasing; and for
        each value (in input order) the int64 index of its nearest centroid in ``codebook``.

    Raises:
        InputError: k < 1, unknown init, non-finite values, or fewer than k distinct values.
        ConstructionError: the float32 codebook lost distinctness (centroids closer than float32
            resolution).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if init not in INITS:
        raise InputError(f"init must be one of {INITS}, got {init!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise InputError("values must be finite")
    xs = np.sort(v)
    distinct = np.unique(xs).size
    if distinct < k:
        raise InputError(f"need at least k={k} distinct values to form k clusters, got {distinct}")
    c = _init_centroids(xs, int(k), init, seed)
    cs = np.concatenate([[0.0], np.cumsum(xs)])
    span = max(float(xs[-1] - xs[0]), 1e-300)
    for _ in range(max_iter):
        bounds = (c[:-1] + c[1:]) / 2.0
        edges = np.concatenate([[0], np.searchsorted(xs, bounds, side="right"), [xs.size]])
        counts = np.diff(edges)
        sums = cs[edges[1:]] - cs[edges[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        shift = float(np.max(np.abs(new - c)))
        c = new
        if shift <= tol * span:
            break
    codebook = c.astype(np.float32)
    if np.unique(codebook).size != k or np.any(np.diff(codebook) <= 0):
        codebook = _contiguous_codebook(xs, int(k))
    if np.unique(codebook).size != k or np.any(np.diff(codebook) <= 0):
        raise ConstructionError(
            f"k-means produced {np.unique(codebook).size} distinct float32 centroids instead of {k}; "
            "use a smaller k"
        )
    return codebook, assign_nearest(v, codebook)


@dataclass
class ClusteredLayer:
    """A pruned and clustered weight tensor.

    Attributes:
        indices: int16 array shaped like the weight: -1 where the weight is zero, else the
            cluster id in [0, k).
        codebook: float32 array (k,) of shared values, increasing.
    """

    indices: np.ndarray
    codebook: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """Boolean array: True where the weight is nonzero."""
        return self.indices >= 0

    def weights(self) -> np.ndarray:
        """The reconstructed float32 weight array (zeros where ``indices == -1``)."""
        out = np.zeros(self.indices.shape, dtype=np.float32)
        nz = self.indices >= 0
        out[nz] = self.codebook[self.indices[nz]]
        return out


def cluster_weight(weight: np.ndarray, k: int, init: str = "density", seed: int = 0) -> ClusteredLayer:
    """k-means over the nonzero entries of ``weight``; zeros stay zero.

    Raises:
        InputError: see :func:`kmeans_1d`; also k > 32767.
    """
    if k > 32767:
        raise InputError(f"k must be <= 32767 to fit int16 indices, got {k}")
    w = np.asarray(weight, dtype=np.float32)
    nz = w != 0
    codebook, assign = kmeans_1d(w[nz], k, init, seed)
    idx = np.full(w.shape, -1, dtype=np.int16)
    idx[nz] = assign.astype(np.int16)
    return ClusteredLayer(indices=idx, codebook=codebook)


def _quantized_param_module():
    import torch
    from torch import nn

    class _Gather(torch.autograd.Function):
        """``codebook[idx] * nz`` whose codebook gradient is a bincount: the same bits on every
        run (the backward of plain indexing accumulates in a thread-dependent order, so with
        two threads no two runs gave the same codebook)."""

        @staticmethod
        def forward(ctx: Any, codebook: torch.Tensor, idx: torch.Tensor, nz: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(idx, nz)
            ctx.k = int(codebook.shape[0])
            return codebook[idx] * nz

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
            idx, nz = ctx.saved_tensors
            g = torch.bincount(idx.reshape(-1), weights=(grad * nz).reshape(-1), minlength=ctx.k)
            return g.to(grad.dtype), None, None

    class _Quantized(nn.Module):
        """Parametrization ``W -> codebook[idx] * nonzero`` (the original W is ignored)."""

        def __init__(self, codebook: torch.Tensor, indices: torch.Tensor) -> None:
            super().__init__()
            self.codebook = nn.Parameter(codebook.clone())
            self.register_buffer("idx", indices.clamp(min=0).long())
            self.register_buffer("nz", (indices >= 0).to(codebook.dtype))

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return _Gather.apply(self.codebook, self.idx, self.nz)

    return _Quantized


def finetune_codebooks(
    model: "nn.Module",
    data: "DataLike",
    layers: Mapping[str, ClusteredLayer],
    cfg: "TrainConfig",
    *,
    train_others: bool = True,
    progress: bool = False,
) -> dict[str, ClusteredLayer]:
    """Trained quantization: fine-tune the shared values of ``layers`` with assignments fixed.

    The model's clustered weights are replaced by ``codebook[indices]`` during training, so the
    gradient of each centroid is the sum of its members' gradients. With ``train_others``, the
    parameters outside ``layers`` (biases, unclustered layers) are trained too. On return the
    model holds the new clustered weights (zeros still exactly zero).

    Returns:
        The updated layers (codebooks re-sorted increasing, indices remapped).

    Raises:
        InputError: unknown layer names.
        ConstructionError: two fine-tuned centroids became equal.
    """
    import torch
    from torch.nn.utils import parametrize

    from ..training.loop import train
    from .magnitude import get_param

    Quantized = _quantized_param_module()
    for name in layers:
        get_param(model, name)
    for name, layer in layers.items():
        mod, _, attr = name.rpartition(".")
        module = model.get_submodule(mod)
        parametrize.register_parametrization(
            module, attr, Quantized(torch.from_numpy(layer.codebook), torch.from_numpy(layer.indices.astype(np.int64)))
        )
    out: dict[str, ClusteredLayer] = {}
    try:
        names = {n for n, _ in model.named_parameters()}
        quant = {n for n in names if n.endswith(".codebook")}
        frozen = {n for n in names if n.endswith(".original")}
        trainable = (names - frozen) if train_others else quant
        train(model, data, replace(cfg, progress=progress or cfg.progress, desc="codebook finetune"), trainable=trainable)
    finally:
        for name, layer in layers.items():
            mod, _, attr = name.rpartition(".")
            module = model.get_submodule(mod)
            cb = getattr(module.parametrizations, attr)[0].codebook.detach().cpu().numpy().astype(np.float32)
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
            order = np.argsort(cb, kind="stable")
            new_cb = cb[order]
            if np.unique(new_cb).size != new_cb.size or np.any(new_cb == 0):
                raise ConstructionError(f"fine-tuned codebook of {name} has equal or zero centroids")
            remap = np.empty_like(order)
            remap[order] = np.arange(order.size)
            idx = layer.indices.astype(np.int64)
            new_idx = np.where(idx >= 0, remap[np.maximum(idx, 0)], -1).astype(np.int16)
            cl = ClusteredLayer(indices=new_idx, codebook=new_cb)
            with torch.no_grad():
                get_param(model, name).copy_(torch.from_numpy(cl.weights()))
            out[name] = cl
    return out
