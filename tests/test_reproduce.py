"""`weightless reproduce --quick` on a subset: JSON structure, Markdown/figures, and sizes that
equal the length of freshly re-encoded bytes (the same layer encoded again, deterministically)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from weightless_lab.cli.main import main  # noqa: E402


def _have_mnist() -> bool:
    from weightless_lab.data.mnist import find_mnist_file
    from weightless.errors import DataError

    try:
        find_mnist_file()
        return True
    except DataError:
        return False


pytestmark = [pytest.mark.slow, pytest.mark.needs_data(_have_mnist(), "MNIST not available")]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    code = main([
        "reproduce", "--quick", "--only", "table123", "--only", "figure2",
        "--recipe", "lenet300:magnitude", "--out", str(out), "--cache-dir", str(cache), "--no-progress",
    ])
    return out, cache, code


def _cfg(cache: Path):
    from weightless_lab.experiments.common import ReproConfig

    return ReproConfig.for_mode(True, cache_dir=str(cache), progress=False,
                                recipes=(("lenet300", "magnitude"),))


def test_quick_writes_every_file(quick_run, capsys) -> None:
    out, _, code = quick_run
    assert code == 0
    for name in ("table123.json", "table123.md", "figure2.json", "figure2.md", "figure2.png", "README_results.md"):
        p = out / name
        assert p.exists() and p.stat().st_size > 0, name
        assert p.stat().st_size < 1_000_000, name
    readme = (out / "README_results.md").read_text()
    assert "QUICK" in readme and "Headline figures" in readme


def test_table123_json_structure(quick_run) -> None:
    out, _, _ = quick_run
    res = json.loads((out / "table123.json").read_text())
    assert res["experiment"] == "table123"
    env = res["env"]
    for key in ("versions", "git", "machine", "seed", "date_utc", "config"):
        assert key in env
    assert env["versions"]["torch"] and env["versions"]["weightless"]
    assert env["config"]["quick"] is True
    (entry,) = res["recipes"]
    assert (entry["model"], entry["pruning"]) == ("lenet300", "magnitude")
    paper = entry["constructions"]["paper"]
    assert isinstance(paper["iso_accuracy"], bool)
    assert paper["iso_accuracy"] == (paper["decoded_test_error"] <= entry["simplified_test_error"])
    names = [r["paper_name"] for r in paper["layers"]]
    assert names == ["FC-0", "FC-1"]
    for r in paper["layers"]:
        b = r["bytes"]
        assert set(b) >= {"dense", "csr", "csr_huffman", "csr_huffman_best", "weightless_raw", "weightless_entropy"}
        assert b["dense"] == 4 * int(np.prod(r["shape"]))
        assert r["factor"]["weightless_entropy"] == pytest.approx(b["dense"] / b["weightless_entropy"])
        assert r["improvement_raw"] == pytest.approx(b["csr"] / b["weightless_raw"])
        assert r["paper"]["t"] in (8, 9) and r["t"] >= 5
        assert r["m"] >= r["nonzero"]


def test_sizes_are_real_encoded_bytes(quick_run) -> None:
    """Re-encode FC-0 from the cached simplified model: the JSON sizes equal len() of the bytes."""
    from weightless.accounting import weightless_layer_bytes
    from weightless.baselines import csr_encode, dc_encode
    from weightless_lab.experiments.simplified_cache import load_data, prepare_simplified
    from weightless.filters import build

    out, cache, _ = quick_run
    res = json.loads((out / "table123.json").read_text())
    row = res["recipes"][0]["constructions"]["paper"]["layers"][0]
    cfg = _cfg(cache)
    simp, info = prepare_simplified("lenet300", "magnitude", cfg, load_data(True), lambda s: None)
    assert info["simplified_from_cache"] is True
    lr = simp.layers["fc1.weight"]
    flat = lr.indices.ravel()
    keys = np.flatnonzero(flat >= 0)
    f = build(keys, flat[keys], k=lr.k, t=row["t"], size=flat.size, seed=row["seed"], construction="paper")
    assert row["m"] == f.m and row["false_positives"] == f.count_false_positives()
    shape = tuple(lr.indices.shape)
    assert row["bytes"]["weightless_raw"] == len(weightless_layer_bytes(f, shape, lr.codebook, entropy=False))
    assert row["bytes"]["weightless_entropy"] == len(weightless_layer_bytes(f, shape, lr.codebook, entropy=True))
    assert row["bytes"]["csr"] == len(csr_encode(lr.indices, shape, lr.codebook, index_bits=5))
    assert row["bytes"]["csr_huffman"] == len(dc_encode(lr.indices, shape, lr.codebook, index_bits=5))


def test_figure2_points(quick_run) -> None:
    out, _, _ = quick_run
    res = json.loads((out / "figure2.json").read_text())
    pts = [p for p in res["points"] if "skipped" not in p]
    assert [p["t"] for p in pts] == [5, 7, 9]
    fps = [p["false_positives"] for p in pts]
    assert fps[0] > fps[-1]  # more bits per cell, fewer false positives
    for p in pts:
        assert 0 <= p["test_accuracy_before_retraining"] <= 100
        assert p["bytes"]["weightless_entropy"] > 0


def test_markdown_shows_paper_values(quick_run) -> None:
    out, _, _ = quick_run
    md = (out / "table123.md").read_text()
    assert "(40.6x 20.1)" in md  # the paper's Table 2 LeNet-300-100 magnitude FC-0 cell
    assert "(60.1x 15.3)" in md  # Table 3


def test_figures_redrawn_from_json_only(quick_run, tmp_path) -> None:
    from weightless_lab.experiments.plots import plot_all

    out, _, _ = quick_run
    for name in ("table123.json", "figure2.json"):
        (tmp_path / name).write_text((out / name).read_text())
    written = plot_all(tmp_path)
    assert [p.name for p in written] == ["figure2.png"]


def test_unknown_recipe_is_a_user_error(tmp_path, capsys) -> None:
    code = main(["reproduce", "--quick", "--only", "figure2", "--recipe", "vgg16:magnitude", "--out", str(tmp_path)])
    assert code == 2
    assert "--recipe expects" in capsys.readouterr().err


def test_unknown_experiment_rejected() -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "--only", "table9"])


def test_frontier_quick_sweep_and_figure(quick_run, tmp_path) -> None:
    """The frontier on LeNet-300-100 (two sparsities, one t): a lossless point and a filter
    point per sparsity, real file sizes, the figure drawn from the JSON alone."""
    from dataclasses import replace

    from weightless_lab.experiments import frontier
    from weightless_lab.experiments.common import write_result
    from weightless_lab.experiments.plots import plot_all

    _, cache, _ = quick_run
    cfg = replace(_cfg(cache), frontier_fractions={"lenet300": (0.05, 0.03)}, frontier_ts=(6,), frontier_epochs=0.1)
    res = frontier.run(cfg, lambda s: None)
    (m,) = res["models"]
    assert m["model"] == "lenet300" and [len(p["t"]) for p in m["points"]] == [2, 2]
    fr = [p["nonzero_fraction"] for p in m["points"]]
    assert fr[0] == pytest.approx(0.05, abs=1e-3) and fr[1] == pytest.approx(0.03, abs=1e-3)
    for p in m["points"]:
        lossless, filt = p["t"]
        assert lossless["t"] == 0 and lossless["false_positives"] == 0 and lossless["layer_encoding"] != "bloomier"
        assert filt["t"] == 6 and filt["false_positives"] > 0 and filt["layer_encoding"] == "bloomier"
        assert lossless["file_bytes"] > lossless["layer_bytes"] > 0 and lossless["dc_layer_bytes"] > 0
        assert "difference" in filt["test_minus_lossless"] and "difference" in filt["decision"]
    assert m["points"][1]["t"][0]["layer_bytes"] < m["points"][0]["t"][0]["layer_bytes"]  # fewer nonzeros, fewer bytes
    write_result(tmp_path, "frontier", res, frontier.markdown(res))
    assert [p.name for p in plot_all(tmp_path)] == ["frontier_lenet300.png"]
    assert "## lenet300 FC-0" in (tmp_path / "frontier.md").read_text()


def test_frontier_crossovers_count_points_below_the_lossless_curve() -> None:
    from weightless_lab.experiments.frontier import crossovers

    def pt(t, layer, file, err, dc_layer=None, dc_file=None):
        return {"t": t, "layer_bytes": layer, "file_bytes": file, "test_error": err,
                "dc_layer_bytes": dc_layer or layer, "dc_whole_bytes": dc_file or file}

    m = {"points": [
        {"nonzero_fraction": 0.05, "t": [pt(0, 1000, 2000, 1.0), pt(8, 700, 1700, 1.05)]},   # lossless at 700 B: ~1.4%
        {"nonzero_fraction": 0.02, "t": [pt(0, 400, 1400, 2.0), pt(8, 300, 1300, 2.5)]},     # 300 B: outside the curve
    ]}
    c = crossovers(m)["layer_vs_best_lossless"]
    assert c["compared"] == 1 and c["below"] == 1
    (r,) = [r for r in c["points"] if r["margin_pp"] is not None]
    assert r["t"] == 8 and r["bytes"] == 700 and 0.2 < r["margin_pp"] < 0.5


def test_frontier_is_opt_in(monkeypatch, tmp_path) -> None:
    """reproduce without --only runs every experiment but the opt-in frontier and vgg; --only runs them."""
    import weightless_lab.experiments.runner as runner
    from weightless_lab.experiments.common import ReproConfig

    ran: list[str] = []
    monkeypatch.setattr(runner, "run_experiment", lambda name, cfg, out, log: ran.append(name))
    cfg = ReproConfig.for_mode(True, cache_dir=None, progress=False)
    runner.reproduce(cfg, tmp_path, None, lambda s: None)
    assert ran == [n for n in runner.EXPERIMENTS if n not in ("frontier", "vgg")]
    ran.clear()
    runner.reproduce(cfg, tmp_path, ["vgg", "frontier"], lambda s: None)
    assert ran == ["frontier", "vgg"]

def test_frontier_prunes_harder_only_on_fewer_weights(monkeypatch) -> None:
    """A fraction that rounds to the weights the layer already keeps (2.99% of 2,000 weights against
    60 kept) is no harder pruning: no retraining under the same mask."""
    from dataclasses import replace

    import torch

    from weightless.simplify.recipe import LayerResult, SimplifyResult
    from weightless_lab.experiments import frontier
    from weightless_lab.experiments.common import ReproConfig

    model = torch.nn.Sequential()
    model.add_module("fc1", torch.nn.Linear(50, 40))
    w = model.fc1.weight
    mask = np.zeros(w.shape, bool)
    mask.flat[np.random.default_rng(0).permutation(w.numel())[:60]] = True
    with torch.no_grad():
        w.copy_(torch.from_numpy(np.where(mask, np.linspace(0.1, 1.0, w.numel()).reshape(w.shape), 0.0).astype(np.float32)))
    layer = LayerResult("fc1.weight", "FC-0", "magnitude", 2, "linear", np.where(mask, 0, -1).astype(np.int16),
                        np.array([0.5, 1.0], np.float32), mask, float(mask.mean()))
    simp = SimplifyResult(model=model, recipe=None, layers={"fc1.weight": layer}, test_error=None, val_error=0.0,
                          dense_test_error=None, pruned_test_error=None, seconds={})
    trained: list[int] = []
    monkeypatch.setattr("weightless.training.train", lambda *a, **k: trained.append(1))
    monkeypatch.setattr("weightless.training.evaluate", lambda *a, **k: 0.0)
    cfg = replace(ReproConfig.for_mode(True, cache_dir=None, progress=False), frontier_epochs=1.0)
    same = frontier._prune_harder(simp, 0.0299, None, cfg)  # round(0.0299 * 2000) = 60
    assert not trained and int(same.layers["fc1.weight"].mask.sum()) == 60
    fewer = frontier._prune_harder(simp, 50 / 2000, None, cfg)
    assert trained and int(fewer.layers["fc1.weight"].mask.sum()) == 50
