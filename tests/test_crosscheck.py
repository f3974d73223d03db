"""Torch's reference cross-checked: a planted torch bug, in its values or in its gradients, is
reported as torch's, with a minimal case and a torch-only repro, and blamed on no
implementation; without it nothing changes."""

from __future__ import annotations

import contextlib
import functools
import io
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import cast

import planted_bugs
import pytest
import torch

from harness import declare
from harness.api import assert_conv2d_matches
from harness.campaign import crosscheck
from harness.campaign.check import check_case
from harness.campaign.crosscheck import CHEAP_GRADIENT_MACS, CHEAP_MACS, REFERENCE
from harness.campaign.engine import CampaignResult, _unexplained, fuzz
from harness.generate.tensors import Inputs, make_inputs, upstream_gradient
from harness.judge import gradients, oracle
from harness.judge.independent import CrossCheck, cross_check
from harness.model.capabilities import Capabilities
from harness.model.case import LAYOUTS, Case
from harness.model.finding import Finding
from harness.model.registry import Registry, implementation_from
from harness.model.verdict import FAILED, PASSED, SKIPPED, WRONG_REFERENCE, Verdict, failure
from harness.reporting.report import campaign_report, format_failures, repro
from harness.reporting.standalone import reference_script, script

EXAMPLES = 300
CORRECT = implementation_from("correct", planted_bugs.correct)
RAISES = implementation_from("raises_on_groups", planted_bugs.raises_on_groups)
GROUPED = Case.from_id("mb2ic4oc4g2ih6iw5kh3kw2s1p1d1-bias-float32-contiguous-uniform-cpu-seed3")
LARGE = Case.from_id("mb2ic8oc8g1ih9iw9kh3kw3s1p1d1-bias-float32-contiguous-uniform-cpu-seed3")


def _flipped(conv2d: Callable[..., torch.Tensor]) -> object:
    """A torch whose float64 conv2d flips the sign of every grouped convolution."""

    def wrong(
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None = None,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        groups: int = 1,
    ) -> torch.Tensor:
        out = conv2d(x, w, b, stride, padding, dilation, groups)
        return -out if groups != 1 else out

    return wrong


@contextlib.contextmanager
def _planted() -> Iterator[None]:
    """The plant, inside the harness's reference only (`oracle.CONV2D`): torch itself is as it was."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(oracle, "CONV2D", _flipped(oracle.CONV2D))
        yield


@functools.cache  # each campaign once, for every test that reads it
def _campaign(planted: bool, seed: int) -> CampaignResult:
    with _planted() if planted else contextlib.nullcontext():
        return fuzz([CORRECT, RAISES], EXAMPLES, seed)


def test_a_wrong_reference_is_torchs_and_the_implementations_verdicts_are_withheld() -> None:
    with _planted():
        verdicts = check_case(GROUPED, [CORRECT, RAISES])
    wrong = verdicts[REFERENCE.name]
    assert wrong.status == FAILED and wrong.kind == WRONG_REFERENCE
    assert "torch's float64 reference is wrong at" in wrong.message
    # The correct one is not blamed, nor credited: its verdict is withheld, saying why.
    assert verdicts[CORRECT.name].status == SKIPPED
    assert "not judged: torch's float64 reference is wrong on this case" in verdicts[CORRECT.name].message
    # What a call did wrong whatever the reference says stands.
    assert verdicts[RAISES.name].kind == "exception"


def test_a_right_reference_adds_nothing_and_a_large_case_is_cross_checked_only_on_a_failure() -> None:
    assert check_case(GROUPED, [CORRECT]) == {CORRECT.name: check_case(GROUPED, [CORRECT])[CORRECT.name]}
    assert check_case(GROUPED, [CORRECT])[CORRECT.name].status == PASSED
    large = Case.from_id(LARGE.id.replace("g1", "g2"))
    assert large.macs > CHEAP_MACS
    with _planted():
        assert check_case(large, [CORRECT])[REFERENCE.name].kind == WRONG_REFERENCE  # it failed: cross-checked
        # Asked for by name (a campaign shrinking a reference bug): a verdict of its own, always.
        assert check_case(LARGE, [REFERENCE]) == {REFERENCE.name: check_case(LARGE, [REFERENCE])[REFERENCE.name]}
        assert check_case(LARGE, [REFERENCE])[REFERENCE.name].status == PASSED  # groups 1: right


def test_a_campaign_reports_a_wrong_reference_as_torchs_with_a_minimal_case(im2col_seed: int) -> None:
    result = _campaign(True, im2col_seed)
    (finding,) = [f for f in result.findings if f.implementation == REFERENCE.name]
    assert finding.verdict.kind == WRONG_REFERENCE and finding.shrunk and finding.reproducible
    assert "groups>1" in finding.needs and finding.diagnosis.endswith("fails this way only with groups>1")
    case = finding.case
    # Minimal: two groups of one channel each, nothing else.
    assert (case.groups, case.in_channels, case.out_channels, case.kernel) == (2, 2, 2, (1, 1)), case.id
    assert case.height * case.width == 1 and not case.bias and case.dtype == "float32", case.id
    # Blamed on no implementation: raises_on_groups's exception on grouped cases stands, and
    # nothing else is found; their verdicts on those cases were withheld.
    blamed = {(f.implementation, f.verdict.kind) for f in result.findings if f.implementation != REFERENCE.name}
    assert blamed == {(RAISES.name, "exception")}
    assert result.tallies[CORRECT.name].statuses[SKIPPED] > 0
    assert result.tallies[REFERENCE.name].statuses[FAILED] > 0


def test_without_the_plant_nothing_changes(im2col_seed: int) -> None:
    result = _campaign(False, im2col_seed)
    assert {(f.implementation, f.verdict.kind) for f in result.findings} == {(RAISES.name, "exception")}
    assert set(result.tallies) == {CORRECT.name, RAISES.name}
    assert result.tallies[CORRECT.name].statuses[SKIPPED] == 0


def test_the_report_fails_the_run_and_names_torchs_reference_with_a_torch_only_repro(im2col_seed: int) -> None:
    result = _campaign(True, im2col_seed)
    registry = Registry({CORRECT.name: CORRECT, RAISES.name: RAISES})
    report = campaign_report(result, registry, EXAMPLES)
    assert report.rows[REFERENCE.name].verdict() == "FAILED" and report.exit_status() == 1
    (finding,) = report.rows[REFERENCE.name].findings
    lines = format_failures(report)
    assert f"FAILED {REFERENCE.name} [{WRONG_REFERENCE}] {finding.case.id}" in lines
    # The repro runs torch's own F.conv2d (not planted here): right on this case, it says so.
    python, *arguments = shlex.split(repro(REFERENCE.name, finding.case.id))
    assert python == "python"
    ran = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    assert ran.returncode == 0 and "agrees with direct summation" in ran.stdout, ran.stderr


def _run(source: str) -> str:
    """Run a script in this process; what it printed, or the message it stopped with."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, "repro.py", "exec"), {"__name__": "__main__"})
    except SystemExit as stopped:
        return str(stopped.code)
    return printed.getvalue()


