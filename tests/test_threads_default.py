"""The default torch thread count and the busy-machine note."""

import os

import pytest

from weightless.training import loop


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
    monkeypatch.setattr(os, "getloadavg", lambda: (2.4, 2.0, 2.0))
    assert loop.contention_note(1) is None
    assert "--threads 1" in (loop.contention_note(2) or "")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    assert loop.contention_note(2) is None
