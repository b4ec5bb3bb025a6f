"""Fashion-MNIST (Xiao et al. 2017), read from the Debian package ``dataset-fashion-mnist``.

The package installs the four gzipped idx files of the upstream release in
``/usr/share/datasets/fashion-mnist`` (``make setup`` installs it as root; by hand:
``apt-get install dataset-fashion-mnist``). Nothing is downloaded at run time.

Splits (deterministic, no shuffling):

- ``train``: the first 50,000 of the 60,000 training images;
- ``val``: the **last 10,000 training images** (indices 50,000-59,999), carved out so choices
  (t, seeds) are made on images the model was not trained on, *provided the model was trained
  on ``train`` only*; a model trained on all 60,000 has seen them;
- ``test``: the 10,000 test images.

Images are 28x28 gray levels, returned flattened to (n, 784) float32 in [0, 1] (or
standardised with :data:`FASHION_MNIST_MEAN`/:data:`FASHION_MNIST_STD`, the mean and standard
deviation of the ``train`` pixels); labels are int64 in 0..9 (names in :data:`CLASSES`).

Each file is read through a bounded gzip stream (at most its known size plus one byte), its
idx header is checked against the expected magic and dimensions, and the sha256 of its
decompressed content is compared with :data:`FASHION_MNIST_SHA256`. The content is hashed, not
the ``.gz`` file, because Debian recompressed the upstream files (their ``.gz`` checksums
differ from upstream's, the content does not), so a copy of the upstream files passes too.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from weightless.errors import DataError
from weightless.training.splits import Split, Splits

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_SHA256",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "CLASSES",
    "INSTALL_HINT",
    "N_TRAIN",
    "N_VAL",
    "find_fashion_mnist",
    "load_fashion_mnist",
]

#: Where ``dataset-fashion-mnist`` (Debian 0.0~git20200523.55506a9-1) installs the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: sha256 of each file's decompressed idx content.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: Mean and standard deviation of the ``train`` split's pixels in [0, 1] (for ``normalize``).
FASHION_MNIST_MEAN = 0.2855
FASHION_MNIST_STD = 0.3528
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
INSTALL_HINT = ("install it with: apt-get install dataset-fashion-mnist (as root; 'make setup' does it), "
                "or pass folder= a directory holding the four idx .gz files")
#: Training images kept for training; the rest of the 60,000 form the validation split.
N_TRAIN = 50_000
N_VAL = 10_000
_ROWS = _COLS = 28
_SIZES = {"train": 60_000, "t10k": 10_000}


def find_fashion_mnist(folder: str | Path | None = None) -> Path:
    """Return the folder holding the four Fashion-MNIST files (default :data:`FASHION_MNIST_DIR`).

    Raises:
        DataError: the folder or one of its files is missing.
    """
    d = Path(folder) if folder is not None else FASHION_MNIST_DIR
    missing = [n for n in FASHION_MNIST_SHA256 if not (d / n).is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST files {missing} not found in {d}; {INSTALL_HINT}")
    return d


def _read_idx(path: Path, n: int, image: bool) -> np.ndarray:
    """The uint8 content of one idx file of ``n`` items: (n, 784) images or (n,) labels."""
    header = 16 if image else 8
    size = header + n * (_ROWS * _COLS if image else 1)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"Fashion-MNIST file {path} cannot be read ({exc}); {INSTALL_HINT}") from exc
    if len(raw) != size:
        raise DataError(f"Fashion-MNIST file {path} inflates to {'more than ' if len(raw) > size else ''}"
                        f"{min(len(raw), size)} bytes, expected {size}; {INSTALL_HINT}")
    dims = (n, _ROWS, _COLS) if image else (n,)
    expected = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    if raw[:header] != expected:
        raise DataError(f"Fashion-MNIST file {path} has idx header {raw[:header].hex()}, expected "
                        f"{expected.hex()} (uint8, dims {dims}); {INSTALL_HINT}")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FASHION_MNIST_SHA256[path.name]:
        raise DataError(f"Fashion-MNIST file {path}: content sha256 {digest}, expected "
                        f"{FASHION_MNIST_SHA256[path.name]}; the file is altered; reinstall: "
                        "apt-get install --reinstall dataset-fashion-mnist")
    a = np.frombuffer(raw, dtype=np.uint8, offset=header)
    return a.reshape(n, _ROWS * _COLS) if image else a


_CACHE: dict[tuple[str, bool], Splits] = {}


def load_fashion_mnist(folder: str | Path | None = None, *, normalize: bool = False) -> Splits:
    """Load Fashion-MNIST: train 50,000 / val 10,000 (the last training images) / test 10,000.

    Args:
        folder: the folder of the four idx ``.gz`` files; default :data:`FASHION_MNIST_DIR`.
        normalize: standardise pixels with :data:`FASHION_MNIST_MEAN`/:data:`FASHION_MNIST_STD`
            (default: keep them in [0, 1]).

    Returns:
        A :class:`~weightless.training.splits.Splits` of float32 images (n, 784) and int64 labels.
        The arrays are cached in-process and shared between calls; do not modify them in place.

    Raises:
        DataError: a file is missing, malformed or altered (content sha256).
    """
    d = find_fashion_mnist(folder)
    key = (str(d.resolve()), normalize)
    if key in _CACHE:
        return _CACHE[key]
    parts = {}
    for prefix, n in _SIZES.items():
        x = _read_idx(d / f"{prefix}-images-idx3-ubyte.gz", n, image=True)
        y = _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz", n, image=False)
        if y.max() >= len(CLASSES):
            raise DataError(f"Fashion-MNIST labels in {d} exceed {len(CLASSES) - 1}; {INSTALL_HINT}")
        pixels = x.astype(np.float32) / np.float32(255)
        if normalize:
            pixels = (pixels - np.float32(FASHION_MNIST_MEAN)) / np.float32(FASHION_MNIST_STD)
        parts[prefix] = (pixels, y.astype(np.int64))
    (xt, yt), (xs, ys) = parts["train"], parts["t10k"]
    data = Splits(
        train=Split(xt[:N_TRAIN], yt[:N_TRAIN]),
        val=Split(xt[N_TRAIN:], yt[N_TRAIN:]),
        test=Split(xs, ys),
    )
    _CACHE[key] = data
    return data