@pytest.mark.parametrize(
    "case_id",
    [
        GROUPED.id,
        GROUPED.id.replace("uniform", "int").replace("float32", "float16"),
        GROUPED.id.replace("uniform", "special"),
        "mbnoneic3oc2g1ih7iw6kh3kw3s2ph0pw2dh1dw2-nobias-float64-channels_last-int-cpu-seed4",
        "mb3ic9oc9g3ih12iw11kh4kw2s1psamed2-bias-bfloat16-contiguous-special-cpu-seed1",
    ],
)
def test_the_reference_script_passes_torch_and_catches_a_wrong_torch(case_id: str) -> None:
    case = Case.from_id(case_id)
    source = reference_script(case)
    assert _run(source).strip() == "torch's float64 conv2d agrees with direct summation"
    if case.groups > 1:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.nn.functional, "conv2d", _flipped(torch.nn.functional.conv2d))
            assert _run(source).startswith(f"FAILED {case.id}: torch's float64 conv2d is wrong: ")


def test_show_writes_the_reference_script_for_a_recorded_reference_failure(im2col_seed: int) -> None:
    (finding,) = [f for f in _campaign(True, im2col_seed).findings if f.implementation == REFERENCE.name]
    assert script(finding.case, None, finding) == reference_script(finding.case, finding)
    assert script(finding.case, None, None) != reference_script(finding.case)


def test_a_wrong_reference_the_pass_did_not_find_again_is_kept_as_seen() -> None:
    wrong = failure(WRONG_REFERENCE, "torch's float64 reference is wrong at (0, 0, 0, 0)")
    shrunk = Finding(REFERENCE.name, GROUPED, wrong, needs=frozenset({"groups>1"}))
    result = CampaignResult(seed=1, findings=[shrunk])
    explained = Finding(REFERENCE.name, Case.from_id(GROUPED.id.replace("seed3", "seed4")), wrong, shrunk=False)
    other = Finding(REFERENCE.name, LARGE, wrong, shrunk=False)  # groups 1: another way torch is wrong
    _unexplained(
        [(Capabilities(), explained), (Capabilities(), other), (Capabilities(), other)], result, lambda finding: finding
    )
    assert result.findings == [shrunk, other]


