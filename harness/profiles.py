"""The harness's Hypothesis profiles, registered whenever Hypothesis is imported.

``im2col-fast`` (the project's own test run, CI) and ``im2col-campaign`` (long runs).
Registered from Hypothesis's ``hypothesis`` entry point (see pyproject.toml), which
Hypothesis calls at the end of its own import: a profile exists for anything that can load
it (``--hypothesis-profile``, ``settings.load_profile``), and a test run that never imports
Hypothesis never pays for it. This module imports nothing but Hypothesis, which is already
being imported when it runs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def register() -> None:
    settings.register_profile(
        "im2col-fast", max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile(
        "im2col-campaign", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
