"""One cause, one report, its trigger named: bugs whose reports are easy to get wrong.

A message that embeds the shapes it was raised on is one bug whatever the shapes; an even
kernel's 'same' padding, an output one column wide with a stride, a stride larger than the
kernel's reach, a bias dropped only with groups: each is named as the trigger, in words,
and each named feature was checked (the failure goes without it). One default campaign.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import trigger_bugs

from harness.arguments import DEFAULT_MAX_EXAMPLES
from harness.campaign.bugs import attributed, one_report_each
from harness.campaign.check import check_case
from harness.campaign.engine import CampaignResult, fuzz
from harness.execute.supervisor import Supervisor
from harness.model.case import Case
from harness.model.features import SIMPLEST, describe, features
from harness.model.finding import Finding
from harness.model.registry import implementation_from
from harness.model.template import template
from harness.model.verdict import failure

TRIGGERS = {
    # bug -> (its kind, the features it needs, words its report says)
    "misaligned_matmul": ("exception", None, "not aligned"),
    "same_padding_even_kernel_left": (
        "values",
        {"kernel>1", "padding='same'", "padding='same' uneven"},
        "only with an even kernel with padding='same' (torch pads one more on the bottom/right)",
    ),
    "one_column_fast_path": ("shape", {"stride>1", "output_w=1"}, "only with stride>1, an output one column wide"),
    "stride_past_the_kernel": ("values", {"stride>1", "stride>reach"}, "a stride larger than the kernel's reach"),
    "drops_bias_when_grouped": ("values", {"bias", "groups>1", "in_channels>1", "out_channels>1"}, "bias, groups>1"),
}


@pytest.fixture(scope="module")
def campaign(request: pytest.FixtureRequest) -> CampaignResult:
    seed = request.config._im2col_seed  # type: ignore[attr-defined]
    return fuzz(
        [implementation_from(name, getattr(trigger_bugs, name)) for name in TRIGGERS], DEFAULT_MAX_EXAMPLES, seed
    )


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_each_cause_is_one_report_naming_its_trigger(campaign: CampaignResult, name: str) -> None:
    kind, needs, words = TRIGGERS[name]
    found = [f for f in campaign.findings if f.implementation == name]
    assert [f.verdict.kind for f in found] == [kind], [(f.verdict.kind, f.case.id, f.diagnosis) for f in found]
    (finding,) = found
    assert finding.shrunk and finding.reproducible and words in finding.diagnosis, finding.diagnosis
    if needs is not None:
        assert finding.needs == needs, finding.diagnosis
        assert finding.diagnosis.endswith(describe(frozenset(needs)))


def test_a_message_with_the_shapes_in_it_is_one_bug_whatever_the_shapes(campaign: CampaignResult) -> None:
    (finding,) = [f for f in campaign.findings if f.implementation == "misaligned_matmul"]
    # Its other shapes, where they were met, are listed under it, each message kept whole.
    for symptom in finding.symptoms:
        assert template(symptom.verdict.message) == template(finding.verdict.message)
    assert "(at trigger_bugs.py:" in finding.verdict.message
    # Where one of them fails without a feature the minimal case needs, "only with" is not said.
    lacking = [symptom for symptom in finding.symptoms if finding.needs - features(symptom.case)]
    assert ("but not every case does" in finding.diagnosis) == bool(lacking), finding.diagnosis


def test_a_trigger_that_another_case_fails_without_is_not_said_to_be_the_only_one() -> None:
    """An "A or B" cause: the minimal case needs a kernel wider than 1, and a grouped case
    with a 1x1 kernel fails the same way."""
    wide = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=2, width=2, kernel=(1, 2))
    grouped = Case(batch=1, in_channels=2, out_channels=2, groups=2, height=1, width=1, kernel=(1, 1))
    verdict = failure("exception", "ValueError: shapes (2,1) and (1,2) not aligned (at x.py:3)", "ValueError@x.py:3")
    alone = Finding("x", wide, verdict, needs=frozenset({"kernel>1"}))
    assert alone.diagnosis.endswith("; fails this way only with kernel>1")
    both = replace(alone, symptoms=(Finding("x", grouped, verdict),))
    assert both.also_without == {"kernel>1"}
    assert both.diagnosis.endswith(
        "; this case fails this way only with kernel>1, but not every case does: "
        "one listed below fails without kernel>1"
    )
    assert both.key == alone.key  # the same bug, whatever is said of it


def test_a_named_feature_is_one_its_failure_needs() -> None:
    assert describe(frozenset()) == SIMPLEST
    assert (
        describe(frozenset(), frozenset({"dilation>1"}))
        == "no feature found that it needs (not tried without dilation>1)"
    )
    assert describe(frozenset({"bias"}), frozenset({"dilation>1"})) == (
        "fails this way only with bias (not tried without dilation>1)"
    )


def test_a_failure_reported_as_a_bug_is_not_also_listed_under_another() -> None:
    def raised(message: str, ic: int) -> Finding:
        case = Case(batch=1, in_channels=ic, out_channels=1, groups=1, height=1, width=1, kernel=(1, 1))
        return Finding("x", case, failure("exception", f"ValueError: {message} (at x.py:3)", "ValueError@x.py:3"))

    shapes, other = raised("shapes (1,2) and (2,1)", 2), raised("no groups", 1)
    listed = replace(other, symptoms=(raised("shapes (3,1) and (1,3)", 3), raised("no groups", 4)))
    kept, bug = one_report_each([listed, shapes])
    assert kept.symptoms == (listed.symptoms[1],) and bug == shapes


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("doubles_one_channel", "fails this way only with a single input channel"),
        (
            "doubles_one_channel_refuses_more",
            "no feature found that it needs (not tried without a single input channel)",
        ),
    ],
)
def test_a_feature_whose_absence_leaves_the_declaration_is_tried_just_outside_it(name: str, said: str) -> None:
    implementation = implementation_from(name, getattr(trigger_bugs, name))
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=1, width=1, kernel=(1, 1))
    verdict = check_case(case, [implementation])[name]
    found = attributed(Finding(name, case, verdict), implementation, Supervisor())
    assert found.diagnosis.endswith("; " + said), found.diagnosis
