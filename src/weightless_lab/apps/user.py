"""A user's own model and data for the command line: ``--model-def package.module:factory``,
``--weights FILE.pt|.safetensors``, ``--data mnist|fashion-mnist|FILE.npz``.

The model definition is the user's own code, imported by name (as ``python -m`` would); its
weights are read without unpickling (``torch.load(weights_only=True)`` or safetensors).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from weightless.errors import DataError, InputError
from weightless.training.task import Task

__all__ = ["DATA_NAMES", "load_model_def", "load_weights", "load_task", "check_state_dict"]

#: Bundled data sets by name (besides a user's ``.npz``).
DATA_NAMES = ("mnist", "fashion-mnist")


def load_model_def(spec: str) -> Any:
    """Import ``package.module:factory`` (or ``path/to/file.py:factory``) and return
    ``factory()`` (a ``torch.nn.Module``).

    The current folder is searched first, as ``python -m`` does.

    Raises:
        InputError: a malformed spec, a module, file or attribute that cannot be found, a
            module that fails to import, a factory that needs arguments or raises, or one that
            does not return a module (each in one line).
    """
    import torch

    mod_name, sep, attr = spec.rpartition(":")
    if not sep or not mod_name or not attr:
        raise InputError(f"--model-def must be 'package.module:factory' or 'path/to/file.py:factory', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
            module = _import_file(mod_name)
        else:
            module = importlib.import_module(mod_name)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(f"cannot import {mod_name!r} for --model-def: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise InputError(f"importing {mod_name!r} for --model-def raised {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{mod_name!r} has no attribute {attr!r} (from --model-def {spec!r})")
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, torch.nn.Module):
        import inspect

        try:
            inspect.signature(obj).bind()
        except TypeError as exc:
            raise InputError(f"--model-def {spec!r}: {attr} cannot be called without arguments ({exc}); give a "
                             "factory that takes none (e.g. def make(): return MyNet(10))") from None
        except ValueError:  # no signature (a builtin): just call it
            pass
        try:
            model = obj()
        except Exception as exc:  # noqa: BLE001 - the user's factory failed
            raise InputError(f"--model-def {spec!r}: {attr}() raised {type(exc).__name__}: {exc}") from exc
    else:
        model = obj
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"--model-def {spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _import_file(path: str) -> Any:
    """Import the Python file ``path`` as a module of its own (for ``--model-def FILE.py:factory``)."""
    import hashlib
    import importlib.util

    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise InputError(f"--model-def: no such file {path!r}")
    name = "_weightless_model_def_" + hashlib.sha1(full.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise InputError(f"--model-def: {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up
    folder = os.path.dirname(full)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file's own imports of its neighbours
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def check_state_dict(model: Any, state: dict[str, Any], what: str) -> None:
    """Raise :class:`InputError` naming missing, unexpected or mis-shaped tensors of ``state``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in set(expected) & set(state) if tuple(expected[n].shape) != tuple(state[n].shape))
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    if wrong:
        parts.append(f"wrong shapes {wrong}")
    if parts:
        raise InputError(f"{what} does not fit the model: {'; '.join(parts)}")


def load_weights(model: Any, path: str | os.PathLike) -> Any:
    """Load a ``.pt``/``.pth`` state_dict (``weights_only=True``) or a ``.safetensors`` file into
    ``model`` (in place) and return it.

    Raises:
        FileNotFoundError: no such file. DataError: unreadable. InputError: it does not fit.
    """
    import torch

    from weightless.convenience import read_checkpoint

    arrays, _ = read_checkpoint(path)
    state = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    check_state_dict(model, state, str(path))
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})
    return model.eval()


#: Training examples of a ``--quick`` run (pruning, retraining and seed ranking all see only these).
QUICK_TRAIN = 10_000


def load_task(spec: str, *, n_train: int | None = None, n_eval: int | None = None, normalize: str = "library") -> Task:
    """The task named ``spec``: "mnist", "fashion-mnist", or a ``.npz`` file with arrays
    ``x_train, y_train, x_val, y_val`` (and optionally ``x_test, y_test``).

    ``normalize`` (bundled images): "library" (MNIST standardised with its training mean and
    standard deviation, Fashion-MNIST pixels in [0, 1], as the lab trains), "none" (pixels in
    [0, 1]) or "MEAN,STD" (``(pixel - MEAN) / STD`` on [0, 1] pixels: the model's own).

    Raises:
        InputError: an unknown name or normalisation. DataError: a missing or malformed data file.
    """
    mean_std = _mean_std(normalize)
    if spec in ("mnist", "fashion-mnist"):
        if spec == "mnist":
            from ..data.mnist import load_mnist

            data = load_mnist(normalize=normalize == "library")
        else:
            from ..data.fashion_mnist import load_fashion_mnist

            data = load_fashion_mnist(normalize=False)
        if mean_std is not None:
            m, sd = mean_std
            data = type(data)(**{k: (None if v is None else type(v)(((v.x - m) / sd).astype(np.float32), v.y))
                                 for k, v in (("train", data.train), ("val", data.val), ("test", data.test))})
    elif spec.endswith(".npz"):
        if not Path(spec).is_file():
            raise DataError(f"data file {spec} does not exist")
        if normalize != "library":
            raise InputError("--normalize applies to the bundled data sets; a .npz is used as it is")
        from weightless.training.splits import load_npz_splits

        data = load_npz_splits(spec)
    else:
        raise InputError(f"--data must be one of {', '.join(DATA_NAMES)} or a .npz file, got {spec!r}")
    if n_train is not None or n_eval is not None:
        data = data.subset(n_train or len(data.train), n_eval or len(data.val))
    return Task(train=data.train, val=data.val, test=getattr(data, "test", None))


