"""``weightless compress`` / ``evaluate`` with a user's model (--model-def, --weights) and data (.npz)."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from weightless_lab.cli.main import main  # noqa: E402


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def make():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 4))
    """))
    g = np.random.default_rng(0)

    def split(n):
        x = g.normal(size=(n, 20)).astype(np.float32)
        return x, (x[:, :4].argmax(1)).astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = split(600), split(200), split(200)
    np.savez(tmp_path / "d.npz", x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mynets", None)
    import mynets

    model = mynets.make()
    from weightless.training import TrainConfig, train

    train(model, (torch.from_numpy(xt), torch.from_numpy(yt)), TrainConfig(epochs=3, lr=1e-2))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    return tmp_path


def test_compress_and_evaluate_own_model(project, capsys) -> None:
    code = main(["compress", "--model-def", "mynets:make", "--weights", "w.pt", "--data", "d.npz",
                 "--nonzero", "0.3", "--k", "8", "--retrain-epochs", "0.2", "--seed-trials", "2",
                 "--t", "0.weight=6", "--t", "3.weight=6", "--max-error-increase", "50", "-o", "out/m.wl",
                 "--threads", "1", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    rep = json.loads(out.out)
    assert rep["file_bytes"] == (project / "out" / "m.wl").stat().st_size
    assert [l["t"] for l in rep["layers"]] == [6, 6]
    w = rep["whole_model"]  # every tensor listed, with Deep Compression's bytes on the same simplification
    assert w["file_bytes"] == rep["file_bytes"] and {t["name"] for t in w["tensors"]} == set(torch.load(
        project / "w.pt", weights_only=True))
    assert w["overhead_bytes"] == w["file_bytes"] - sum(t["bytes"] for t in w["tensors"]) > 0
    assert w["dc_bytes"] == sum(t["dc_bytes"] for t in w["tensors"]) and w["dc_test_error"] is not None
    assert "whole file:" in out.err and "Deep Compression, same simplification" in out.err
    code = main(["evaluate", "out/m.wl", "--model-def", "mynets:make", "--data", "d.npz"])
    ev = json.loads(capsys.readouterr().out)
    assert code == 0 and ev["test_error"] == pytest.approx(rep["decoded_test_error"])


@pytest.mark.parametrize("argv, msg", [
    (["--model-def", "nosuchmodule:make"], "cannot import"),
    (["--model-def", "mynets"], "package.module:factory"),
    (["--model-def", "mynets:nope"], "no attribute"),
    (["--model-def", "mynets:make", "--data", "nope"], "--data"),
    (["--model-def", "mynets:make", "--t", "paper"], "--t paper"),
    (["--weights", "w.pt"], "--weights needs --model-def"),
    (["--model-def", "mynets:make", "--seed-trials", "0", "--data", "d.npz"], "seed_trials"),
    (["--model-def", "mynets:make", "--c", "0.5", "--data", "d.npz"], "cells per key"),
    (["--model-def", "mynets:make", "--nonzero", "0", "--data", "d.npz"], "nonzero"),
])
def test_bad_options_fail_in_one_line_before_training(project, capsys, argv, msg) -> None:
    code = main(["compress", *argv, "-o", "x.wl"])
    err = capsys.readouterr().err
    assert code != 0 and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_over_budget_exits_3_without_a_file(project, capsys) -> None:
    """A budget nothing can meet: one line naming the budget, exit 3, no file (the contract's
    enforcement through the command line)."""
    from weightless_lab.cli.main import EXIT_OVER_BUDGET

    code = main(["compress", "--model-def", "mynets:make", "--weights", "w.pt", "--data", "d.npz",
                 "--nonzero", "0.01", "--k", "2", "--retrain-epochs", "0.1", "--seed-trials", "1",
                 "--max-error-increase", "0", "-o", "over.wl", "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_OVER_BUDGET
    last = err.strip().splitlines()[-1]
    assert last.startswith("weightless: error:") and "budget" in last and "Traceback" not in err
    assert not (project / "over.wl").exists()
