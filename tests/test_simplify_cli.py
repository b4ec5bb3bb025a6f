import json

import numpy as np

from weightless_lab.cli.main import main
from weightless.simplify.io import load_simplified_layers


def test_simplify_quick_writes_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    cache = tmp_path / "ck"
    code = main(
        ["simplify", "--model", "lenet300", "--pruning", "magnitude", "--quick", "--no-progress",
         "--cache-dir", str(cache), "--out", str(out)]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "lenet300" and summary["pruning"] == "magnitude"
    assert summary["layers"]["fc1.weight"]["nonzero_percent"] == 5.0
    assert summary["layers"]["fc2.weight"]["k"] == 9
    assert 0 < summary["test_error"] < 50
    assert len(list(cache.glob("lenet300-dense-*.safetensors"))) == 1
    layers = load_simplified_layers(out / "layers.npz")
    idx, cb = layers["fc1.weight"]
    assert idx.shape == (300, 784) and cb.shape == (9,)
    assert int((idx >= 0).sum()) == round(0.05 * 300 * 784)
    assert np.all(idx < 9)


def test_simplify_bad_threads(capsys):
    assert main(["simplify", "--model", "lenet300", "--pruning", "dns", "--threads", "0"]) == 2
    assert "threads" in capsys.readouterr().err
