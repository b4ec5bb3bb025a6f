"""Fashion-MNIST from the Debian package: splits, values, checksums, bounded parsing."""

import gzip
import shutil

import numpy as np
import pytest

from weightless_lab.data import fashion_mnist as F
from weightless.errors import DataError

installed = all((F.FASHION_MNIST_DIR / n).is_file() for n in F.FASHION_MNIST_SHA256)
needs_data = pytest.mark.needs_data(
    installed, f"Fashion-MNIST not installed in {F.FASHION_MNIST_DIR}: {F.INSTALL_HINT}")


@pytest.fixture(scope="module")
def data():
    return F.load_fashion_mnist()


@needs_data
def test_splits_shapes_dtypes_values(data):
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    for s in (data.train, data.val, data.test):
        assert s.x.dtype == np.float32 and s.x.shape == (len(s), 784)
        assert s.y.dtype == np.int64 and s.y.shape == (len(s),)
        assert s.x.min() == 0.0 and s.x.max() == 1.0
        assert set(np.unique(s.y)) == set(range(10))
    assert abs(float(data.train.x.mean()) - F.FASHION_MNIST_MEAN) < 1e-4
    assert abs(float(data.train.x.std()) - F.FASHION_MNIST_STD) < 1e-4
    # train + val are the 60,000 training images (6,000 of each class), test has 1,000 of each
    assert np.bincount(np.concatenate([data.train.y, data.val.y])).tolist() == [6000] * 10
    assert np.bincount(data.test.y).tolist() == [1000] * 10


@needs_data
def test_val_is_the_last_10000_training_images(data):
    with gzip.open(F.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(60_000, 784)
    assert np.array_equal(data.val.x, raw[50_000:] / np.float32(255))
    assert np.array_equal(data.train.x[:5], raw[:5] / np.float32(255))


@needs_data
def test_normalize_and_cache(data):
    assert F.load_fashion_mnist() is data
    n = F.load_fashion_mnist(normalize=True)
    assert abs(float(n.train.x.mean())) < 1e-3 and abs(float(n.train.x.std()) - 1) < 1e-3


@needs_data
def test_altered_byte_rejected(tmp_path):
    for name in F.FASHION_MNIST_SHA256:
        shutil.copy(F.FASHION_MNIST_DIR / name, tmp_path / name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # a valid label, another value: only the checksum sees it
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="sha256"):
        F.load_fashion_mnist(tmp_path)


def _fake_folder(tmp_path, name, content):
    for n in F.FASHION_MNIST_SHA256:
        (tmp_path / n).write_bytes(gzip.compress(b""))
    (tmp_path / name).write_bytes(content)
    return tmp_path


def test_missing_folder_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        F.load_fashion_mnist(tmp_path / "nope")


@pytest.mark.parametrize(
    "content, match",
    [
        pytest.param(b"not gzip at all", "cannot be read", id="not-gzip"),
        pytest.param(gzip.compress(b"\0\0\x08\x03" + b"\0" * 100)[:-9], "cannot be read|inflates", id="cut-gzip"),
        pytest.param(gzip.compress(b"\0" * 60), "inflates to 60 bytes", id="short"),
        pytest.param(gzip.compress(b"\0" * (10_000 * 784 + 100)), "more than", id="too-long"),
        # header claims 2**31 images: rejected from the header, nothing of that size allocated
        pytest.param(gzip.compress(b"\0\0\x08\x03\x7f\xff\xff\xff\0\0\0\x1c\0\0\0\x1c" + b"\0" * (10_000 * 784)),
                     "idx header", id="huge-dims"),
    ],
)
def test_malformed_files_are_data_errors(tmp_path, content, match):
    folder = _fake_folder(tmp_path, "t10k-images-idx3-ubyte.gz", content)
    with pytest.raises(DataError, match=match):
        F._read_idx(folder / "t10k-images-idx3-ubyte.gz", 10_000, image=True)
