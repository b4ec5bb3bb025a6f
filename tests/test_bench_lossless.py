"""benchmarks/bench_lossless.py runs without NNCodec on small tensors (it has no other test: its
reference codec lives in a venv of its own) and its "before" column stays the models 0-2 record."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_lossless  # noqa: E402
from test_coded_stride import image_blobs  # noqa: E402


def test_weightless_only_on_two_tensors(tmp_path):
    rng = np.random.default_rng(0)
    cb = np.array([-0.5, -0.25, 0.25, 0.5])
    np.savez(tmp_path / "lenet5-dns.npz", **{"fc1.weight/indices": image_blobs(rng, 40, 12, 4, smooth=True),
                                             "fc1.weight/codebook": cb,
                                             "fc2.weight/indices": np.where(rng.random((10, 40)) < 0.3, 1, -1),
                                             "fc2.weight/codebook": cb})
    out = tmp_path / "bench"
    assert bench_lossless.main(["--tensors", str(tmp_path), "--out", str(out), "--only", "lenet5-dns",
                                "--without-nncodec", "--repeats", "1"]) == 0
    res = json.loads(Path(str(out) + ".json").read_text())
    rows = {t["tensor"]: t for t in res["tensors"]}
    assert rows["fc1.weight"]["weightless"]["bytes"] < rows["fc1.weight"]["weightless"]["before_bytes"]
    assert res["environment"]["nncodec"] is None
