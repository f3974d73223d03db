"""The declaration language real libraries need: per-argument forms, conditional limits,
and known disagreements, from the declaration to the campaign, the reports and replay.

`declared` holds the implementations: each right only inside a conditional limit (and
declaring it or not), or disagreeing with torch in a documented way (and saying so).
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import declared
import pytest
from hypothesis import Phase, given, settings

from harness.api import assert_conv2d_matches
from harness.backends.base import merge
from harness.campaign.check import check_case
from harness.campaign.engine import CampaignResult, Tally, fuzz
from harness.campaign.replay import Target, judge_row
from harness.campaign.tallies import reached
from harness.cli import main
from harness.generate.strategies import cases
from harness.generate.support import full_domain
from harness.model.capabilities import Capabilities, call_arguments, declaration_of, declare, refusal, widenings
from harness.model.case import Case
from harness.model.features import features
from harness.model.finding import Finding
from harness.model.registry import Registry, implementation_from
from harness.model.verdict import EXPECTED, OUTSIDE, UNSUPPORTED
from harness.reporting.report import campaign_report, format_failures, format_summary


def _raw(**fields: Any) -> Capabilities:
    """Capabilities from a declaration's fields as a plugin writes them, dicts, which its
    __post_init__ converts; its annotations give the converted types. Passing them raw is the point."""
    return Capabilities(**fields)


LIMITED = _raw(limits=(declared.SAME_WITHOUT_DILATION, declared.STRIDE_DIVIDES))
SAME_DILATED = Case(
    batch=1, in_channels=1, out_channels=1, groups=1, height=6, width=6, kernel=(2, 2), padding="same", dilation=2
)


# -- the declaration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping, named",
    [
        pytest.param(
            {"limits": [{"when": {"paddding": "same"}, "require": {"dilation": 1}}]},
            "'paddding'",
            id="unknown-field-in-when",
        ),
        pytest.param(
            {"limits": [{"when": {"padding": "same"}, "require": {"dilation": 0}}]},
            "dilation=0",
            id="bad-value-in-require",
        ),
        pytest.param({"limits": [{"when": {"padding": "same"}}]}, "'require'", id="no-require"),
        pytest.param({"limits": [{"require": {}}]}, "require is empty", id="empty-require"),
        pytest.param({"limits": [{"require": {"bias": False}, "because": "x"}]}, "limits[0]", id="unknown-key"),
        pytest.param({"expected": [{**declared.SCIPY_SAME, "kind": "wrong"}]}, "expected[0].kind", id="bad-kind"),
        pytest.param(
            {"expected": [{**declared.SCIPY_SAME, "kind": OUTSIDE}]},
            "expected[0].kind",
            id="outside-declared-is-no-disagreement",
        ),
        pytest.param({"expected": [{"when": {"padding": "same"}, "kind": "values"}]}, "'reason'", id="no-reason"),
        pytest.param(
            {"expected": [{**declared.SCIPY_SAME, "when": {"odd": True}}]}, "'odd'", id="unknown-field-in-expected-when"
        ),
        pytest.param({"arg_forms": {"strides": "int"}}, "'strides'", id="unknown-argument-in-arg-forms"),
        pytest.param({"arg_forms": {"stride": "list"}}, "arg_forms['stride']", id="unknown-form-for-an-argument"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_problem(mapping: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities.from_mapping(mapping)
    message = str(raised.value)
    assert named in message and "\n" not in message and message.startswith("capabilities: ")


def test_declare_and_a_plain_dict_declare_the_same_and_it_round_trips_as_plain_data() -> None:
    mapping: dict[str, Any] = {
        "limits": [declared.SAME_WITHOUT_DILATION],
        "expected": [declared.SCIPY_SAME],
        "arg_forms": declared.FORMS,
    }

    def fn(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1): ...

    fn.__conv2d_declaration__ = mapping  # type: ignore[attr-defined]
    from_dict = declaration_of(fn).capabilities
    assert from_dict == declaration_of(declare(**mapping)(lambda *a, **k: None)).capabilities
    assert Capabilities.from_mapping(from_dict.to_mapping()) == from_dict
    assert pickle.loads(pickle.dumps(from_dict)) == from_dict  # to worker processes and Dask tasks
    data = from_dict.to_mapping()
    assert data["limits"] == [
        {"when": {"padding": "same"}, "require": {"dilation": 1}, "why": declared.SAME_WITHOUT_DILATION["why"]}
    ]
    assert data["expected"][0]["link"] == declared.SCIPY_SAME["link"]


def test_list_shows_each_limit_and_disagreement_as_declared() -> None:
    shown = _raw(limits=(declared.SAME_WITHOUT_DILATION,), expected=(declared.SCIPY_SAME,)).shown()
    assert shown == [
        f"limit: dilation=1 when padding='same' ({declared.SAME_WITHOUT_DILATION['why']})",
        "expected: [values, layout, nonfinite] when padding='same', uneven_padding=True: "
        f"{declared.SCIPY_SAME['reason']} "
        f"({declared.SCIPY_SAME['link']})",
    ]


def test_new_fields_leave_the_repr_that_seeds_draws_alone() -> None:
    """Seeds are derived from the domain's repr: every declaration made before keeps its draws."""
    assert repr(_raw(limits=(declared.STRIDE_DIVIDES,), expected=(declared.SCIPY_SAME,))) == repr(Capabilities())
    assert repr(_raw(arg_forms={"stride": "int", "padding": "int", "dilation": "int"})) == repr(
        Capabilities(arg_forms=("int",))
    )


