"""A user's data set from a .npz of named splits: shapes, dtypes, and clear DataErrors."""

import zipfile

import numpy as np
import pytest

from weightless.training.splits import Splits, load_npz_splits
from weightless.errors import DataError, InputError


def _arrays(n=(12, 5, 4), shape=(1, 4, 4), test=True):
    rng = np.random.default_rng(0)
    out = {}
    for split, k in zip(("train", "val", "test"), n):
        if split == "test" and not test:
            continue
        out[f"x_{split}"] = rng.integers(0, 256, (k, *shape)).astype(np.uint8)
        out[f"y_{split}"] = rng.integers(0, 10, k)
    return out


def test_reads_named_splits(tmp_path):
    a = _arrays()
    np.savez_compressed(tmp_path / "d.npz", **a)
    d = load_npz_splits(tmp_path / "d.npz")
    assert isinstance(d, Splits)
    for split in ("train", "val", "test"):
        s = getattr(d, split)
        assert s.x.dtype == np.float32 and s.x.shape == a[f"x_{split}"].shape
        assert np.array_equal(s.x, a[f"x_{split}"].astype(np.float32))  # no scaling
        assert s.y.dtype == np.int64 and np.array_equal(s.y, a[f"y_{split}"])
    small = d.subset(3, 2)
    assert (len(small.train), len(small.val), len(small.test)) == (3, 2, 2)
    with pytest.raises(InputError):
        d.subset(0, 1)


def test_test_split_is_optional(tmp_path):
    np.savez(tmp_path / "d.npz", **_arrays(test=False))
    d = load_npz_splits(tmp_path / "d.npz")
    assert d.test is None and len(d.train) == 12 and d.subset(2, 2).test is None


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param(lambda a: a.pop("y_val"), r"missing arrays \['y_val'\]", id="missing"),
        pytest.param(lambda a: a.pop("y_test"), "only one of x_test, y_test", id="half-test"),
        pytest.param(lambda a: a.update(x_valid=a["x_val"]), r"unknown arrays \['x_valid'\]", id="unknown"),
        pytest.param(lambda a: a.update(y_train=a["y_train"][:-1]), "12 examples but y_train has 11", id="lengths"),
        pytest.param(lambda a: a.update(x_val=a["x_val"].reshape(5, 16)), "differ in shape", id="example-shape"),
        pytest.param(lambda a: a.update(y_val=a["y_val"].astype(np.float32)), "integer class labels", id="float-y"),
        pytest.param(lambda a: a.update(y_val=-a["y_val"] - 1), "negative", id="negative-y"),
        pytest.param(lambda a: a.update(y_val=a["y_val"].reshape(5, 1)), "expected x of shape", id="2d-y"),
        pytest.param(lambda a: a.update(x_val=np.full((5, 1, 4, 4), np.nan)), "NaN", id="nan-x"),
        pytest.param(lambda a: a.update(x_val=a["x_val"][:0], y_val=a["y_val"][:0]), "empty", id="empty"),
        pytest.param(lambda a: a.update(x_val=np.array([None] * 5, dtype=object)), "objects", id="object"),
        pytest.param(lambda a: a.update(x_val=np.array(["a"] * 5)), "expected numbers", id="strings"),
    ],
)
def test_bad_npz_raises_data_error(tmp_path, change, match):
    a = _arrays()
    change(a)
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match=match):
        load_npz_splits(tmp_path / "d.npz")


def test_not_a_zip_and_missing_file(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataError, match="not a .npz"):
        load_npz_splits(tmp_path / "d.npz")
    with pytest.raises(FileNotFoundError):
        load_npz_splits(tmp_path / "nope.npz")


def test_declared_size_checked_before_reading(tmp_path):
    """A member whose .npy header declares more data than the member holds, or more than
    max_bytes, is rejected from its header alone."""
    a = _arrays()
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match="max_bytes"):
        load_npz_splits(tmp_path / "d.npz", max_bytes=100)
    header = np.lib.format
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as z:
        for k, v in a.items():
            with z.open(f"{k}.npy", "w") as f:
                if k == "x_train":
                    header.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (2**40,)})
                else:
                    header.write_array(f, v)
    with pytest.raises(DataError, match="declares 8796093022208 bytes"):
        load_npz_splits(tmp_path / "bomb.npz")
