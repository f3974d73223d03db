"""A quick campaign over every registered implementation: each behaves as registered.

The number of cases comes from the Hypothesis profile (``im2col-fast`` by default,
``--hypothesis-profile=im2col-campaign`` for a long run); the seed from the plugin. The real
libraries' adapters (an entry point naming an extra) are left to tests/test_adapters.py:
libraries have real bugs, which that file expects, each kept and verified in the README.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from hypothesis import settings

from harness.campaign.engine import fuzz
from harness.model.registry import ENTRY_POINT_GROUP, discover
from harness.reporting.report import campaign_report, format_failures

REGISTRY = discover()
LIBRARIES = {entry_point.name for entry_point in entry_points(group=ENTRY_POINT_GROUP) if entry_point.extras}


@pytest.mark.parametrize("name", sorted(set(REGISTRY.implementations) - LIBRARIES))
def test_a_registered_implementation_behaves_as_registered(name: str, im2col_seed: int) -> None:
    implementation = REGISTRY.implementations[name]
    assert settings.default is not None  # conftest loads a profile
    result = fuzz([implementation], settings.default.max_examples, im2col_seed)
    if implementation.known_buggy:
        assert result.findings, f"the canary {name} was not caught (seed {im2col_seed})"
    else:
        report = campaign_report(result, discover([name]), settings.default.max_examples)
        assert not result.findings, "\n".join(format_failures(report))
    assert result.tallies[name].examples >= settings.default.max_examples


def test_the_canary_is_caught_with_the_layout_diagnosis(im2col_seed: int) -> None:
    result = fuzz([REGISTRY.implementations["original"]], 50, im2col_seed)
    inside = [f for f in result.findings if f.verdict.kind != "outside-declared"]
    (finding,) = inside
    assert finding.verdict.kind == "layout"
    assert "same values in the same order, wrong shape" in finding.verdict.message
