"""Test-suite settings.

Hypothesis runs derandomized by default so that the suite gives the same verdict on every
machine (CI included); set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples.
"""

import os
from pathlib import Path

# numba's on-disk cache is not safe for two processes compiling the same kernels at once (seen
# here: a corrupted index made the compact solver segfault under pytest -n 2). Each xdist worker
# gets its own cache folder, kept between runs; set before anything imports numba.
if "NUMBA_CACHE_DIR" not in os.environ:
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["NUMBA_CACHE_DIR"] = str(Path(__file__).resolve().parents[1] / ".numba_cache" / _worker)

from hypothesis import settings  # noqa: E402

settings.register_profile("default-derandomized", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-derandomized"))
