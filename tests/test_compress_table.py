"""The table `weightless compress` prints: the every-layer-lossless line says which file is smaller."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from weightless_lab.cli.cmd_compress import format_table  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "results" / "compress" / "compress_lenet5_magnitude_demo.json"


def _report(filter_bytes, lossless_bytes):
    report = json.loads(DEMO.read_text())
    report["file_bytes"] = filter_bytes
    report["every_layer_lossless"]["file_bytes"] = lossless_bytes
    return report


def test_the_lossless_line_says_when_the_filters_save():
    line = [x for x in format_table(_report(9_000, 10_000)).splitlines() if x.startswith("same pipeline")][0]
    assert "the filters save 1000 bytes (10.0%)" in line and "SMALLER" not in line


def test_the_lossless_line_says_loudly_when_the_lossless_file_is_smaller():
    line = [x for x in format_table(_report(13_279, 12_479)).splitlines() if x.startswith("same pipeline")][0]
    assert "THE LOSSLESS FILE IS SMALLER: the filters cost 800 bytes (6.4%)" in line
