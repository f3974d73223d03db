"""One cause, one report: the campaign tells bugs apart by what causes them, not by how they show.

Small implementations each holding one bug of a different kind, and two holding two
independent bugs, fuzzed together in one default campaign: each one-bug implementation
yields exactly one report, attributed to what its bug needs and nothing else; the
two-bug ones yield one report per bug. Secondary symptoms of a bug (its NaN pattern on
special data, a shape failure where it also changes the output size) are folded into it.
"""

from __future__ import annotations

import math

import planted_bugs
import pytest

from harness.arguments import DEFAULT_MAX_EXAMPLES
from harness.campaign.engine import CampaignResult, fuzz
from harness.model.features import describe, features
from harness.model.finding import Finding
from harness.model.registry import implementation_from

ONE_BUG = {
    # bug -> (its kind, exactly the features it needs)
    "flips_kernel": ("values", {"kernel>1"}),  # geometry
    # padding side: the odd pixel of an even kernel's 'same' padding
    "same_padding_odd_pixel_first": ("values", {"kernel>1", "padding='same'", "padding='same' uneven"}),
    "reverses_groups": ("layout", {"groups>1", "in_channels>1", "out_channels>1"}),  # groups order
    "ignores_bias": ("values", {"bias"}),
    "float32_math": ("values", {"dtype=float64"}),  # dtype
    "swallows_nan": ("nonfinite", {"data=special"}),  # NaN handling
    "reinterprets_channels_last": ("values", {"in_channels>1", "layout=channels_last"}),  # layout
    "drops_last_row": ("shape", {"stride>1", "rows left over"}),  # shape: a stride that does not divide
}
TWO_BUGS = {
    "flips_kernel_and_ignores_bias": {("values", frozenset({"kernel>1"})), ("values", frozenset({"bias"}))},
    "swaps_stride_and_swallows_nan": {
        ("nonfinite", frozenset({"data=special"})),
        ("shape", frozenset({"stride>1", "stride_h!=stride_w"})),
    },
}


@pytest.fixture(scope="module")
def campaign(request: pytest.FixtureRequest) -> CampaignResult:
    """One default campaign over all of them (and the same wrapper with no bug)."""
    names = [*ONE_BUG, *TWO_BUGS, "correct"]
    seed = request.config._im2col_seed  # type: ignore[attr-defined]
    return fuzz([implementation_from(name, getattr(planted_bugs, name)) for name in names], DEFAULT_MAX_EXAMPLES, seed)


def reports(campaign: CampaignResult, name: str) -> list[Finding]:
    return [finding for finding in campaign.findings if finding.implementation == name]


@pytest.mark.parametrize("name", sorted(ONE_BUG))
def test_one_bug_is_one_report_naming_exactly_what_it_needs(campaign: CampaignResult, name: str) -> None:
    kind, needs = ONE_BUG[name]
    found = reports(campaign, name)
    assert [(f.verdict.kind, set(f.needs)) for f in found] == [(kind, needs)], [
        (f.verdict.kind, f.case.id, sorted(f.needs)) for f in found
    ]
    (finding,) = found
    assert finding.shrunk and finding.reproducible
    assert finding.diagnosis.endswith("; " + describe(frozenset(needs)))


@pytest.mark.parametrize("name", sorted(TWO_BUGS))
def test_two_independent_bugs_are_two_reports(campaign: CampaignResult, name: str) -> None:
    found = {(f.verdict.kind, f.needs) for f in reports(campaign, name)}
    assert found == TWO_BUGS[name]


def test_the_same_wrapper_without_a_bug_has_no_report(campaign: CampaignResult) -> None:
    assert reports(campaign, "correct") == []


def test_a_nan_mishandling_bug_is_shown_on_a_handful_of_input_elements(campaign: CampaignResult) -> None:
    (finding,) = reports(campaign, "swallows_nan")
    assert math.prod(finding.case.input_shape) <= 4, finding.case.id


def test_secondary_symptoms_are_folded_into_their_bug_with_their_cases(campaign: CampaignResult) -> None:
    symptoms = [s for name in [*ONE_BUG, *TWO_BUGS] for f in reports(campaign, name) for s in f.symptoms]
    assert symptoms  # special data alone give most bugs a NaN pattern of their own
    for name in [*ONE_BUG, *TWO_BUGS]:
        for finding in reports(campaign, name):
            for symptom in finding.symptoms:
                assert symptom.implementation == name and symptom.verdict.failed
                assert finding.needs <= features(symptom.case)  # it holds what the bug needs