def test_a_reference_shared_by_several_variants_is_cross_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Case] = []

    def counted(case: Case, inputs: Inputs, values: torch.Tensor) -> CrossCheck:
        made.append(case)
        return cross_check(case, inputs, values)

    monkeypatch.setattr(crosscheck, "cross_check", counted)
    inputs = make_inputs(GROUPED)
    shared, failed = oracle.expect(GROUPED, inputs), {CORRECT.name: failure("values", "wrong")}
    for layout in ("contiguous", "channels_last", "strided"):  # the layouts that keep the values share it
        assert crosscheck.cross_checked(replace(GROUPED, layout=layout), inputs, shared, failed, False) == failed
    crosscheck.cross_checked(GROUPED, inputs, oracle.expect(GROUPED, inputs), failed, False)  # another reference
    assert len(made) == 2


def test_assert_conv2d_matches_says_torchs_reference_is_wrong_not_that_the_implementation_disagrees() -> None:
    with _planted(), pytest.raises(AssertionError) as raised:
        assert_conv2d_matches(planted_bugs.correct, max_examples=EXAMPLES, seed=1, name="correct")
    heading, *rest = str(raised.value).splitlines()
    assert heading.startswith("torch's reference is wrong on cases correct was checked on"), heading
    assert any("torch (reference)" in line for line in rest)


# -- torch's reference gradients -------------------------------------------------------


