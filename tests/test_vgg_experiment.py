"""The VGG-style network and its experiment (issue 26): shapes, and a tiny end-to-end run of the
experiment (narrow network, a few hundred Fashion-MNIST images) that writes JSON, Markdown, PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from weightless_lab.data.fashion_mnist import FASHION_MNIST_DIR
from weightless_lab.models import PAPER_LAYER_NAMES, get_model
from weightless_lab.models.vgg import VGGMini


def test_vgg_shapes() -> None:
    """FC-0 is 6272x1024 (>= 4 M weights) over the conv features, FC-1 1024x1024, logits (n, 10)."""
    from weightless_lab.experiments.vgg import features, head_of

    net = get_model("vggmini", 0)
    assert tuple(net.fc1.weight.shape) == (1024, 6272) and tuple(net.fc2.weight.shape) == (1024, 1024)
    assert set(PAPER_LAYER_NAMES["vggmini"]) == {"fc1.weight", "fc2.weight"}
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    net.eval()
    f = features(net, x, batch=2)
    assert f.shape == (3, 6272) and f.dtype == np.float32
    head = head_of(net).eval()
    with torch.no_grad():
        assert torch.allclose(head(torch.from_numpy(f)), net(torch.from_numpy(x)), atol=1e-5)
        assert net(torch.from_numpy(x).reshape(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_vgg_tiny_run(monkeypatch, tmp_path) -> None:
    """The whole experiment on a narrow network and 400 images: every row decodes from a file,
    the frontier has its lossless and filter points, the figure is drawn."""
    import weightless_lab.models as models
    from weightless_lab.experiments import runner, vgg
    from weightless_lab.experiments.common import ReproConfig

    monkeypatch.setattr(models, "_builders", lambda: {"vggmini": lambda: VGGMini((4, 4, 8), 64)})
    real = vgg.load_data
    monkeypatch.setattr(vgg, "load_data", lambda quick: real(quick).subset(400, 200))
    cfg = ReproConfig.for_mode(True, cache_dir=str(tmp_path / "cache"), progress=False, decode_repeats=1,
                               vgg_fractions=(0.0299, 0.02), vgg_ts=(5,))
    res = runner.run_experiment("vgg", cfg, tmp_path, lambda s: None)
    assert [e["t_setting"] for e in res["rows"]] == ["paper t", "automatic t"]
    paper = res["rows"][0]
    assert [(r["paper_name"], r["t"]) for r in paper["layers"]] == [("FC-0", 6), ("FC-1", 8)]
    assert paper["file_bytes"] > 0 and 0 <= paper["decoded_test_error"] <= 100
    assert [len(p["t"]) for p in res["frontier"]["points"]] == [2, 2]
    assert res["frontier"]["points"][1]["nonzero_fraction"] < res["frontier"]["points"][0]["nonzero_fraction"]
    assert [r["layer"] for r in res["times"]["layers"]] == ["FC-0", "FC-1"]
    assert json.loads((tmp_path / "vgg.json").read_text())["experiment"] == "vgg"
    assert "## Frontier" in (tmp_path / "vgg.md").read_text()
    from weightless_lab.experiments.plots import plot_all

    assert tmp_path / "vgg_frontier.png" in plot_all(tmp_path)