def _mean_std(normalize: str) -> tuple[float, float] | None:
    """None for "library" / "none"; (MEAN, STD) from "MEAN,STD"; "none" is (0, 1).

    Raises:
        InputError: anything else, or STD <= 0.
    """
    if normalize == "library":
        return None
    if normalize == "none":
        return 0.0, 1.0
    try:
        m, sd = (float(v) for v in normalize.split(","))
    except ValueError:
        raise InputError(f"--normalize must be library, none or MEAN,STD (e.g. 0.2860,0.3530), got {normalize!r}") from None
    if not sd > 0:
        raise InputError(f"--normalize: STD must be > 0, got {sd}")
    return m, sd


def fit_shape(model: Any, task: Task) -> Task:
    """The task with its 28x28 images as (n, 1, 28, 28) when ``model`` does not take the flat
    rows (n, 784) the bundled data sets hold but takes images: a convolutional model gets images.
    Unchanged when the flat rows work, or when neither does (the caller's evaluation then says so)."""
    import torch

    def takes(x: np.ndarray) -> bool:
        try:
            with torch.no_grad():
                was = model.training
                model.eval()
                model(torch.from_numpy(np.ascontiguousarray(x[:2])))
                model.train(was)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not this shape"
            return False

    x = task.val.x
    if x.ndim != 2 or x.shape[1] != 784 or takes(x) or not takes(x.reshape(-1, 1, 28, 28)):
        return task

    def img(split: Any) -> Any:
        return None if split is None else type(split)(split.x.reshape(-1, 1, 28, 28), split.y)

    return Task(train=img(task.train), val=img(task.val), test=img(task.test))


def compress_user(model_def: str, weights: str | None, data: str, config: Any, output: str | os.PathLike,
                  log: Any, *, dense_dtype: str = "float32", entropy: bool = True, quick: bool = False,
                  normalize: str = "library") -> dict[str, Any]:
    """Compress a user's model on a named task through :func:`weightless.compress`, write
    ``output``, load it back into a fresh model and score it.

    Returns:
        A JSON-ready report (file bytes, per-layer t and sizes, errors of the model as given,
        simplified, and decoded from the file, budget spent per stage).

    Raises:
        InputError, DataError, ConstructionError: see the functions used.
    """
    import time

    from weightless.io import files as api
    from weightless.pipeline.api import compress
    from weightless.training import evaluate, per_example
    from .whole import whole_model_report

    t0 = time.perf_counter()
    model = load_model_def(model_def)
    if weights is not None:
        load_weights(model, weights)
    task = fit_shape(model, load_task(data, n_train=QUICK_TRAIN if quick else None, normalize=normalize))
    res = compress(model, task, config=config, log=log)
    nbytes = api.save(output, res.tensors, dense_dtype=dense_dtype, entropy=entropy,
                      metadata={"model_def": model_def, "data": data})
    fresh = load_model_def(model_def)
    state = api.load(output)
    check_state_dict(fresh, state, str(output))
    fresh.load_state_dict(state)
    errs = None if task.test is None else per_example(fresh, task, "test")[0]
    from weightless.pipeline.contract import paired_ci

    vs_dense = None if errs is None else paired_ci(errs, per_example(model, task, "test")[0])
    decoded_test = None if errs is None else 100.0 * float(errs.mean())
    whole = whole_model_report(res, output, task, errs)
    n_params = sum(int(v.numel()) for v in state.values())
    dense_bytes = sum(int(v.numel()) * v.element_size() for v in model.state_dict().values())
    return {
        "model_def": model_def,
        "weights": weights,
        "data": data,
        "output": str(output),
        "file_bytes": nbytes,
        "dense_model_bytes": dense_bytes,
        "model_compression_factor": round(dense_bytes / nbytes, 2),
        "parameters": n_params,
        "layers": [{k: v for k, v in r.as_dict().items() if k != "trials"} for r in res.layers],
        "budget": res.budget,
        "dense_test_error": None if task.test is None else evaluate(model, task, split="test"),
        "simplified_test_error": res.simplified_test_error,
        "decoded_test_error": decoded_test,
        "decoded_vs_dense_test": vs_dense,
        "validation_disjoint": res.validation_disjoint,
        "whole_model": whole,
        "whole_model_decisions": res.tail,
        "seconds": round(time.perf_counter() - t0, 2),
    }
