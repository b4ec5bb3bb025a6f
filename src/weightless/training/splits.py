"""Data splits in memory, and a user's own data set from a ``.npz`` file of named splits.

:class:`Split` is one split (``x``, ``y``); :class:`Splits` the train / validation / optional
test splits of a data set (the bundled MNIST and Fashion-MNIST loaders return one, so does
:func:`load_npz_splits`).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError

__all__ = ["Split", "Splits", "NPZ_KEYS", "NPZ_MAX_BYTES", "load_npz_splits"]

#: Keys :func:`load_npz_splits` reads: required pairs first, then the optional test pair.
NPZ_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
#: Default cap on the bytes the arrays of one ``.npz`` may declare (checked before reading).
NPZ_MAX_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class Split:
    """One split of a data set: ``x`` float32 of shape (n, ...), ``y`` int64 of shape (n,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def head(self, n: int) -> "Split":
        """Return the first ``n`` examples (all of them if ``n`` exceeds the size)."""
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Splits:
    """The splits of a data set: ``train``, ``val`` (choices are made on it) and ``test``
    (held out, only reported; None when the data set has none)."""

    train: Split
    val: Split
    test: Split | None = None

    def subset(self, n_train: int, n_eval: int) -> "Splits":
        """Return a smaller copy: the first ``n_train`` training and ``n_eval`` val/test examples.

        Raises:
            InputError: a size below 1.
        """
        if n_train < 1 or n_eval < 1:
            raise InputError(f"subset sizes must be >= 1, got n_train={n_train}, n_eval={n_eval}")
        test = None if self.test is None else self.test.head(n_eval)
        return Splits(self.train.head(n_train), self.val.head(n_eval), test)


def _npy_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one ``.npy`` member, read from its header only."""
    fmt = np.lib.format
    try:
        with z.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise DataError(f"{path}: member {info.filename} is .npy version {version}; expected 1.0 or 2.0")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: member {info.filename} is not a readable .npy array ({exc})") from exc
    if dtype.hasobject:
        raise DataError(f"{path}: {info.filename} holds Python objects; expected numeric arrays (allow_pickle=False)")
    return tuple(int(d) for d in shape), dtype


def _check_pair(x: np.ndarray, y: np.ndarray, split: str, path: Path) -> Split:
    if x.ndim < 1 or y.ndim != 1:
        raise DataError(f"{path}: x_{split} has shape {x.shape} and y_{split} {y.shape}; expected x of "
                        "shape (n, ...) and y of shape (n,)")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: x_{split} has {x.shape[0]} examples but y_{split} has {y.shape[0]}")
    if x.shape[0] == 0:
        raise DataError(f"{path}: the {split} split is empty")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: x_{split} has dtype {x.dtype}; expected numbers")
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: y_{split} has dtype {y.dtype}; expected integer class labels")
    if y.min() < 0:
        raise DataError(f"{path}: y_{split} holds negative labels; expected class indices 0..C-1")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{path}: x_{split} holds NaN or infinite values")
    return Split(np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64))


def load_npz_splits(path: str | os.PathLike, *, max_bytes: int = NPZ_MAX_BYTES) -> Splits:
    """Read a user's data set from a ``.npz`` (``np.savez``) holding named splits.

    Keys: ``x_train``, ``y_train``, ``x_val``, ``y_val`` (required) and ``x_test``, ``y_test``
    (optional, both or neither); no other keys. Each ``x`` has shape (n, ...) (e.g. (n, 784) or
    (n, 1, 28, 28)), the same example shape in every split; each ``y`` holds n integer labels.
    ``x`` is converted to float32 as it is (no scaling), ``y`` to int64. The file is read with
    ``allow_pickle=False``, and every array's declared size is checked against the file before
    any array is read.

    Args:
        max_bytes: the most bytes the arrays together may declare.

    Returns:
        A :class:`Splits` (``test`` is None without ``x_test``/``y_test``).

    Raises:
        FileNotFoundError: no such file.
        DataError: not an ``.npz``, missing, unknown or object-dtype arrays, lengths that differ
            between ``x`` and ``y``, example shapes that differ between splits, arrays declaring
            more than ``max_bytes`` or more than their member holds.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    try:
        with zipfile.ZipFile(p) as z:
            members = {i.filename: i for i in z.infolist()}
            names = {n[:-4] if n.endswith(".npy") else n: n for n in members}
            unknown = sorted(set(names) - set(NPZ_KEYS))
            if unknown:
                raise DataError(f"{p}: unknown arrays {unknown}; expected only {list(NPZ_KEYS)}")
            missing = [k for k in NPZ_KEYS[:4] if k not in names]
            if missing:
                raise DataError(f"{p}: missing arrays {missing}; a .npz of named splits holds {list(NPZ_KEYS[:4])} "
                                "and optionally x_test, y_test (np.savez(path, x_train=..., y_train=..., ...))")
            if ("x_test" in names) != ("y_test" in names):
                raise DataError(f"{p}: holds only one of x_test, y_test; give both or neither")
            total = 0
            for key, member in names.items():
                info = members[member]
                shape, dtype = _npy_header(z, info, p)
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise DataError(f"{p}: {key} declares {nbytes} bytes of data, its member holds {info.file_size}")
                total += nbytes
                if total > max_bytes:
                    raise DataError(f"{p}: the arrays declare more than max_bytes = {max_bytes} bytes")
    except zipfile.BadZipFile as exc:
        raise DataError(f"{p} is not a .npz file ({exc}); write one with np.savez(path, x_train=..., ...)") from exc
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in names}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{p}: cannot read its arrays ({exc})") from exc
    splits = {s: _check_pair(arrays[f"x_{s}"], arrays[f"y_{s}"], s, p)
              for s in ("train", "val", "test") if f"x_{s}" in arrays}
    shapes = {s: sp.x.shape[1:] for s, sp in splits.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{p}: the splits' examples differ in shape: {shapes}")
    return Splits(splits["train"], splits["val"], splits.get("test"))
