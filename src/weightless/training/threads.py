"""Torch's intra-op thread count for training: the default (:data:`DEFAULT_THREADS`, measured),
:func:`set_threads`, and the one-line note when other processes keep the cores busy
(:func:`contention_note`). :func:`weightless.training.loop.train` applies the count for its run
and restores torch's setting after it."""

from __future__ import annotations

import os
import time

import torch

from ..errors import InputError

__all__ = ["DEFAULT_THREADS", "usable_cores", "busy_cores", "contention_note", "set_threads", "effective_threads", "apply_threads"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _default_threads() -> int:
    env = os.environ.get("WEIGHTLESS_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            import warnings

            warnings.warn(f"WEIGHTLESS_THREADS={env!r} is not a whole number; ignored", stacklevel=2)
    return min(2, usable_cores())


#: Default torch intra-op thread count for training: WEIGHTLESS_THREADS, else the usable cores up
#: to 2. Measured on an idle 2-core machine, two threads compress LeNet5 1.56x and LeNet-300-100
#: 1.44x faster than one (results/bench/bench_compress_threads*.md); more were not measured. On
#: a busy machine two threads train 2-4x slower than one: :func:`contention_note` says so at the
#: start of a run.
DEFAULT_THREADS = _default_threads()


_current_default = [DEFAULT_THREADS]


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count and make it the default of later :func:`train` calls
    whose config has ``threads=None`` (None here: :data:`DEFAULT_THREADS`). Return the count.

    Raises:
        InputError: ``threads`` < 1.
    """
    n = DEFAULT_THREADS if threads is None else int(threads)
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    _current_default[0] = n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def busy_cores(window: float = 0.25) -> float | None:
    """Cores kept busy by other processes right now: the machine's busy CPU share over ``window``
    seconds (from /proc/stat, while this process waits) times its core count; None where the
    system does not say (then :func:`contention_note` falls back to the 1-minute load average,
    which also counts this process's own recent work)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) - idle, sum(v[:8])
    try:
        b0, t0 = sample()
        time.sleep(window)
        b1, t1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (b1 - b0) / max(1, t1 - t0)


def contention_note(threads: int | None = None) -> str | None:
    """A one-line warning when other processes already keep the cores busy enough that
    ``threads`` (None: the current default) torch threads will wait on each other (the busy
    cores, :func:`busy_cores`, above the cores left free by half a core); None otherwise."""
    n = _current_default[0] if threads is None else int(threads)
    if n < 2:
        return None
    busy, what = busy_cores(), "busy cores"
    if busy is None:
        try:
            busy, what = os.getloadavg()[0], "load average"
        except (AttributeError, OSError):  # pragma: no cover - no load average on this OS
            return None
    cores = usable_cores()
    if busy <= cores - n + 0.5:
        return None
    return (f"note: the machine is busy ({what} {busy:.1f} of {cores}); {n} torch threads can train about 2x "
            f"slower than 1 here: WEIGHTLESS_THREADS=1 or --threads 1 may be faster")


def effective_threads(threads: int | None) -> int:
    """The intra-op thread count :func:`train` runs with for a config's ``threads`` (None: the
    current default, see :func:`set_threads`)."""
    return _current_default[0] if threads is None else int(threads)


def apply_threads(threads: int | None) -> None:
    n = effective_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
