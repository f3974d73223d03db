"""The dimensions explored only where declared: a weight layout of its own, torch's thread
count, and realistic sizes. Each planted bug lives in one of them: found when it is
declared, its minimal case naming it, and never drawn for a declaration without it."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import planted_bugs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed

from harness.campaign.check import check_case
from harness.campaign.engine import fuzz
from harness.execute.runner import call
from harness.generate.strategies import REALISTIC_MACS, THREADS, cases, steady_draws
from harness.generate.support import full_domain
from harness.generate.tensors import make_inputs
from harness.model.capabilities import EXPLORING, Capabilities, widenings
from harness.model.case import Case
from harness.model.conditions import DeclarationError, met, parse
from harness.model.finding import Finding
from harness.model.registry import implementation_from
from harness.reporting.standalone import script

EXAMPLES = 600
ID = "mb2ic4oc4g1ih6iw6kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed7"


@functools.cache
def _findings(name: str, seed: int, **declared: object) -> tuple[Finding, ...]:
    implementation = implementation_from(name, getattr(planted_bugs, name))
    implementation = replace(implementation, capabilities=Capabilities(**declared))  # type: ignore[arg-type]
    return tuple(fuzz([implementation], EXAMPLES, seed).findings)


def _drawn(capabilities: Capabilities, examples: int = 400, seed: int = 0) -> list[Case]:
    drawn: list[Case] = []

    @hypothesis_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None)
    @given(cases(capabilities))
    def draw(case: Case) -> None:
        drawn.append(case)

    with steady_draws():  # the same cases whatever this worker imported before
        draw()
    return drawn


# -- weight layout ------------------------------------------------------------------------


def test_a_bug_only_with_a_weight_laid_out_apart_is_found_only_where_weight_layouts_are_declared(
    im2col_seed: int,
) -> None:
    name = "reads_weight_as_laid_out_like_input"
    assert _findings(name, im2col_seed) == ()
    (finding,) = _findings(name, im2col_seed, weight_layouts=("channels_last",))
    assert finding.verdict.kind == "values"
    assert finding.case.weight_layout == "channels_last" and "-weight_channels_last" in finding.case.id
    assert "weight_layout=channels_last" in finding.needs, finding.diagnosis


def test_the_weight_is_made_in_its_own_layout_and_the_input_in_the_case_s() -> None:
    case = replace(Case.from_id(ID), weight_layout="channels_last")
    inputs = make_inputs(case)
    assert inputs.input.is_contiguous() and not inputs.weight.is_contiguous()
    assert inputs.weight.is_contiguous(memory_format=torch.channels_last)
    reverse = make_inputs(replace(case, layout="channels_last", weight_layout="contiguous"))
    assert not reverse.input.is_contiguous() and reverse.weight.is_contiguous()
    assert torch.equal(inputs.weight, reverse.weight)  # the same values, in other memory


# -- threads --------------------------------------------------------------------------------


def test_a_bug_only_on_several_threads_is_found_only_where_threads_are_declared(im2col_seed: int) -> None:
    name = "wrong_on_several_threads"
    assert _findings(name, im2col_seed) == ()
    (finding,) = _findings(name, im2col_seed, threads=True)
    assert finding.case.threads == 2 and finding.case.id.endswith("-threads2")
    assert finding.needs == {"threads>1"}, finding.diagnosis
    assert torch.get_num_threads() == 1


def test_a_bug_only_on_one_thread_is_still_found_with_threads_declared(im2col_seed: int) -> None:
    findings = _findings("wrong_on_one_thread", im2col_seed, threads=True)
    assert findings and all(f.case.threads == 1 for f in findings)


def test_the_call_runs_on_the_case_s_threads_and_puts_one_back_without_a_state_change() -> None:
    seen: list[int] = []

    def counting(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)

    case = replace(Case.from_id(ID), threads=3)
    inputs = make_inputs(case)
    outcome = call(implementation_from("counting", counting), case, inputs, inputs.clone())
    assert seen == [3] and torch.get_num_threads() == 1
    assert not outcome.changed and outcome.result is not None


def test_a_call_that_sets_its_own_thread_count_is_a_state_change_put_back() -> None:
    def setting(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # type: ignore[no-untyped-def]
        torch.set_num_threads(5)
        return torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)

    case = replace(Case.from_id(ID), threads=2)
    inputs = make_inputs(case)
    outcome = call(implementation_from("setting", setting), case, inputs, inputs.clone())
    assert [change.what for change in outcome.changed] == ["torch thread count"]
    assert torch.get_num_threads() == 1


def test_thread_counts_are_one_two_the_cores_and_more() -> None:
    assert THREADS[0] == 1 and 2 in THREADS and THREADS[-1] > len(__import__("os").sched_getaffinity(0))


# -- realistic sizes ------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_realistic_cases_are_drawn_at_about_the_declared_share_and_within_the_cap(share: float) -> None:
    drawn = _drawn(Capabilities(realistic=share))
    realistic = [case for case in drawn if case.realistic]
    assert share / 2 <= len(realistic) / len(drawn) <= min(1.0, share * 1.5), len(realistic) / len(drawn)
    low = {"batch": 8, "channels": 16, "image": 32}
    assert all(
        (case.batch is None or case.batch >= low["batch"])
        and min(case.in_channels, case.out_channels) >= low["channels"]
        and min(case.height, case.width) >= low["image"]
        for case in realistic
    )
    kinds = Counter(
        "depthwise" if c.groups == c.in_channels else "grouped" if c.groups > 1 else "one" for c in realistic
    )
    assert set(kinds) == {"one", "grouped", "depthwise"}, kinds
    # Over the cap only where even the smallest realistic sizes are (a 4x4 kernel, say).
    assert all(c.macs <= REALISTIC_MACS or ((c.batch or 8) == 8 and c.height == c.width == 32) for c in realistic)


def test_no_realistic_case_without_the_declaration() -> None:
    assert not any(case.realistic for case in _drawn(Capabilities()))


def test_a_bug_at_realistic_sizes_is_found_there_and_shrinks_to_the_smallest_of_them(im2col_seed: int) -> None:
    name = "wrong_from_16_channels"
    assert _findings(name, im2col_seed) == ()
    findings = _findings(name, im2col_seed, realistic=0.5)
    assert findings
    for finding in findings:
        assert finding.case.in_channels // finding.case.groups == 16 and finding.case.realistic, finding.case.id
        assert "size=realistic" in finding.needs


def test_a_bug_that_needs_no_size_shrinks_to_a_small_case_with_realistic_sizes_declared(im2col_seed: int) -> None:
    findings = _findings("ignores_bias", im2col_seed, realistic=0.5)
    assert findings and all(not f.case.realistic and f.case.in_channels == 1 for f in findings), findings


# -- the declaration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "declared, says",
    [
        ({"threads": "yes"}, "threads must be true or false"),
        ({"realistic": 2}, "realistic must be the share of cases drawn at realistic sizes, a number in [0, 1]"),
        ({"realistic": True}, "realistic must be the share"),
        ({"weight_layouts": ["diagonal"]}, "unknown weight_layouts ['diagonal']"),
        ({"weight_layouts": ["expanded"]}, "unknown weight_layouts ['expanded']"),
        ({"weight_layouts": 3}, "weight_layouts must be one or a list of"),
    ],
)
def test_a_bad_exploring_declaration_is_a_one_line_error_naming_the_field(
    declared: dict[str, object], says: str
) -> None:
    with pytest.raises(DeclarationError) as raised:
        Capabilities.from_mapping(declared)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_what_to_explore_is_shown_and_is_no_widening() -> None:
    declared = Capabilities.from_mapping({"weight_layouts": ["channels_last"], "threads": True, "realistic": 0.1})
    assert declared.shown() == ["weight_layouts=['channels_last']", "threads=True", "realistic=0.1"]
    assert widenings(declared, full_domain()) == [
        replace(widening, **{name: getattr(declared, name) for name in EXPLORING})
        for widening in widenings(Capabilities(), full_domain())
    ]
    assert repr(declared) == repr(Capabilities())  # the campaign's seed: the same draws before the new ones


def test_an_undeclared_implementation_is_still_called_on_any_weight_layout_and_thread_count() -> None:
    case = replace(Case.from_id(ID), weight_layout="transposed", threads=2)
    verdicts = check_case(case, [implementation_from("correct", planted_bugs.correct)])
    assert verdicts["correct"].status == "passed"
    wrong = check_case(case, [implementation_from("several", planted_bugs.wrong_on_several_threads)])
    assert wrong["several"].kind == "values"


def test_conditions_name_the_weight_s_layout_and_the_thread_count() -> None:
    case = Case.from_id(ID)
    several = parse({"threads": {">": 1}}, "when")
    assert met(replace(case, threads=2), several) and not met(case, several)
    channels_last = parse({"weight_layout": "channels_last"}, "when")
    assert met(replace(case, weight_layout="channels_last"), channels_last)
    assert met(replace(case, layout="channels_last"), channels_last)  # laid out as the input is
    assert not met(replace(case, layout="channels_last", weight_layout="contiguous"), channels_last)
    with pytest.raises(DeclarationError, match="threads=0 is not an int >= 1"):
        parse({"threads": 0}, "when")


# -- the id ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_layout", ["same", "contiguous", "channels_last", "strided", "transposed"])
@pytest.mark.parametrize("threads", [1, 2, 17])
def test_ids_with_the_new_fields_round_trip(weight_layout: str, threads: int) -> None:
    case = replace(Case.from_id(ID), weight_layout=weight_layout, threads=threads)
    assert Case.from_id(case.id) == case and Case.from_dict(case.to_dict()) == case
    assert ("-weight_" in case.id) == (weight_layout != "same") and ("-threads" in case.id) == (threads != 1)


def test_an_old_id_and_dict_name_the_same_case_as_before() -> None:
    case = Case.from_id(ID)
    assert case.id == ID and (case.weight_layout, case.threads) == ("same", 1)
    assert "weight_layout" not in case.to_dict() and "threads" not in case.to_dict()


@pytest.mark.parametrize(
    "suffix, says",
    [
        ("-threads0", "threads must be in [1, 256]"),
        ("-threads300", "threads must be in [1, 256]"),
        ("-weight_expanded", "weight_layout must be one of"),
        ("-weight_same", "found 8"),
        ("-threads2-weight_contiguous", "found 9"),
        ("-threads2-x", "found 9"),
    ],
)
def test_a_bad_optional_part_is_rejected_with_a_message(suffix: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        Case.from_id(ID + suffix)
    assert says in str(raised.value)


# -- a real torch bug that depends on the thread count ---------------------------------------

TORCH_ONE_THREAD_NAN = "mb1ic1oc1g1ih1iw2kh1kw1s1p0d1-nobias-bfloat16-channels_last-special-cpu-seed0"


def _plain(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # type: ignore[no-untyped-def]
    return torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _torch_puts_nan_there_on_one_thread() -> bool:
    """docs/torch.md's repro: torch 2.13.0 and 2.14.1 on this project's CPU (AVX512-FP16)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.tensor([-1.0, float("nan")], dtype=torch.bfloat16).as_strided((1, 1, 1, 2), (2, 1, 2, 1))
        return bool(
            torch.nn.functional.conv2d(x, torch.full((1, 1, 1, 1), -0.1089, dtype=torch.bfloat16))[0, 0, 0, 0].isnan()
        )
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not _torch_puts_nan_there_on_one_thread(), reason="this torch and CPU do not have the bug")
def test_torch_s_one_thread_bfloat16_nan_shows_on_one_thread_only_in_the_harness_and_its_script(tmp_path: Path) -> None:
    case = Case.from_id(TORCH_ONE_THREAD_NAN)
    plain = implementation_from("plain", _plain)
    assert check_case(case, [plain])["plain"].kind == "nonfinite"
    assert check_case(replace(case, threads=2), [plain])["plain"].status == "passed"
    for threads, says in ((1, f"FAILED {case.id}: NaN/inf mismatch"), (2, "outputs agree")):
        path = tmp_path / f"repro{threads}.py"
        path.write_text(script(replace(case, threads=threads)))  # torch's own F.conv2d under test
        ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
        assert says in ran.stdout + ran.stderr, (threads, ran.stdout, ran.stderr)


def test_the_script_lays_the_weight_out_in_its_own_layout(tmp_path: Path) -> None:
    case = replace(Case.from_id(ID), weight_layout="channels_last")
    path = tmp_path / "repro.py"
    path.write_text(script(case, f"{Path(planted_bugs.__file__)}:reads_weight_as_laid_out_like_input"))
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
    assert f"FAILED {case.id}: " in ran.stderr, (ran.stdout, ran.stderr)
    path.write_text(
        script(
            replace(case, weight_layout="same"), f"{Path(planted_bugs.__file__)}:reads_weight_as_laid_out_like_input"
        )
    )
    assert subprocess.run([sys.executable, str(path)], capture_output=True, text=True).returncode == 0
