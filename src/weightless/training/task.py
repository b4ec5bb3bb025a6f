"""The task interface: what simplification, retraining and the t search need of a user's problem.

A :class:`Task` holds the training and validation data (and optionally a test split, used only
for reports), the loss to train with, the metric to score with, and the device. Its data can be
given in any of the forms PyTorch users have at hand; :func:`as_source` turns each into a
:class:`Source` that yields ``(inputs, target)`` batches:

- a ``torch.utils.data.DataLoader`` (or any re-iterable of batches with a ``len``): used as it
  is, in its own order, batch size and transforms. A plain loader over a ``TensorDataset`` of
  (inputs, labels) (default collate, sequential or shuffled sampler, no ``drop_last``) holds
  nothing a loader adds: it is read as its two tensors, in batches of its batch size, so that it
  can be split and its examples addressed, like arrays;
- a map-style ``torch.utils.data.Dataset``: batched by a ``DataLoader`` whose shuffling is seeded
  from the training config (so runs are deterministic);
- arrays in memory: an ``(x, y)`` pair of numpy arrays or tensors, or any object with ``x`` and
  ``y`` attributes; batches are drawn from a seeded permutation.

A batch (an item of a loader) is turned into ``(inputs, target)`` by ``Task.batch_fn`` when given
(NNCF's ``transform_fn``), else it must be a tuple/list whose first two items are inputs and
target, or a dict with keys ``"input"``/``"target"`` (or ``"x"``/``"y"``, ``"image"``/``"label"``).

Nothing here knows about any particular data set or model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import InputError

__all__ = ["Task", "Source", "as_task", "as_source", "default_metric"]

Batch = tuple[Any, torch.Tensor]
_KEY_PAIRS = (("input", "target"), ("x", "y"), ("image", "label"), ("inputs", "labels"), ("images", "labels"))


#: Batch size for evaluation passes (no gradient). Measured on 2 cores (LeNet5, LeNet-300-100 and
#: a small BatchNorm CNN scoring 5,000 images): 500 was 1.3-2.3x faster than 2,000, whose
#: activations no longer fit the caches; 250 was no faster than 500.
EVAL_BATCH = 500


def default_metric(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example error of a classifier: 1.0 where ``argmax(output) != target``, else 0.0."""
    return (output.argmax(dim=1) != target).to(torch.float32)


def _split_batch(item: Any, batch_fn: Callable[[Any], tuple[Any, Any]] | None) -> tuple[Any, Any]:
    if batch_fn is not None:
        out = batch_fn(item)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise InputError("batch_fn must return an (inputs, target) pair")
        return out[0], out[1]
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0], item[1]
    if isinstance(item, dict):
        for a, b in _KEY_PAIRS:
            if a in item and b in item:
                return item[a], item[b]
    raise InputError(
        f"cannot read a batch of type {type(item).__name__}: expected (inputs, target), a dict with "
        "'input'/'target' keys, or pass batch_fn= to turn a batch into (inputs, target)"
    )


def _to(v: Any, device: torch.device | None) -> Any:
    if isinstance(v, torch.Tensor):
        return v if device is None else v.to(device, non_blocking=True)
    if isinstance(v, np.ndarray):
        t = torch.from_numpy(v)
        return t if device is None else t.to(device)
    if isinstance(v, (tuple, list)):
        return type(v)(_to(e, device) for e in v)
    if isinstance(v, dict):
        return {k: _to(e, device) for k, e in v.items()}
    return v