def test_a_conditional_limit_refuses_only_cases_meeting_its_when_and_not_its_require() -> None:
    caps = _raw(limits=(declared.SAME_WITHOUT_DILATION,))
    reason = refusal(caps, SAME_DILATED)
    assert reason is not None and "dilation" in reason and declared.SAME_WITHOUT_DILATION["why"] in reason
    assert refusal(caps, Case(**{**SAME_DILATED.__dict__, "dilation": (1, 1)})) is None
    assert refusal(caps, Case(**{**SAME_DILATED.__dict__, "padding": 1})) is None


def test_stride_divides_is_worked_out_from_the_padded_input_and_the_dilated_kernel() -> None:
    caps = _raw(limits=(declared.STRIDE_DIVIDES,))
    base = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=7, width=7, kernel=(3, 3), stride=2)
    assert refusal(caps, base) is None  # 7 - 3 = 4, divided by 2
    assert refusal(caps, Case(**{**base.__dict__, "height": 8})) is not None
    assert refusal(caps, Case(**{**base.__dict__, "height": 8, "padding": (0, 0)})) is not None
    assert refusal(caps, Case(**{**base.__dict__, "height": 8, "padding": "valid"})) is None  # not explicit


def test_per_argument_forms_shape_each_argument_on_its_own() -> None:
    caps = _raw(arg_forms=declared.FORMS)
    case = Case(
        batch=1,
        in_channels=1,
        out_channels=1,
        groups=1,
        height=9,
        width=9,
        kernel=(2, 2),
        stride=(2, 2),
        padding=1,
        dilation=(2, 2),
    )
    assert call_arguments(caps, case) == {"groups": 1, "stride": 2, "padding": (1, 1), "dilation": 2}
    assert refusal(caps, Case(**{**case.__dict__, "stride": (1, 2)})) is not None  # no int for it
    assert refusal(caps, Case(**{**case.__dict__, "padding": (1, 2)})) is None  # a pair is taken
    assert _raw(arg_forms={"stride": "int"}).forms("padding") == ("int", "pair")  # unnamed: both


# -- drawing inside, and just outside -----------------------------------------------------


def _collect(caps: Capabilities, examples: int = 300) -> list[Case]:
    seen: list[Case] = []

    # No health check is suppressed: drawing inside a conditional limit must not filter much.
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
    @given(cases(caps))
    def collect(case: Case) -> None:
        seen.append(case)

    collect()
    return seen


def test_draws_stay_inside_the_conditional_limits_and_still_reach_both_sides_of_them() -> None:
    drawn = _collect(LIMITED)
    assert all(not case.problems() and refusal(LIMITED, case) is None for case in drawn)
    reached = Counter(f for case in drawn for f in features(case))
    assert reached["padding='same'"] and reached["dilation>1"] and reached["stride>1"]
    # Inside the limits: 'same' with an even kernel, and strides on explicit padding.
    assert any(case.padding == "same" and case.kernel[0] % 2 == 0 for case in drawn)
    assert any(
        not isinstance(case.padding, str) and max(case.stride if isinstance(case.stride, tuple) else (case.stride,)) > 1
        for case in drawn
    )


