"""``--model-def path/to/file.py:factory``, factories that need arguments or fail, ``evaluate``
on data the model cannot take, float labels (issue 24 item 4): one line each, nonzero exit."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import weightless as wl  # noqa: E402
from weightless.errors import InputError  # noqa: E402
from weightless.training.task import as_source  # noqa: E402
from weightless_lab.cli.main import main  # noqa: E402


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "my_file.py").write_text(textwrap.dedent("""
        from torch import nn

        def make():
            return nn.Sequential(nn.Linear(20, 4))

        def needs(width):
            return nn.Sequential(nn.Linear(20, width))

        def fails():
            raise RuntimeError("no GPU here")
    """))
    (tmp_path / "nets" / "broken.py").write_text("import torch\nraise ValueError('bad module')\n")
    g = np.random.default_rng(0)
    x = g.normal(size=(50, 20)).astype(np.float32)
    y = g.integers(0, 4, 50)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y)
    np.savez(tmp_path / "wrong.npz", x_train=x[:, :7], y_train=y, x_val=x[:, :7], y_val=y, x_test=x[:, :7], y_test=y)
    model = torch.nn.Sequential(torch.nn.Linear(20, 4))
    wl.save(tmp_path / "m.wl", model.state_dict())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line(capsys, code) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("weightless: error:"), err
    return err[0]


def test_model_def_from_a_file_path(folder, capsys):
    code = main(["evaluate", "m.wl", "--model-def", "nets/my_file.py:make", "--data", "d.npz"])
    assert code == 0, capsys.readouterr().err
    code = main(["evaluate", "m.wl", "--model-def", str(folder / "nets" / "my_file.py") + ":make", "--data", "d.npz"])
    assert code == 0


@pytest.mark.parametrize("spec, msg", [
    ("nets/my_file.py:needs", "without arguments"),
    ("nets/my_file.py:fails", "no GPU here"),
    ("nets/broken.py:make", "bad module"),
    ("nets/missing.py:make", "no such file"),
    ("nets/my_file.py:nope", "no attribute"),
])
def test_model_def_errors_in_one_line(folder, capsys, spec, msg):
    line = _one_line(capsys, main(["evaluate", "m.wl", "--model-def", spec, "--data", "d.npz"]))
    assert msg in line


def test_evaluate_on_data_of_the_wrong_shape(folder, capsys):
    line = _one_line(capsys, main(["evaluate", "m.wl", "--model-def", "nets/my_file.py:make", "--data", "wrong.npz"]))
    assert "cannot take the data" in line


def test_float_labels_are_refused_before_any_work():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="whole numbers"):
        as_source((x, np.array([0.5, 1.0, 2.0])))
    with pytest.raises(InputError, match="whole numbers"):
        as_source((x, np.array([0.0, np.nan, 2.0])))
    assert as_source((x, np.array([0.0, 1.0, 2.0]))).kind == "arrays"  # whole numbers: class indices