class Source:
    """Batches of one split. Use :func:`as_source` to make one."""

    def __init__(self, kind: str, obj: Any, batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
                 batch_size: int | None = None) -> None:
        self.kind = kind
        self.obj = obj
        self.batch_fn = batch_fn
        self.batch_size = batch_size  # training batches of this size, whatever the config says (a loader's)

    def _like(self, kind: str, obj: Any) -> "Source":
        return Source(kind, obj, self.batch_fn, self.batch_size)

    def __len__(self) -> int:
        """Number of examples (for a loader without a dataset: batches x batch size, approximately)."""
        if self.kind == "arrays":
            return int(self.obj[1].shape[0])
        if self.kind == "dataset":
            return len(self.obj)
        ds = getattr(self.obj, "dataset", None)
        if ds is not None and hasattr(ds, "__len__"):
            return len(ds)
        return len(self.obj) * (getattr(self.obj, "batch_size", None) or 1)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimiser steps in one pass over this split with ``batch_size`` (loaders: their length)."""
        if self.kind == "loader":
            return max(1, len(self.obj))
        n = len(self)
        batch_size = self.batch_size or batch_size
        return max(1, math.ceil(n / max(1, min(batch_size, n))))

    def stream(self, batch_size: int, seed: int, extra: torch.Tensor | None = None) -> Iterator[Any]:
        """Yield training batches forever, epoch after epoch, in a seeded order: ``(inputs,
        target)``, or ``(inputs, target, extra[same examples])`` when ``extra`` (one row per
        example, arrays only) is given.

        Raises:
            InputError: ``extra`` for data that is not arrays, or of another length.
        """
        if extra is not None and (self.kind != "arrays" or int(extra.shape[0]) != len(self)):
            raise InputError(f"per-example extras need array data of {int(extra.shape[0])} examples")
        if self.kind == "arrays":
            x, y = self.obj
            n = int(y.shape[0])
            bs = min(self.batch_size or batch_size, n)
            rng = np.random.default_rng(seed)
            while True:
                perm = torch.from_numpy(rng.permutation(n))
                for start in range(0, n, bs):
                    idx = perm[start : start + bs]
                    yield (x[idx], y[idx]) if extra is None else (x[idx], y[idx], extra[idx])
        loader = self.obj
        if self.kind == "dataset":
            from torch.utils.data import DataLoader

            gen = torch.Generator().manual_seed(int(seed))
            loader = DataLoader(self.obj, batch_size=batch_size, shuffle=True, generator=gen)
        while True:
            empty = True
            for item in loader:
                empty = False
                yield _split_batch(item, self.batch_fn)
            if empty:
                raise InputError("the training data yielded no batches")

    def ordered(self, batch_size: int = EVAL_BATCH) -> Iterator[Batch]:
        """Yield the whole split once, in order (for evaluation)."""
        if self.kind == "arrays":
            x, y = self.obj
            for start in range(0, int(y.shape[0]), batch_size):
                yield x[start : start + batch_size], y[start : start + batch_size]
            return
        loader = self.obj
        if self.kind == "dataset":
            from torch.utils.data import DataLoader

            loader = DataLoader(self.obj, batch_size=batch_size, shuffle=False)
        for item in loader:
            yield _split_batch(item, self.batch_fn)

    def head(self, n: int) -> "Source":
        """The first ``n`` examples (arrays and datasets only; a loader is returned whole)."""
        if self.kind == "arrays":
            return self._like("arrays", (self.obj[0][:n], self.obj[1][:n]))
        if self.kind == "dataset":
            from torch.utils.data import Subset

            return self._like("dataset", Subset(self.obj, range(min(n, len(self.obj)))))
        return self

    def slice(self, start: int, stop: int) -> "Source":
        """Examples ``start`` to ``stop`` (arrays and datasets only).

        Raises:
            InputError: a loader (its examples cannot be addressed) or an empty range.
        """
        n = len(self)
        if self.kind == "loader" or not 0 <= start < stop <= n:
            raise InputError(f"cannot take examples [{start}, {stop}) of {self.kind} data of {n} examples")
        if self.kind == "arrays":
            x, y = self.obj
            return self._like("arrays", (x[start:stop], y[start:stop]))
        from torch.utils.data import Subset

        return self._like("dataset", Subset(self.obj, range(start, stop)))

    def split(self, parts: int) -> list["Source"]:
        """Cut into ``parts`` disjoint contiguous pieces (arrays and datasets only).

        Raises:
            InputError: a loader (its examples cannot be addressed) or too few examples.
        """
        n = len(self)
        if self.kind == "loader" or n < parts:
            raise InputError(f"cannot split {self.kind} data of {n} examples into {parts} parts")
        bounds = [round(i * n / parts) for i in range(parts + 1)]
        if self.kind == "arrays":
            x, y = self.obj
            return [self._like("arrays", (x[a:b], y[a:b])) for a, b in zip(bounds, bounds[1:])]
        from torch.utils.data import Subset

        return [self._like("dataset", Subset(self.obj, range(a, b))) for a, b in zip(bounds, bounds[1:])]


def _check_labels(y: Any) -> None:
    """Class labels given as a numpy array must be integers: a float array is refused unless
    every value is a whole number (converting 0.7 to class 0 silently would train on wrong
    labels). A torch tensor is taken as it is (e.g. float targets for a custom loss).

    Raises:
        InputError: float labels with a fraction, NaN or infinity, or a non-numeric dtype.
    """
    if not isinstance(y, np.ndarray) or y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return
    if not np.issubdtype(y.dtype, np.floating):
        raise InputError(f"labels y must be integer class indices, got an array of dtype {y.dtype}")
    flat = y.reshape(-1)
    bad = flat[~np.isfinite(flat) | (flat != np.floor(flat))]
    if bad.size:
        raise InputError(f"labels y are {y.dtype} values that are not whole numbers (e.g. {float(bad[0])}); class "
                         "labels must be integers: convert them (y.astype(np.int64)) if they are class indices, "
                         "or pass torch tensors with your own loss for other targets")


def _arrays(x: Any, y: Any, batch_fn: Callable[[Any], tuple[Any, Any]] | None, batch_size: int | None = None) -> Source:
    _check_labels(y)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x
    y = torch.as_tensor(np.asarray(y, dtype=np.int64)) if isinstance(y, np.ndarray) else y
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise InputError(f"x and y must hold the same nonzero number of rows, got {x.shape[0]} and {y.shape[0]}")
    return Source("arrays", (x, y), batch_fn, batch_size)


def _plain_tensor_loader(data: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """``(inputs, labels, batch size)`` of a DataLoader that only batches a two-tensor
    ``TensorDataset`` with integer class labels (default collate, sequential or full shuffled
    sampler, no ``drop_last``), else None."""
    from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
    from torch.utils.data._utils.collate import default_collate

    if type(data) is not DataLoader:  # a subclass may add behaviour
        return None
    ds, sampler = data.dataset, data.sampler
    if type(ds) is not TensorDataset or len(ds.tensors) != 2 or data.collate_fn is not default_collate:
        return None
    if data.batch_size is None or data.drop_last or len(ds) == 0:
        return None
    if type(sampler) is RandomSampler:
        if sampler.replacement or sampler.num_samples != len(ds):
            return None
    elif type(sampler) is not SequentialSampler:
        return None
    x, y = ds.tensors
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool or y.ndim != 1:
        return None  # other targets than class labels: leave the loader as it is
    return x, y, int(data.batch_size)


def as_source(data: Any, batch_fn: Callable[[Any], tuple[Any, Any]] | None = None) -> Source:
    """Return a :class:`Source` for ``data`` (see the module docstring for the accepted forms).

    Raises:
        InputError: an unsupported object, or arrays of mismatched or zero length.
    """
    if isinstance(data, Source):
        return data if batch_fn is None or data.batch_fn is batch_fn else Source(data.kind, data.obj, batch_fn, data.batch_size)
    if hasattr(data, "x") and hasattr(data, "y") and not isinstance(data, torch.nn.Module):
        data = (data.x, data.y)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in data):
        return _arrays(data[0], data[1], batch_fn)
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    plain = _plain_tensor_loader(data) if batch_fn is None else None
    if plain is not None:
        x, y, loader_batch = plain
        return _arrays(x, y, batch_fn, loader_batch)
    if isinstance(data, (DataLoader, list)) or (hasattr(data, "__iter__") and hasattr(data, "__len__") and not hasattr(data, "__getitem__")):
        return Source("loader", data, batch_fn)
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and hasattr(data, "__len__"):
        if len(data) == 0:
            raise InputError("the dataset is empty")
        return Source("dataset", data, batch_fn)
    raise InputError(
        f"data must be a DataLoader, a map-style Dataset, an (x, y) pair of arrays, or an object with x and y, "
        f"got {type(data).__name__}"
    )


@dataclass(frozen=True)
class Task:
    """A user's problem, as the algorithm sees it.

    Attributes:
        train: training data (any form :func:`as_source` accepts).
        val: validation data, used for every choice the algorithm makes (t, seeds, defaults).
            It must be data the model was not trained on.
        test: optional held-out data, used only for reports, never for a choice.
        loss: ``loss(output, target) -> scalar`` to train with (None: cross-entropy).
        metric: ``metric(output, target) -> per-example error in [0, 1]`` (None: top-1 error);
            reported in percent.
        device: where the model and batches go (None: where the model's parameters are).
        batch_fn: turns one item of a loader into ``(inputs, target)`` (None: see module doc).
    """

    train: Any
    val: Any
    test: Any = None
    loss: Callable[[Any, Any], torch.Tensor] | None = None
    metric: Callable[[Any, Any], torch.Tensor] | None = None
    device: Any = None
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None

    def source(self, split: str) -> Source:
        """The :class:`Source` of ``split`` ("train", "val" or "test").

        Raises:
            InputError: the split is missing.
        """
        data = getattr(self, split)
        if data is None:
            raise InputError(f"the task has no {split} data")
        return as_source(data, self.batch_fn)

    def loss_fn(self) -> Callable[[Any, Any], torch.Tensor]:
        """The training loss (cross-entropy unless the task gives one)."""
        return self.loss or F.cross_entropy

    def metric_fn(self) -> Callable[[Any, Any], torch.Tensor]:
        """The per-example error function (top-1 error unless the task gives one)."""
        return self.metric or default_metric

    def with_val(self, val: Any) -> "Task":
        """A copy with other validation data."""
        return replace(self, val=val)


def as_task(data: Any, val: Any = None, test: Any = None, **kw: Any) -> Task:
    """Return ``data`` as a :class:`Task`.

    ``data`` may be a Task (returned, with ``kw`` applied), an object with ``train`` and ``val``
    attributes (and optionally ``test``), or the training data itself with ``val`` given.

    Raises:
        InputError: no validation data.
    """
    if isinstance(data, Task):
        return replace(data, **kw) if kw else data
    if val is None and hasattr(data, "train") and hasattr(data, "val") and not isinstance(data, torch.nn.Module):
        return Task(train=data.train, val=data.val, test=getattr(data, "test", None) if test is None else test, **kw)
    if val is None:
        raise InputError("validation data is required: t and filter seeds are chosen on it, never on test data")
    return Task(train=data, val=val, test=test, **kw)
