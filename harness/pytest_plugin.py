"""pytest plugin: one campaign seed for a whole run, and the harness's Hypothesis profiles.

Loaded into every pytest run of an environment where the harness is installed, so it
imports nothing heavy and changes nothing until a test uses the harness: no torch, no
Hypothesis, no thread setting (a campaign sets that as it starts), not even a draw from
the global `random`. The seed works like pytest-randomly's: chosen once, printed in the
header, sent from the controller to every xdist worker, so that a failing run is re-run
exactly with ``--im2col-seed``. Under CI (the ``CI`` variable set) the seed is fixed. A
test's campaigns are seeded from it and the test's node id: the `im2col_seed` fixture, and
`assert_conv2d_matches` called without ``seed=`` (through `harness.running_test`).

Profiles (`harness.profiles`, registered when Hypothesis is imported): ``im2col-fast`` and
``im2col-campaign``, chosen with Hypothesis's own ``--hypothesis-profile`` or the
environment variable ``IM2COL_HARNESS_PROFILE``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

from harness import running_test

PROFILE_VARIABLE = "IM2COL_HARNESS_PROFILE"
CI_SEED = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("im2col-harness")
    group.addoption(
        "--im2col-seed", type=int, default=None, help="seed for the harness's fuzz campaigns (default: random, printed)"
    )


def pytest_configure(config: pytest.Config) -> None:
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        config._im2col_seed = worker_input["im2col_seed"]  # type: ignore[attr-defined]
    else:
        chosen = config.getoption("im2col_seed")
        if chosen is None:
            # Like Hypothesis's ci profile (derandomize): CI runs are repeatable, local ones
            # explore. From the system, not the global `random`: the user's sequence is theirs.
            chosen = CI_SEED if os.environ.get("CI") else random.SystemRandom().getrandbits(32)
        config._im2col_seed = chosen  # type: ignore[attr-defined]
    if not config.getoption("hypothesis_profile", None) and os.environ.get(PROFILE_VARIABLE):
        from hypothesis import settings  # asked for by name: the profiles come with it

        settings.load_profile(os.environ[PROFILE_VARIABLE])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker fuzzes with the controller's seed."""
    node.workerinput["im2col_seed"] = node.config._im2col_seed


def pytest_report_header(config: pytest.Config) -> str:
    return f"im2col-harness: --im2col-seed={config._im2col_seed}"  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Say which test runs, setup to teardown, for `assert_conv2d_matches` to seed from;
    then put back what was there (a pytest run inside a test, as pytester's, ends first)."""
    outer = running_test.current
    running_test.current = running_test.RunningTest(item.nodeid, item.config._im2col_seed)  # type: ignore[attr-defined]
    try:
        return (yield)
    finally:
        running_test.current = outer


@pytest.fixture
def im2col_seed() -> int:
    """This test's campaign seed: the one `assert_conv2d_matches` uses here without ``seed=``."""
    assert running_test.current is not None  # set around every test by pytest_runtest_protocol
    return running_test.current.campaign_seed()
