"""The Weightless optimisation pipeline: layer-by-layer encoding with retraining (needs PyTorch)."""

from .api import compress
from .encode import CompressResult, LayerReport, encode_with_retraining
from .config import CompressConfig, EncodeConfig
from .steps import layer_seed

__all__ = ["compress", "CompressConfig", "EncodeConfig", "LayerReport", "CompressResult", "encode_with_retraining", "layer_seed"]
