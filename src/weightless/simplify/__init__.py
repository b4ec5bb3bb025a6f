"""Simplification of trained networks: magnitude pruning, Dynamic Network Surgery, k-means
weight sharing, and the one-call :func:`simplify` (needs PyTorch)."""

from .cluster import ClusteredLayer, cluster_weight, finetune_codebooks, kmeans_1d
from .dns import DNSConfig, DNSSurgeon, prune_dns
from .magnitude import MagnitudePruner, PruneSchedule, PruneState, prune_magnitude, resume_point, topk_mask
from .select import LayerSelect
from .recipe import (
    LayerRecipe,
    LayerResult,
    Recipe,
    SimplifyResult,
    simplify,
)

__all__ = [
    "ClusteredLayer",
    "cluster_weight",
    "finetune_codebooks",
    "kmeans_1d",
    "DNSConfig",
    "DNSSurgeon",
    "prune_dns",
    "MagnitudePruner",
    "PruneSchedule",
    "prune_magnitude",
    "PruneState",
    "resume_point",
    "topk_mask",
    "LayerSelect",
    "LayerRecipe",
    "LayerResult",
    "Recipe",
    "SimplifyResult",
    "simplify",
]
