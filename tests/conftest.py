"""The project's own test run: the fast profile unless one is chosen explicitly, and torch
single-threaded, as a campaign runs it (the plugin leaves both alone)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from harness.execute.process_state import one_thread
from harness.pytest_plugin import PROFILE_VARIABLE


def pytest_configure(config: pytest.Config) -> None:
    one_thread()
    if not config.getoption("hypothesis_profile", None) and not os.environ.get(PROFILE_VARIABLE):
        settings.load_profile("im2col-fast")
