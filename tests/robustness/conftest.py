"""Hypothesis profiles for the robustness sweep.

``ci`` (default) is bounded and derandomized, so CI runs the same cases every time; ``long`` tries far
more cases with fresh randomness: ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/robustness``.
The profile is applied to the robustness tests only (through :data:`FUZZ`), not loaded globally, so
other hypothesis tests in the suite keep their own settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=60, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=400, derandomize=False, print_blob=True, **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"HYPOTHESIS_PROFILE must be 'ci' or 'long', got {PROFILE!r}")

#: the settings every robustness property test runs under
FUZZ = settings.get_profile(PROFILE)
