"""Test-suite settings.

Hypothesis runs derandomized by default so that the suite gives the same verdict on every
machine (CI included); set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples.
"""

import os

from hypothesis import settings

settings.register_profile("default-derandomized", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-derandomized"))