def test_draws_hand_over_the_declared_forms_per_argument() -> None:
    caps = _raw(arg_forms=declared.FORMS)
    drawn = _collect(caps, 200)
    assert all(isinstance(case.stride, int) and isinstance(case.dilation, int) for case in drawn)
    assert all(isinstance(case.padding, tuple | str) for case in drawn)


def test_each_conditional_limit_is_lifted_on_its_own_where_its_when_holds() -> None:
    lifted = [w for w in widenings(LIMITED, full_domain()) if w.limits != LIMITED.limits]
    assert len(lifted) == 2  # one per limit, the other kept
    same_lifted = next(w for w in lifted if declared.STRIDE_DIVIDES in [limit.to_data() for limit in w.limits])
    drawn = _collect(same_lifted, 150)
    assert all(case.padding == "same" for case in drawn)  # the lifted limit's `when`, every draw
    broken = [case for case in drawn if refusal(LIMITED, case)]
    assert broken and all("dilation" in str(refusal(LIMITED, case)) for case in broken)


# -- the campaign -------------------------------------------------------------------------

NAMES = [
    "same_ignores_dilation",
    "same_ignores_dilation_declared",
    "same_refuses_dilation_declared",
    "drops_last_row_declared",
    "raises_where_stride_does_not_divide",
    "scipy_same",
    "scipy_same_fixed",
    "scipy_same_unreached",
    "takes_declared_forms",
]


# Enough for every seed tried (40) to reach 'same' with dilation inside, and uneven 'same'.
EXAMPLES = 1500


@pytest.fixture(scope="module")
def campaign(request: pytest.FixtureRequest) -> CampaignResult:
    seed = request.config._im2col_seed  # type: ignore[attr-defined]
    return fuzz([implementation_from(name, getattr(declared, name)) for name in NAMES], EXAMPLES, seed)


@pytest.fixture(scope="module")
def report(campaign: CampaignResult) -> Any:
    registry = Registry({name: implementation_from(name, getattr(declared, name)) for name in NAMES})
    return campaign_report(campaign, registry, EXAMPLES)


def _kinds(campaign: CampaignResult, name: str) -> list[str | None]:
    return [f.verdict.kind for f in campaign.findings if f.implementation == name]


def test_wrong_only_outside_its_conditional_limit_and_undeclared_it_is_caught_inside(campaign: CampaignResult) -> None:
    found = [f for f in campaign.findings if f.implementation == "same_ignores_dilation"]
    assert found and all(f.verdict.kind != OUTSIDE for f in found)
    assert {"padding='same'", "dilation>1"} <= found[0].needs


def test_declaring_the_limit_and_raising_outside_it_passes(campaign: CampaignResult, report: Any) -> None:
    for name in ("same_refuses_dilation_declared", "raises_where_stride_does_not_divide"):
        assert _kinds(campaign, name) == []
        assert campaign.tallies[name].statuses[UNSUPPORTED] > 0  # it was called just outside, and raised
        assert report.rows[name].as_registered


def test_silently_wrong_just_outside_a_declared_limit_is_an_outside_declared_failure(campaign: CampaignResult) -> None:
    for name in ("same_ignores_dilation_declared", "drops_last_row_declared"):
        kinds = _kinds(campaign, name)
        assert kinds and set(kinds) == {OUTSIDE}, (name, kinds)


def test_a_known_disagreement_that_happens_is_expected_and_the_run_passes(report: Any) -> None:
    row = report.rows["scipy_same"]
    assert not row.findings and row.as_registered and row.tally.statuses[EXPECTED] > 0
    lines = format_failures(report)
    (line,) = [i for i, text in enumerate(lines) if text.startswith("EXPECTED scipy_same ")]
    assert declared.SCIPY_SAME["reason"] in lines[line] and declared.SCIPY_SAME["link"] in lines[line]
    assert lines[line + 2].startswith("    repro: python -m harness replay ")
    assert f"{EXPECTED}" in format_summary(report).splitlines()[0]


def test_a_known_disagreement_that_stopped_happening_fails_the_run_naming_it(report: Any) -> None:
    row = report.rows["scipy_same_fixed"]
    assert not row.findings and not row.as_registered and row.verdict() == "FAILED"
    (line,) = [text for text in format_failures(report) if text.startswith("FAILED scipy_same_fixed")]
    assert declared.SCIPY_SAME["reason"] in line and "did not happen" in line
    assert line.endswith("(fixed? remove it from the declaration)")
    assert report.exit_status() == 1


