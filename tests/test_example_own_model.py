"""The example a new user copies runs end to end on a small subset: DataLoader in, .wl out,
loaded back into a fresh model with exactly the reported test error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"


@pytest.mark.slow
def test_own_model_example(tmp_path, load_data) -> None:
    from weightless_lab.data.fashion_mnist import load_fashion_mnist

    load_data(load_fashion_mnist, "Fashion-MNIST")
    spec = importlib.util.spec_from_file_location("own_model", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "cnn.wl"
    rep = mod.main(["--n-train", "1500", "--n-eval", "400", "--epochs", "1", "--retrain-epochs", "0.2",
                    "--out", str(out)])
    assert out.stat().st_size == rep["file_bytes"] > 0
    assert rep["test_error_from_file"] == pytest.approx(rep["reported_test_error"])
    assert rep["ratio"] > 5
    assert set(rep["t"]) == {"5.weight", "10.weight"}  # the 144- and 640-weight layers stay dense
