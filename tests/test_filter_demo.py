import json

import numpy as np

from weightless_lab.cli.main import main
from weightless_lab.cli.cmd_demo import make_layer


def test_demo_json(capsys):
    assert main(["demo", "--json", "--rows", "100", "--cols", "80", "--k", "5", "--t", "6"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["keys_ok"] is True
    assert rep["nonzeros"] == 400 and rep["layer"] == [100, 80]
    assert rep["bytes"] == rep["header_bytes"] + (rep["cells"] * 6 + 7) // 8
    assert 0 <= rep["false_positive_rate"] < 0.3


def test_demo_table_and_bad_args(capsys):
    assert main(["demo", "--rows", "50", "--cols", "40"]) == 0
    out = capsys.readouterr().out
    assert "bits/nonzero" in out and "false positives" in out
    assert main(["demo", "--density", "0"]) == 2
    assert "density" in capsys.readouterr().err
    assert main(["demo", "--k", "9", "--t", "4"]) == 2


def test_make_layer():
    keys, vals, cb = make_layer(30, 20, 0.1, 4, 0)
    assert keys.shape == (60,) and np.all(np.diff(keys) > 0)
    assert vals.min() >= 0 and vals.max() < 4 and cb.dtype == np.float32
