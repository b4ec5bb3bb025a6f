"""CLI: encode / decompress / evaluate / compress --quick in-process, and their error paths."""

import json
import math

import numpy as np
import pytest

from weightless.io import files as api
from weightless_lab.cli.main import main

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from weightless_lab.models import get_model  # noqa: E402


def _lenet300_state(seed=0):
    """A LeNet-300-100 state_dict whose fc1 is 5% nonzero with 9 distinct values (the others dense)."""
    sd = {k: v.numpy().copy() for k, v in get_model("lenet300", seed=seed).state_dict().items()}
    rng = np.random.default_rng(seed)
    w = sd["fc1.weight"]
    cb = np.sort(rng.choice(np.unique(w), 9, replace=False)).astype(np.float32)
    keep = rng.random(w.shape) < 0.05
    sd["fc1.weight"] = np.where(keep, cb[rng.integers(0, 9, w.shape)], 0).astype(np.float32)
    return sd


@pytest.fixture
def ckpt(tmp_path):
    sd = _lenet300_state()
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file(sd, str(path))
    return path, sd


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_encode_default_layers_and_t(ckpt, capsys):
    path, sd = ckpt
    out = path.with_suffix(".wl")
    code, stdout, stderr = _run(capsys, ["encode", path, "-o", out])
    assert code == 0
    rep = json.loads(stdout)
    rows = {r["name"]: r for r in rep["tensors"]}
    assert rows["fc1.weight"]["encoding"] == "bloomier"
    k = len(np.unique(sd["fc1.weight"][sd["fc1.weight"] != 0]))
    assert rows["fc1.weight"]["k"] == k and rows["fc1.weight"]["t"] == math.ceil(math.log2(k)) + 4
    assert all(rows[n]["encoding"] == "dense" for n in rows if n != "fc1.weight")
    assert rep["file_bytes"] == out.stat().st_size
    assert "fc1.weight" in stderr and "bloomier" in stderr  # the table
    back = api.load_arrays(out)
    w, b = sd["fc1.weight"], back["fc1.weight"]
    nz = w != 0
    assert np.array_equal(b[nz], w[nz])  # every nonzero exact
    assert int(np.count_nonzero(b[~nz])) == rows["fc1.weight"]["false_positives"]
    assert set(np.unique(b[b != 0])) <= set(np.unique(w[nz]))
    for n in ("fc1.bias", "fc2.weight", "fc3.bias"):
        assert back[n].tobytes() == sd[n].tobytes()


def test_encode_options(ckpt, capsys, tmp_path):
    path, sd = ckpt
    a, b = tmp_path / "a.wl", tmp_path / "b.wl"
    code, stdout, _ = _run(capsys, ["encode", path, "-o", a, "--t", "6", "--dense-dtype", "float16"])
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)["tensors"]}
    assert rows["fc1.weight"]["t"] == 6 and rows["fc2.weight"]["stored"] == "float16"
    back = api.load_arrays(a)
    assert np.array_equal(back["fc2.weight"], sd["fc2.weight"].astype(np.float16).astype(np.float32))
    code, stdout, _ = _run(capsys, ["encode", path, "-o", b, "--layers", "fc1.weight,fc2.bias", "--t", "fc1.weight=7"])
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)["tensors"]}
    assert rows["fc1.weight"]["t"] == 7
    assert rows["fc2.bias"]["encoding"] == "bloomier"  # chosen explicitly, though 1-D and dense
    assert np.array_equal(api.load_arrays(b)["fc2.bias"], sd["fc2.bias"])  # no zeros: no false positive


def test_encode_is_deterministic(ckpt, capsys, tmp_path):
    path, _ = ckpt
    for name in ("x.wl", "y.wl"):
        assert _run(capsys, ["encode", path, "-o", tmp_path / name, "--seed", "3"])[0] == 0
    assert (tmp_path / "x.wl").read_bytes() == (tmp_path / "y.wl").read_bytes()


def test_encode_torch_state_dict_file(capsys, tmp_path):
    sd = _lenet300_state(1)
    pt = tmp_path / "m.pt"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, pt)
    code, stdout, _ = _run(capsys, ["encode", pt, "-o", tmp_path / "m.wl"])
    assert code == 0
    assert {r["name"]: r["encoding"] for r in json.loads(stdout)["tensors"]}["fc1.weight"] == "bloomier"


def test_encode_simplify_folder(capsys, tmp_path):
    sd = _lenet300_state(2)
    folder = tmp_path / "simp"
    folder.mkdir()
    w = sd["fc1.weight"]
    cb = np.unique(w[w != 0]).astype(np.float32)
    cb = np.concatenate([cb, [cb[-1] + 1]]).astype(np.float32)  # an unused centroid: k comes from the npz
    idx = np.full(w.shape, -1, np.int16)
    idx[w != 0] = np.searchsorted(cb, w[w != 0])
    safetensors_numpy.save_file(sd, str(folder / "model.safetensors"))
    np.savez(folder / "layers.npz", **{"fc1.weight.indices": idx, "fc1.weight.codebook": cb})
    code, stdout, _ = _run(capsys, ["encode", folder, "-o", tmp_path / "f.wl"])
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)["tensors"]}
    assert rows["fc1.weight"]["k"] == cb.size
    back = api.load_arrays(tmp_path / "f.wl")["fc1.weight"]
    assert np.array_equal(back[w != 0], w[w != 0])


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_decompress_every_tensor(ckpt, capsys, tmp_path, suffix):
    path, _ = ckpt
    wl = tmp_path / "m.wl"
    assert _run(capsys, ["encode", path, "-o", wl])[0] == 0
    out = tmp_path / f"d{suffix}"
    code, stdout, _ = _run(capsys, ["decompress", wl, "-o", out])
    assert code == 0 and json.loads(stdout)["output_bytes"] == out.stat().st_size
    if suffix == ".pt":
        got = {k: v.numpy() for k, v in torch.load(out, weights_only=True).items()}
    else:
        got = safetensors_numpy.load_file(str(out))
    ref = api.load_arrays(wl)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k].dtype == ref[k].dtype and got[k].tobytes() == ref[k].tobytes()