def test_a_known_disagreement_never_reached_is_said_and_is_no_failure(report: Any) -> None:
    row = report.rows["scipy_same_unreached"]
    assert row.as_registered and not row.findings
    assert [e[1] for e in row.expectations()] == ["not reached"]
    assert any(text.startswith("not reached scipy_same_unreached") for text in format_failures(report))


def test_per_argument_forms_reach_the_implementation_as_declared(campaign: CampaignResult) -> None:
    assert _kinds(campaign, "takes_declared_forms") == []  # a wrong form raises: an exception inside
    assert {("stride", "int"), ("dilation", "int"), ("padding", "tuple")} <= declared.SEEN_FORMS


def test_the_expected_disagreement_is_in_the_json_report(report: Any) -> None:
    (entry,) = report.to_json()["implementations"]["scipy_same"]["expected"]
    assert entry["status"] == "happened" and entry["happened"] > 0 and entry["case"]
    assert entry["link"] == declared.SCIPY_SAME["link"]


def test_shards_add_up_what_each_saw_of_a_disagreement() -> None:
    one, two = (CampaignResult(seed=1, tallies={"x": Tally()}) for _ in range(2))
    one.tallies["x"].expectations.update({(0, "reached"): 3, (0, "happened"): 1})
    one.tallies["x"].disagreed[0] = "first"
    two.tallies["x"].expectations.update({(0, "reached"): 2})
    merged = merge([one, two], 1).tallies["x"]
    assert merged.expectations == Counter({(0, "reached"): 5, (0, "happened"): 1})
    assert merged.disagreed == {0: "first"}


# -- replay and the pytest entry ----------------------------------------------------------


def test_replay_of_a_declared_disagreement_says_expected_with_its_reason() -> None:
    implementation = implementation_from("scipy_same", declared.scipy_same)
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(2, 2), padding="same")
    verdict = check_case(case, [implementation], beyond=True)["scipy_same"]
    assert verdict.status == EXPECTED and declared.SCIPY_SAME["link"] in verdict.message
    row = judge_row(Target("command line", case), implementation, verdict)
    assert row.outcome == EXPECTED and row.expected


def test_a_saved_failure_declared_since_as_a_known_disagreement_replays_as_expected_not_fixed() -> None:
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(2, 2), padding="same")
    undeclared = implementation_from("scipy", declared.same_padding_odd_pixel_first)
    saved = Finding("scipy", case, check_case(case, [undeclared])["scipy"])  # as the corpus kept it
    assert saved.verdict.kind == "values"
    now = implementation_from("scipy", declared.scipy_same)  # the same code, the disagreement declared
    verdict = check_case(case, [now], beyond=True)["scipy"]
    row = judge_row(Target("corpus/failures/x.json", case, saved), now, verdict)
    assert (row.outcome, row.expected) == (EXPECTED, True)


def test_assert_conv2d_matches_fails_on_a_disagreement_that_is_gone_and_passes_on_one_that_happens() -> None:
    assert_conv2d_matches(declared.scipy_same, max_examples=300, seed=5)
    with pytest.raises(AssertionError, match="did not happen"):
        assert_conv2d_matches(declared.scipy_same_fixed, max_examples=300, seed=5)


def test_list_shows_a_files_limits_and_disagreements(capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{Path(declared.__file__)}:scipy_same"
    assert main(["list", "--impl", spec]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(spec)]
    assert "expected: [values, layout, nonfinite] when padding='same', uneven_padding=True" in row
    assert declared.SCIPY_SAME["link"] in row


def test_an_empty_batch_or_a_case_outside_does_not_count_as_reaching_a_disagreement() -> None:
    caps = _raw(expected=(declared.SCIPY_SAME,), limits=(declared.STRIDE_DIVIDES,))
    uneven = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(2, 2), padding="same")
    assert reached(caps, uneven) == [0]
    assert reached(caps, Case(**{**uneven.__dict__, "batch": 0})) == []  # nothing to disagree on
    assert reached(caps, Case(**{**uneven.__dict__, "kernel": (3, 3)})) == []  # even padding: no `when`
    assert reached(_raw(expected=(declared.SCIPY_SAME,), dtypes=("float64",)), uneven) == []  # outside