@declare(autograd=True)
def _correct_with_autograd(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return planted_bugs.correct(input, weight, bias, stride, padding, dilation, groups)


GRADED = implementation_from("correct_autograd", _correct_with_autograd)
# Gradients are judged on one variant in `engine.THOROUGH_EVERY` draws while exploring, and a
# grouped one whose weight gradient is not zero is needed: at 300 examples, 2 seeds in 21 saw
# none, or none again in the pass that shrinks it; at 1000, none in 42.
GRADIENT_EXAMPLES = 1000


def _weight_gradient_times(factor: float) -> Callable[..., torch.Tensor]:
    """The harness's reference convolution (`oracle.convolve`) as its gradients see it, with
    the right values and the weight's gradient ``factor`` times the right one on grouped
    convolutions: torch with a bug in its backward pass only."""

    def convolve(case: Case, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        out = oracle.convolve(case, x, w, b)
        if case.groups == 1:
            return out
        # Exactly zero (the same sums twice), with (factor - 1) times the weight's gradient.
        return out + (factor - 1) * (oracle.convolve(case, x, w, None) - oracle.convolve(case, x, w.detach(), None))

    return convolve


@contextlib.contextmanager
def _planted_in_gradients(factor: float = -1.0) -> Iterator[None]:
    """The plant, inside the harness's reference gradients only (`gradients.convolve`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gradients, "convolve", _weight_gradient_times(factor))
        yield


@functools.cache  # each campaign once, for every test that reads it
def _gradient_campaign(planted: bool, seed: int) -> CampaignResult:
    with _planted_in_gradients() if planted else contextlib.nullcontext():
        return fuzz([GRADED, CORRECT, RAISES], GRADIENT_EXAMPLES, seed)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("data", ["uniform", "int"])
def test_a_wrong_reference_gradient_is_torchs_and_only_the_gradient_verdicts_are_withheld(
    layout: str, data: str
) -> None:
    case = replace(GROUPED, layout=layout, data=data)
    assert check_case(case, [GRADED, CORRECT])[GRADED.name].status == PASSED  # unplanted: right
    with _planted_in_gradients():
        verdicts = check_case(case, [GRADED, CORRECT, RAISES])
    wrong = verdicts[REFERENCE.name]
    assert wrong.status == FAILED and wrong.kind == WRONG_REFERENCE
    assert wrong.signature == "reference:gradient:weight"
    assert wrong.message.startswith("torch's float64 weight gradient is wrong at ")
    # The implementation whose gradients were judged is not blamed, nor credited.
    assert verdicts[GRADED.name].status == SKIPPED
    assert "not judged: torch's float64 reference is wrong on this case" in verdicts[GRADED.name].message
    # Torch's values are right: what they alone decided stands.
    assert verdicts[CORRECT.name].status == PASSED
    assert verdicts[RAISES.name].kind == "exception"


def test_reference_gradients_are_cross_checked_on_a_cheap_case_and_on_a_gradient_failure_only_when_large() -> None:
    large = Case.from_id(LARGE.id.replace("g1", "g2"))
    assert GROUPED.macs <= CHEAP_GRADIENT_MACS < large.macs
    # A float32 implementation's bound is far above float64's: gradients one part in 1e9
    # off pass the implementation's check and fail the cross-check.
    with _planted_in_gradients(1 + 1e-9):
        assert check_case(large, [GRADED]) == {GRADED.name: Verdict(PASSED)}  # large: not cross-checked
        cheap = check_case(GROUPED, [GRADED])
        assert cheap[REFERENCE.name].signature == "reference:gradient:weight"
        assert cheap[GRADED.name].status == SKIPPED
        # Asked for by name (a campaign shrinking a reference bug): its gradients always.
        assert check_case(large, [REFERENCE])[REFERENCE.name].signature == "reference:gradient:weight"
    with _planted_in_gradients():  # a gradient failure: cross-checked whatever the size
        assert check_case(large, [GRADED])[REFERENCE.name].signature == "reference:gradient:weight"
    assert check_case(GROUPED, [GRADED]) == {GRADED.name: Verdict(PASSED)}
    assert check_case(large, [REFERENCE]) == {REFERENCE.name: Verdict(PASSED)}


def test_a_campaign_reports_a_wrong_reference_gradient_as_torchs_with_a_minimal_case(im2col_seed: int) -> None:
    result = _gradient_campaign(True, im2col_seed)
    (finding,) = [f for f in result.findings if f.implementation == REFERENCE.name]
    assert finding.verdict.kind == WRONG_REFERENCE and finding.verdict.signature == "reference:gradient:weight"
    assert finding.shrunk and finding.reproducible
    assert "groups>1" in finding.needs and finding.diagnosis.endswith("fails this way only with groups>1")
    case = finding.case
    assert (case.groups, case.in_channels, case.out_channels, case.kernel) == (2, 2, 2, (1, 1)), case.id
    assert case.height * case.width == 1 and not case.bias and case.dtype == "float32", case.id
    blamed = {(f.implementation, f.verdict.kind) for f in result.findings if f.implementation != REFERENCE.name}
    assert blamed == {(RAISES.name, "exception")}
    assert result.tallies[GRADED.name].statuses[SKIPPED] > 0
    assert result.tallies[CORRECT.name].statuses[SKIPPED] == 0  # no gradients: nothing of its was decided by them


def test_without_the_plant_in_the_gradients_nothing_changes(im2col_seed: int) -> None:
    result = _gradient_campaign(False, im2col_seed)
    assert {(f.implementation, f.verdict.kind) for f in result.findings} == {(RAISES.name, "exception")}
    assert set(result.tallies) == {GRADED.name, CORRECT.name, RAISES.name}
    assert result.tallies[GRADED.name].statuses[SKIPPED] == 0


def _conv2d_weight_gradient_flipped(conv2d: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A torch whose F.conv2d is right and whose weight gradient has the wrong sign on grouped
    convolutions (what `_weight_gradient_times` plants, at the level a script sees)."""

    def wrong(
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None = None,
        stride: object = 1,
        padding: object = 0,
        dilation: object = 1,
        groups: int = 1,
    ) -> torch.Tensor:
        out = conv2d(x, w, b, stride, padding, dilation, groups)
        if groups == 1:
            return out
        again = (conv2d(x, v, None, stride, padding, dilation, groups) for v in (w, w.detach()))
        return out - 2 * (next(again) - next(again))

    return wrong


@pytest.mark.parametrize(
    "case_id",
    [
        GROUPED.id,
        GROUPED.id.replace("uniform", "int").replace("float32", "float16"),
        "mb3ic9oc9g3ih12iw11kh4kw2s1psamed2-bias-bfloat16-channels_last-uniform-cpu-seed1",
        "mbnoneic4oc2g2ih7iw6kh3kw3s2ph0pw2dh1dw2-nobias-float64-strided-int-cpu-seed4",
    ],
)
def test_the_reference_script_of_a_gradient_failure_passes_torch_and_catches_a_wrong_torch_gradient(
    case_id: str,
) -> None:
    case = Case.from_id(case_id)
    recorded = Finding(REFERENCE.name, case, failure(WRONG_REFERENCE, "recorded", "gradient:weight"))
    source = reference_script(case, recorded)
    assert _run(source).splitlines() == [
        "torch's float64 conv2d's gradients agree with direct summation's",
        "torch's float64 conv2d agrees with direct summation",
    ]
    # The script's g is the harness's.
    namespace: dict[str, object] = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "repro.py", "exec"), namespace)
    assert torch.equal(cast(torch.Tensor, namespace["g"]), upstream_gradient(case).double())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "conv2d", _conv2d_weight_gradient_flipped(torch.nn.functional.conv2d))
        message = _run(source)
    assert message.startswith(f"FAILED {case.id}: torch's float64 conv2d is wrong: its weight gradient: "), message


def test_show_writes_the_gradient_check_for_a_recorded_reference_gradient_failure(im2col_seed: int) -> None:
    (finding,) = [f for f in _gradient_campaign(True, im2col_seed).findings if f.implementation == REFERENCE.name]
    assert script(finding.case, None, finding) == reference_script(finding.case, finding)
    assert "gradients_of(F.conv2d" in reference_script(finding.case, finding)
    assert "gradients_of" not in reference_script(finding.case)  # a wrong value's script: values only