@pytest.fixture(scope="module")
def mnist(load_data):
    from weightless_lab.data.mnist import load_mnist

    return load_data(load_mnist, "MNIST")


def test_evaluate_matches_the_decoded_model(ckpt, capsys, tmp_path, mnist):
    from weightless.training import evaluate

    path, _ = ckpt
    wl = tmp_path / "m.wl"
    assert _run(capsys, ["encode", path, "-o", wl])[0] == 0
    code, stdout, _ = _run(capsys, ["evaluate", wl, "--model", "lenet300", "--threads", "1"])
    assert code == 0
    rep = json.loads(stdout)
    model = get_model("lenet300")
    model.load_state_dict(api.load(wl))
    assert rep["test_error"] == evaluate(model, mnist.test) and rep["images"] == 10_000


@pytest.mark.slow
def test_compress_quick_end_to_end(capsys, tmp_path, mnist):
    out = tmp_path / "q.wl"
    code, stdout, stderr = _run(capsys, ["compress", "--quick", "--no-progress", "--t", "paper", "--tolerance", "3", "-o", out,
                                         "--cache-dir", tmp_path / "ck", "--threads", "1"])
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert rep["file_bytes"] == out.stat().st_size
    assert [r["t"] for r in rep["layers"]] == [8, 9]
    assert 0 < rep["decoded_test_error"] < 30
    assert "test error" in stderr
    code, stdout, _ = _run(capsys, ["evaluate", out, "--model", "lenet300"])
    assert code == 0 and json.loads(stdout)["test_error"] == rep["decoded_test_error"]


# ------------------------------------------------------------------ error paths


def _bad_wl(tmp_path):
    p = tmp_path / "bad.wl"
    p.write_bytes(b"\x89WLS\r\n\x1a\n" + bytes(100))
    return p


def _good_wl(tmp_path):
    p = tmp_path / "good.wl"
    api.save(p, {"w": np.ones((2, 2), np.float32)})
    return p


def _ckpt_file(tmp_path):
    p = tmp_path / "c.safetensors"
    safetensors_numpy.save_file(_lenet300_state(), str(p))
    return p


ERRORS = [
    ("encode-missing", lambda d: ["encode", d / "nope.safetensors", "-o", d / "o.wl"]),
    ("encode-bad-t", lambda d: ["encode", _ckpt_file(d), "-o", d / "o.wl", "--t", "fc1.weight=x"]),
    ("encode-bad-t-word", lambda d: ["encode", _ckpt_file(d), "-o", d / "o.wl", "--t", "auto"]),
    ("encode-t-too-small", lambda d: ["encode", _ckpt_file(d), "-o", d / "o.wl", "--t", "2"]),
    ("encode-t-not-filter", lambda d: ["encode", _ckpt_file(d), "-o", d / "o.wl", "--t", "fc2.weight=8"]),
    ("encode-unknown-layer", lambda d: ["encode", _ckpt_file(d), "-o", d / "o.wl", "--layers", "fc9.weight"]),
    ("encode-garbage-input", lambda d: ["encode", _bad_wl(d).rename(d / "g.safetensors"), "-o", d / "o.wl"]),
    ("encode-unknown-kind", lambda d: ["encode", _bad_wl(d), "-o", d / "o.wl"]),
    ("encode-output-dir", lambda d: ["encode", _ckpt_file(d), "-o", d]),
    ("decompress-missing", lambda d: ["decompress", d / "nope.wl", "-o", d / "o.safetensors"]),
    ("decompress-bad-wl", lambda d: ["decompress", _bad_wl(d), "-o", d / "o.safetensors"]),
    ("decompress-bad-suffix", lambda d: ["decompress", _good_wl(d), "-o", d / "o.npz"]),
    ("evaluate-missing", lambda d: ["evaluate", d / "nope.wl", "--model", "lenet300"]),
    ("evaluate-bad-wl", lambda d: ["evaluate", _bad_wl(d), "--model", "lenet300"]),
    ("evaluate-unknown-model", lambda d: ["evaluate", _good_wl(d), "--model", "resnet50"]),
    ("evaluate-wrong-model", lambda d: ["evaluate", _good_wl(d), "--model", "lenet5"]),
    ("evaluate-bad-threads", lambda d: ["evaluate", _good_wl(d), "--model", "lenet300", "--threads", "0"]),
    ("compress-bad-t", lambda d: ["compress", "--t", "fc1.weight=eight", "-o", d / "o.wl"]),
]


@pytest.mark.parametrize("argv", [a for _, a in ERRORS], ids=[n for n, _ in ERRORS])
def test_error_paths_one_line_no_traceback(argv, capsys, tmp_path):
    code, stdout, stderr = _run(capsys, argv(tmp_path))
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("weightless: error:")
    assert "Traceback" not in stderr and stdout == ""
    assert not (tmp_path / "o.wl").exists() and not (tmp_path / "o.safetensors").exists()
