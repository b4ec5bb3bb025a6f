"""Test-suite settings.

Hypothesis runs derandomized by default so that the suite gives the same verdict on every
machine (CI included); set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples.
Tests that need a data set skip without it, or fail under ``WEIGHTLESS_REQUIRE_DATA=1`` (CI).
"""

import os
from pathlib import Path

# numba's on-disk cache is not safe for two processes compiling the same kernels at once (seen
# here: a corrupted index made the compact solver segfault under pytest -n 2). Each xdist worker
# gets its own cache folder, kept between runs; set before anything imports numba.
if "NUMBA_CACHE_DIR" not in os.environ:
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["NUMBA_CACHE_DIR"] = str(Path(__file__).resolve().parents[1] / ".numba_cache" / _worker)

# Two xdist workers on a 2-core machine: one torch thread each (the library's default is up to 2),
# set before anything imports weightless.training.
os.environ.setdefault("WEIGHTLESS_THREADS", "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("default-derandomized", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-derandomized"))


# ------------------------------------------------------------------ data sets
# Tests that need MNIST or Fashion-MNIST skip when the data is missing, except under
# WEIGHTLESS_REQUIRE_DATA=1 (set by .ci/run): then a missing data set fails the test, so a CI
# machine without the data cannot go green. Two ways in, both decided here:
#   - ``@pytest.mark.needs_data(available, reason)`` (or as ``pytestmark``), for a check made
#     at import;
#   - the ``load_data`` fixture: ``load_data(loader, "MNIST")`` returns ``loader()``, or skips
#     (fails) with the loader's error.
REQUIRE_DATA = os.environ.get("WEIGHTLESS_REQUIRE_DATA", "") not in ("", "0")


def missing_data(reason: str):
    """Skip the running test for missing data, or fail it under WEIGHTLESS_REQUIRE_DATA=1."""
    if REQUIRE_DATA:
        pytest.fail(f"{reason} (WEIGHTLESS_REQUIRE_DATA=1: missing data fails)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("needs_data")
    if mark is not None:
        available, reason = mark.args
        if not available:
            missing_data(reason)


def _load_data(loader, what: str):
    try:
        return loader()
    except Exception as exc:  # the loaders raise DataError; anything else is missing data too
        reason = f"{what} not available: {exc}"
    missing_data(reason)  # outside the except block: no chained traceback in the report


@pytest.fixture(scope="session")
def load_data():
    """``load_data(loader, what)``: ``loader()``, or skip (fail under WEIGHTLESS_REQUIRE_DATA=1)."""
    return _load_data
