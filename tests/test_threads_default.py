"""The default torch thread count and the busy-machine note."""

import os

import pytest

from weightless.training import threads as loop


def test_default_threads_from_env_or_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTLESS_THREADS", "3")
    assert loop._default_threads() == 3
    monkeypatch.delenv("WEIGHTLESS_THREADS")
    assert loop._default_threads() == min(2, loop.usable_cores())
    monkeypatch.setenv("WEIGHTLESS_THREADS", "two")
    with pytest.warns(UserWarning, match="not a whole number"):
        assert loop._default_threads() == min(2, loop.usable_cores())


def test_contention_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "usable_cores", lambda: 2)
    monkeypatch.setattr(loop, "busy_cores", lambda: 1.2)
    assert loop.contention_note(1) is None
    assert "busy cores 1.2 of 2" in (loop.contention_note(2) or "")
    monkeypatch.setattr(loop, "busy_cores", lambda: 0.3)
    assert loop.contention_note(2) is None
    monkeypatch.setattr(loop, "busy_cores", lambda: None)  # no /proc/stat: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (2.4, 2.0, 2.0))
    assert "load average 2.4" in (loop.contention_note(2) or "")


def test_busy_cores_measures() -> None:
    busy = loop.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
