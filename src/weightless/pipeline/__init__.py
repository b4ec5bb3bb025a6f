"""The Weightless optimisation pipeline: layer-by-layer encoding with retraining (needs PyTorch)."""

from .compress import CompressResult, EncodeConfig, LayerReport, encode_with_retraining, layer_seed

__all__ = ["EncodeConfig", "LayerReport", "CompressResult", "encode_with_retraining", "layer_seed"]
