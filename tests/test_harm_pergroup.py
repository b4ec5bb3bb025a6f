"""Smoke test of the water-filling and iso-loss helpers of benchmarks/harm_pergroup.py (issue 15)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "harm_pergroup.py"
_spec = importlib.util.spec_from_file_location("harm_pergroup", _PATH)
hp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hp)


def test_waterfill_uniform_harm_keeps_t_and_meets_budget() -> None:
    t = hp.waterfill(np.array([1.0, 1.0]), np.array([100.0, 100.0]), k=9, T=8, tmin=5, cpk=1.0)
    assert t.tolist() == [8, 8]
    # a group without keys needs no filter (t = 0), and its harm at T is slack for the others
    t = hp.waterfill(np.array([1.0, 1.0, 5.0]), np.array([100.0, 100.0, 0.0]), k=9, T=8, tmin=5, cpk=1.0)
    assert t.tolist() == [7, 7, 0]


def test_waterfill_moves_bits_to_harmful_groups() -> None:
    n = np.array([100.0, 100.0])
    H = np.array([1.0, 64.0])
    t = hp.waterfill(H, n, k=9, T=8, tmin=5, cpk=1.0)
    assert t[0] < 8 < t[1]
    assert (H * 2.0 ** -t).sum() <= H.sum() * 2.0 ** -8 + 1e-12
    assert t.sum() <= 16


def test_iso_bytes_interpolates_in_log_loss() -> None:
    curve = {7: {"bytes": [700], "dL": [0.04]}, 8: {"bytes": [800], "dL": [0.02]}, 9: {"bytes": [900], "dL": [0.01]}}
    assert hp.iso_bytes(curve, 0.02) == pytest.approx(800)
    assert hp.iso_bytes(curve, np.sqrt(0.02 * 0.01)) == pytest.approx(850)
    assert hp.iso_bytes(curve, 0.08) == pytest.approx(600)  # extrapolated
