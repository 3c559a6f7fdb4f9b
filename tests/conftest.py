"""Shared test settings: a derandomized hypothesis profile for CI (``HYPOTHESIS_PROFILE=ci``)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
