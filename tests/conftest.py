"""The project's own test run uses the fast profile unless one is chosen explicitly."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from harness.pytest_plugin import PROFILE_VARIABLE


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None) and not os.environ.get(PROFILE_VARIABLE):
        settings.load_profile("im2col-fast")
