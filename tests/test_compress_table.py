"""The table `weightless compress` prints: the every-layer-lossless line says which file is smaller."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from weightless_lab.cli.cmd_compress import format_table  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "results" / "compress" / "compress_lenet5_magnitude_demo.json"


def _report(filter_bytes, lossless_bytes, t=4):
    report = json.loads(DEMO.read_text())
    for r in report["layers"]:
        r["t"] = 0
    report["layers"][-1]["t"] = t  # the last chosen layer in a filter (t > 0) or none (0)
    report["file_bytes"] = filter_bytes
    report["every_layer_lossless"]["file_bytes"] = lossless_bytes
    return report


def test_the_lossless_line_says_when_the_filters_save():
    line = [x for x in format_table(_report(9_000, 10_000)).splitlines() if x.startswith("same pipeline")][0]
    assert "the filters save 1000 bytes (10.0%)" in line and "SMALLER" not in line


def test_the_lossless_line_says_loudly_when_the_lossless_file_is_smaller():
    line = [x for x in format_table(_report(13_279, 12_479)).splitlines() if x.startswith("same pipeline")][0]
    assert "THE LOSSLESS FILE IS SMALLER: the filters cost 800 bytes (6.4%)" in line
    assert "(runs/lenet5-magnitude.lossless.wl)" in line  # where the smaller file is


def test_the_lossless_line_credits_no_filter_when_the_file_holds_none():
    for mine, other, word in ((9_000, 10_000, "smaller"), (10_500, 10_000, "larger")):
        line = [x for x in format_table(_report(mine, other, t=0)).splitlines() if x.startswith("same pipeline")][0]
        assert "the file holds no filter" in line and f"{word}" in line and "the filters" not in line
