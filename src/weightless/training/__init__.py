"""Seeded CPU training and evaluation (needs PyTorch)."""

from .loop import DEFAULT_THREADS, TrainConfig, TrainReport, evaluate, set_threads, train

__all__ = ["DEFAULT_THREADS", "TrainConfig", "TrainReport", "evaluate", "set_threads", "train"]
