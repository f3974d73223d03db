"""pytest plugin: Hypothesis profiles for the harness, and one campaign seed for a whole run.

Profiles: ``im2col-fast`` (CI and the default test run) and ``im2col-campaign`` (long
runs), chosen with Hypothesis's own ``--hypothesis-profile`` or the environment variable
``IM2COL_HARNESS_PROFILE``. The seed works like pytest-randomly's: chosen once, printed
in the header, sent from the controller to every xdist worker, so that a failing run is
re-run exactly with ``--im2col-seed``. Under CI (the ``CI`` variable set) the seed is fixed.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "IM2COL_HARNESS_PROFILE"
CI_SEED = 0

settings.register_profile("im2col-fast", max_examples=100, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("im2col-campaign", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("im2col-harness")
    group.addoption("--im2col-seed", type=int, default=None,
                    help="seed for the harness's fuzz campaigns (default: random, printed)")


def pytest_configure(config: pytest.Config) -> None:
    from harness.check import one_thread

    one_thread()
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        config._im2col_seed = worker_input["im2col_seed"]  # type: ignore[attr-defined]
    else:
        chosen = config.getoption("im2col_seed")
        if chosen is None:
            # Like Hypothesis's ci profile (derandomize): CI runs are repeatable, local ones explore.
            chosen = CI_SEED if os.environ.get("CI") else random.getrandbits(32)
        config._im2col_seed = chosen  # type: ignore[attr-defined]
    if not config.getoption("hypothesis_profile", None) and os.environ.get(PROFILE_VARIABLE):
        settings.load_profile(os.environ[PROFILE_VARIABLE])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker fuzzes with the controller's seed."""
    node.workerinput["im2col_seed"] = node.config._im2col_seed


def pytest_report_header(config: pytest.Config) -> str:
    return (f"im2col-harness: --im2col-seed={config._im2col_seed}, "  # type: ignore[attr-defined]
            f"max_examples={settings.default.max_examples}")


@pytest.fixture
def im2col_seed(request: pytest.FixtureRequest) -> int:
    """The run's campaign seed, offset per test so tests do not all draw the same cases."""
    from harness.campaign import derive_seed

    return derive_seed(request.config._im2col_seed, request.node.nodeid)
