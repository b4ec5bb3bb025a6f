"""The Weightless optimisation pipeline: layer-by-layer encoding with retraining under an
accuracy contract (needs PyTorch)."""

from .api import compress
from .config import CompressConfig, DecisionRule, EncodeConfig, FilterSearch, Retraining, TailConfig
from .contract import Contract, Decision, paired_difference
from .encode import CompressResult, LayerReport, encode_with_retraining
from .steps import layer_seed

__all__ = ["compress", "CompressConfig", "EncodeConfig", "DecisionRule", "FilterSearch", "Retraining", "TailConfig",
           "LayerReport", "CompressResult", "encode_with_retraining",
           "layer_seed", "Contract", "Decision", "paired_difference"]
