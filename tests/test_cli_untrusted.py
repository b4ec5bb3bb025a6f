"""CLI on bad options and hostile files: checked before work, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import weightless as wl
from weightless._atomic import temp_name_pattern
from weightless_lab.cli.main import main

from crafted import bloomier_record, params_for, raw_filter, wl_bytes, zero_ans_filter

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--seed-trials", "0"], "seed_trials"),
        (["--tolerance", "-1"], "tolerance"),
        (["--c", "0.5"], "cells per key"),
        (["--seed", "-1"], "seed"),
        (["--shards", "0"], "shards"),
    ],
)
def test_compress_checks_options_before_work(capsys, tmp_path, extra, word):
    code, out, err = _run(capsys, ["compress", "-o", tmp_path / "m.wl", "--cache-dir", tmp_path / "c", *extra])
    assert code == 2 and word in err and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "c").exists()  # no training started (it would create the cache)


def test_compress_output_folder_checks(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, ["compress", "-o", tmp_path / "file" / "m.wl", "--cache-dir", tmp_path / "c"])
    assert code != 0 and err.count("\n") == 1 and "file" in err
    code, _, err = _run(capsys, ["compress", "-o", tmp_path / "m.wl", "--json", tmp_path / "file" / "r.json",
                                 "--cache-dir", tmp_path / "c"])
    assert code != 0 and err.count("\n") == 1 and not (tmp_path / "c").exists()
    code, _, err = _run(capsys, ["compress", "-o", tmp_path, "--cache-dir", tmp_path / "c"])
    assert code == 2 and "is a directory" in err


def test_encode_rejects_negative_seed(capsys, tmp_path):
    src = tmp_path / "in.safetensors"
    code, _, err = _run(capsys, ["encode", src, "-o", tmp_path / "o.wl", "--seed", "-1"])
    assert code == 2 and "--seed" in err


def _crafted_files(tmp_path):
    """(name, path) of files that load_arrays must reject."""
    files = {}
    filt = raw_filter(k=1, t=2, size=2**40, shards=[(0, 0, 0, b"", b"")])
    files["bomb"] = wl_bytes([bloomier_record("w", (2**40,), [0.5], filt)])
    filt = zero_ans_filter(k=1, t=2, size=1, ms=[1 << 26])
    files["huge_table"] = wl_bytes([bloomier_record("w", (1,), [0.5], filt,
                                                    params_for(k=1, t=2, shards=[(0, 1 << 26, 0)], coding="ans"))])
    filt = raw_filter(k=1, t=2, size=10, shards=[(0, 1, 0, b"\x00", b"")])  # 0 keys, 1 cell
    files["one_cell"] = wl_bytes([bloomier_record("w", (10,), [0.5], filt,
                                                  params_for(k=1, t=2, shards=[(0, 1, 0)]))])
    filt = raw_filter(k=1, t=2, size=10, shards=[(0, 0, 0, b"", b"")])
    files["bad_params"] = wl_bytes([bloomier_record("w", (10,), [0.5], filt,
                                                    {**params_for(k=1, t=2, shards=[(0, 0, 0)]), "t": 3})])
    files["float_k"] = wl_bytes([bloomier_record("w", (10,), [0.5], filt,
                                                 {**params_for(k=1, t=2, shards=[(0, 0, 0)]), "k": 1.0})])
    out = []
    for name, data in files.items():
        p = tmp_path / f"{name}.wl"
        p.write_bytes(data)
        out.append((name, p))
    return out


def test_decompress_and_inspect_on_crafted_files(capsys, tmp_path):
    for name, path in _crafted_files(tmp_path):
        code, out, err = _run(capsys, ["decompress", path, "-o", tmp_path / "o.safetensors"])
        assert code == 2 and err.startswith("weightless: error:") and err.count("\n") == 1, (name, err)
        code, out, err = _run(capsys, ["inspect", path])
        assert code == 2 and err.count("\n") == 1 and out == "", (name, err)
        code, out, err = _run(capsys, ["inspect", "--no-decode", path])
        assert code == 0 and '"payloads_checked": false' in out, name


def test_inspect_into_a_closed_pipe(tmp_path):
    p = tmp_path / "many.wl"
    wl.save(p, {f"layer{i}.weight": np.zeros(3, np.float32) for i in range(3000)})
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-c", "import sys; from weightless_lab.cli.main import main; sys.exit(main())", "inspect", str(p)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and "Error" not in err, err


def test_help_texts_have_no_doubled_percent(capsys):
    for cmd in ("encode", "evaluate", "compress", "inspect", "decompress"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "%%" not in capsys.readouterr().out


def test_killed_save_leaves_no_litter_after_the_next_save(tmp_path):
    """SIGKILL a process in the middle of save (after its temp file exists); the next save
    removes the temp file; a concurrent live writer's temp file is never touched."""
    target = tmp_path / "m.wl"
    code = (
        "import time, numpy as np\n"
        "from weightless.container import writer\n"
        "writer.os.fdopen = lambda *a, **k: (print('open', flush=True), time.sleep(60))  # hang mid-save\n"
        "import weightless as wl\n"
        f"wl.save({str(target)!r}, {{'a': np.ones(4, np.float32)}})\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"open"
    pattern = temp_name_pattern("m.wl")
    live = [n for n in os.listdir(tmp_path) if pattern.fullmatch(n)]
    assert len(live) == 1
    wl.save(tmp_path / "other.wl", {"a": np.ones(4, np.float32)})  # another target: not touched
    wl.save(target, {"a": np.ones(4, np.float32)})  # the writer is alive: its lock protects it
    assert live[0] in os.listdir(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert live[0] in os.listdir(tmp_path)  # litter, until the next save of this target
    wl.save(target, {"a": np.zeros(4, np.float32)})
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    assert wl.load_arrays(target)["a"].tolist() == [0.0] * 4