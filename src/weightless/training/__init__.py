"""Seeded training and evaluation on any task (needs PyTorch)."""

from .loop import TrainConfig, TrainReport, evaluate, per_example, train
from .threads import DEFAULT_THREADS, set_threads
from .task import Source, Task, as_source, as_task, default_metric

__all__ = ["DEFAULT_THREADS", "TrainConfig", "TrainReport", "evaluate", "per_example", "set_threads", "train",
           "Source", "Task", "as_source", "as_task", "default_metric"]
