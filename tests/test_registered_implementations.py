"""A quick campaign over every registered implementation: each behaves as registered.

The number of cases comes from the Hypothesis profile (``im2col-fast`` by default,
``--hypothesis-profile=im2col-campaign`` for a long run); the seed from the plugin.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from harness.campaign import fuzz
from harness.registry import discover
from harness.report import campaign_report, format_failures

REGISTRY = discover()


@pytest.mark.parametrize("name", sorted(REGISTRY.implementations))
def test_a_registered_implementation_behaves_as_registered(name: str, im2col_seed: int) -> None:
    implementation = REGISTRY.implementations[name]
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
