"""Conditions beyond equality: comparisons (`<`, `<=`, `>`, `>=`, `!=`, `in`) over a case's
fields, and the machine's own fields (the torch version, the CPU's flags), with which a
known torch bug is declared only where it happens.

Each is checked both ways: a case (or machine) that meets it, one that does not; a draw
inside a limit written with a comparison; a declaration that misuses one is one line
naming the field.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from typing import Any

import declared
import pytest
from hypothesis import Phase, given, settings
from packaging.version import Version

from harness import declare
from harness.api import assert_conv2d_matches
from harness.campaign.engine import fuzz
from harness.generate.strategies import cases
from harness.model import conditions
from harness.model.capabilities import Capabilities, refusal
from harness.model.case import Case
from harness.model.conditions import Compare, met, parse, shown, to_data, unmet
from harness.model.registry import Registry, implementation_from
from harness.reporting.report import campaign_report, format_expectations

CASE = Case(batch=2, in_channels=3, out_channels=4, groups=1, height=5, width=6, kernel=(3, 3), dtype="float16")


def condition(raw: dict[str, Any]) -> conditions.Condition:
    return parse(raw, "test")


@pytest.mark.parametrize(
    "raw, meets",
    [
        ({"batch": {">=": 2}}, True),
        ({"batch": {">": 2}}, False),
        ({"height": {"<": 6}}, True),
        ({"height": {"<=": 4}}, False),
        ({"width": {"!=": 6}}, False),
        ({"kernel": {"!=": 1}}, True),
        ({"kernel": {"!=": [3, 3]}}, False),
        ({"dtype": {"in": ["float16", "bfloat16"]}}, True),
        ({"dtype": {"in": ["float32"]}}, False),
        ({"stride": {"in": [2, [1, 2]]}}, False),
        ({"stride": {"in": [1]}}, True),
        ({"batch": {">=": 1}, "dtype": "float16"}, True),
        ({"batch": {">=": 1}, "dtype": "float32"}, False),
    ],
)
def test_a_comparison_is_met_by_the_cases_it_describes_and_no_others(raw: dict[str, Any], meets: bool) -> None:
    assert met(CASE, condition(raw)) is meets
    assert (unmet(CASE, condition(raw)) == []) is meets


def test_an_unbatched_input_meets_no_ordering_of_the_batch() -> None:
    unbatched = replace(CASE, batch=None)
    assert not met(unbatched, condition({"batch": {">=": 0}}))
    assert met(unbatched, condition({"batch": {"!=": 1}}))


def test_the_torch_version_is_compared_as_a_version_without_its_local_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "torch_version", lambda: Version("2.14.1"))
    assert met(CASE, condition({"torch": "2.14.1"}))
    assert met(CASE, condition({"torch": {">=": "2.14"}}))
    assert met(CASE, condition({"torch": {"<": "2.15"}}))
    assert not met(CASE, condition({"torch": {"<": "2.14"}}))
    assert met(CASE, condition({"torch": {"in": ["2.13.0", "2.14.1"]}}))
    assert not met(CASE, condition({"torch": "2.13.0"}))


def test_the_local_part_of_a_torch_build_is_not_part_of_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "version", lambda name: "2.14.1+cu130")
    conditions.torch_version.cache_clear()
    try:
        assert met(CASE, condition({"torch": "2.14.1"}))
        assert met(CASE, condition({"torch": {"<=": "2.14.1"}}))
    finally:
        conditions.torch_version.cache_clear()


def test_the_installed_torch_is_the_one_compared() -> None:
    import torch

    assert met(CASE, condition({"torch": Version(torch.__version__).public}))
    assert not met(CASE, condition({"torch": {">": Version(torch.__version__).public}}))


def test_a_cpu_flag_is_met_only_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "cpu_flags", lambda: frozenset({"sse2", "avx2"}))
    assert met(CASE, condition({"cpu_flags": {"contains": "avx2"}}))
    assert not met(CASE, condition({"cpu_flags": {"contains": "avx512_fp16"}}))


def test_this_machines_cpu_flags_are_read() -> None:
    flags = conditions.cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    some = sorted(flags)[0]
    assert met(CASE, condition({"cpu_flags": {"contains": some}}))


@pytest.mark.parametrize(
    "raw, named",
    [
        ({"dtype": {">": "float16"}}, "dtype cannot be compared with '>'"),
        ({"kernel": {"<": 3}}, "kernel cannot be compared with '<'"),
        ({"batch": {">=": 1, "<": 4}}, "one comparison"),
        ({"batch": {"~": 1}}, "one comparison"),
        ({"dtype": {"in": []}}, "non-empty list"),
        ({"dtype": {"in": "float16"}}, "non-empty list"),
        ({"dtype": {"in": ["float16", "float99"]}}, "dtype="),
        ({"batch": {">=": "1"}}, "batch="),
        ({"batch": {">=": True}}, "batch="),
        ({"torch": "two point five"}, "torch="),
        ({"torch": {"contains": "2"}}, "torch cannot be compared with 'contains'"),
        ({"cpu_flags": "avx2"}, "'contains'"),
        ({"cpu_flags": {"in": ["avx2"]}}, "cpu_flags cannot be compared with 'in'"),
        ({"cpu_flags": {"contains": "avx 2"}}, "cpu_flags="),
    ],
)
def test_a_misused_comparison_is_one_line_naming_the_field(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities.from_mapping({"limits": [{"when": raw, "require": {"bias": False}}]})
    message = str(raised.value)
    assert named in message and "\n" not in message and message.startswith("capabilities: limits[0].when")


def test_a_comparison_round_trips_as_declared_and_pickles_and_is_shown_as_written() -> None:
    raw = {
        "batch": {">=": 1},
        "dtype": {"in": ["float16", "bfloat16"]},
        "stride": {"!=": [1, 2]},
        "torch": {"<": "2.15"},
        "cpu_flags": {"contains": "avx512_fp16"},
    }
    parsed = condition(raw)
    assert json.loads(json.dumps(to_data(parsed))) == raw
    assert condition(to_data(parsed)) == parsed
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    assert shown(parsed) == (
        "batch>=1, cpu_flags contains 'avx512_fp16', dtype in ['float16', 'bfloat16'], stride!=[1, 2], torch<'2.15'"
    )
    assert all(isinstance(value, Compare) for _, value in parsed)


def test_a_limit_written_with_comparisons_refuses_what_it_says_and_draws_stay_inside_it() -> None:
    caps = Capabilities.from_mapping(
        {
            "limits": [
                {
                    "when": {"dtype": {"in": ["float16", "bfloat16"]}},
                    "require": {"in_channels": {"<=": 2}},
                    "why": "its half-precision path takes at most two channels",
                }
            ]
        }
    )
    assert refusal(caps, CASE) is not None  # float16 with 3 channels
    assert refusal(caps, replace(CASE, in_channels=2, groups=1)) is None
    assert refusal(caps, replace(CASE, dtype="float32")) is None
    drawn: list[Case] = []

    @settings(max_examples=200, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
    @given(cases(caps))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    assert all(refusal(caps, case) is None for case in drawn)
    assert any(case.dtype in ("float16", "bfloat16") for case in drawn)
    assert any(case.in_channels > 2 for case in drawn)  # the limit holds only where its 'when' does


def test_a_limit_on_another_torch_refuses_nothing_here_and_one_on_this_torch_refuses() -> None:
    here = str(conditions.torch_version())
    other = Capabilities.from_mapping({"limits": [{"when": {"torch": {"<": "2.0"}}, "require": {"bias": False}}]})
    this = Capabilities.from_mapping({"limits": [{"when": {"torch": here}, "require": {"bias": False}}]})
    biased = replace(CASE, bias=True)
    assert refusal(other, biased) is None
    assert refusal(this, biased) is not None


def test_a_known_disagreement_declared_for_this_torch_is_expected_and_for_another_torch_is_a_bug() -> None:
    """A known torch bug is declared with the versions it happens on: on those it is expected
    (and its disappearance fails the run), on the others the same failure is a bug."""
    here = str(conditions.torch_version())
    on_this = {**declared.SCIPY_SAME, "when": {**declared.SCIPY_SAME["when"], "torch": here}}
    on_older = {**declared.SCIPY_SAME, "when": {**declared.SCIPY_SAME["when"], "torch": {"<": "2.0"}}}
    expected_here = declare(expected=[on_this])(lambda *a, **k: declared.same_padding_odd_pixel_first(*a, **k))
    assert_conv2d_matches(expected_here, max_examples=300, seed=5, name="expected_here")
    expected_elsewhere = declare(expected=[on_older])(lambda *a, **k: declared.same_padding_odd_pixel_first(*a, **k))
    with pytest.raises(AssertionError, match=r"disagrees with torch\.nn\.Conv2d"):
        assert_conv2d_matches(expected_elsewhere, max_examples=300, seed=5, name="expected_elsewhere")


def test_a_non_strict_disagreement_not_seen_is_said_and_is_no_failure_and_one_seen_is_expected() -> None:
    """``strict: false``: a known bug whose whole trigger is not known happens on some of the
    cases meeting its ``when`` only; a campaign that reaches them and does not see it says so
    and passes, where a strict declaration fails (the disagreement would be gone)."""
    loose = {**declared.SCIPY_SAME, "strict": False}
    fixed = implementation_from("fixed", declare(expected=[loose])(lambda *a, **k: declared.correct(*a, **k)))
    seen = implementation_from(
        "seen", declare(expected=[loose])(lambda *a, **k: declared.same_padding_odd_pixel_first(*a, **k))
    )
    result = fuzz([fixed, seen], 300, 5)
    report = campaign_report(result, Registry({"fixed": fixed, "seen": seen}), 300)
    assert report.exit_status() == 0
    states = {name: [state for _, state, *_ in report.rows[name].expectations()] for name in ("fixed", "seen")}
    assert states == {"fixed": ["not seen"], "seen": ["happened"]}
    lines = format_expectations("fixed", report.rows["fixed"])
    assert lines and lines[0].startswith("not seen fixed: expected disagreement") and "(on some such cases)" in lines[0]
    with pytest.raises(AssertionError, match="did not happen"):
        assert_conv2d_matches(
            declare(expected=[declared.SCIPY_SAME])(lambda *a, **k: declared.correct(*a, **k)),
            max_examples=300,
            seed=5,
            name="strict",
        )


def test_strict_must_be_true_or_false() -> None:
    with pytest.raises(ValueError, match=r"expected\[0\]\.strict"):
        Capabilities.from_mapping({"expected": [{**declared.SCIPY_SAME, "strict": "no"}]})
    parsed = Capabilities.from_mapping({"expected": [{**declared.SCIPY_SAME, "strict": False}]})
    assert parsed.expected[0].to_data()["strict"] is False
    assert "strict" not in Capabilities.from_mapping({"expected": [declared.SCIPY_SAME]}).expected[0].to_data()
