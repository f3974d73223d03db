"""Arguments near the integer limits (`harness.campaign.extremes`): a crash or a hang there is a
bug, reported as the implementation's, while the check goes on; an error is the right answer.

The planted implementations are in tests/misbehaving.py, loaded by file so that the child
process each call runs in can load them again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import misbehaving
import pytest
import torch

from harness.campaign.extremes import ARGUMENTS, VALUES, Extreme, check, judged
from harness.cli import main
from harness.generate.tensors import make_inputs
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.registry import Implementation, discover

MISBEHAVING = str(Path(misbehaving.__file__).resolve())
HUGE_STRIDES = {v for v in VALUES if v >= 2**31 - 1}


def _checked(name: str, seconds: float = 10.0) -> tuple[Implementation, list[Extreme]]:
    spec = f"{MISBEHAVING}:{name}"
    implementation = discover([spec]).implementations[spec]
    return implementation, check(implementation, seconds)


def _bugs(found: list[Extreme]) -> set[tuple[str, object]]:
    return {(extreme.argument, extreme.value) for extreme in found if extreme.bug}


def test_every_argument_is_tried_at_every_value_as_an_int_and_in_each_half_of_a_pair() -> None:
    _, found = _checked("raises_on_a_huge_stride")
    assert len(found) == len(ARGUMENTS) * len(VALUES) * 3
    assert {(e.argument, e.value) for e in found} >= {
        ("dilation", 2**63 - 1),
        ("padding", (0, 2**31)),
        ("stride", (1, 0)),
    }


def test_one_that_raises_on_a_huge_stride_has_no_bug() -> None:
    _, found = _checked("raises_on_a_huge_stride")
    assert not [e for e in found if e.bug]
    refused = [
        e
        for e in found
        if e.argument == "stride" and max(e.value if isinstance(e.value, tuple) else (e.value,)) >= 2**31 - 1
    ]
    assert refused and all(e.verdict == "refused" and "ValueError: stride too large" in e.detail for e in refused)


def test_one_that_segfaults_on_a_huge_stride_is_reported_call_by_call_and_the_check_goes_on() -> None:
    _, found = _checked("segfaults_on_a_huge_stride")
    stride_bugs = [e for e in found if e.bug and e.argument == "stride"]
    assert len(stride_bugs) == 3 * len(HUGE_STRIDES)
    assert all(e.verdict == "crash" and "killed by SIGSEGV" in e.detail for e in stride_bugs)
    assert str(stride_bugs[0]).startswith(f"CRASH {MISBEHAVING}:segfaults_on_a_huge_stride stride=2147483647: ")
    # The calls after each crash were made (in a fresh child): the padding and dilation ones too.
    assert Counter(e.argument for e in found) == dict.fromkeys(ARGUMENTS, 3 * len(VALUES))


@pytest.mark.timing
def test_one_that_hangs_on_a_huge_stride_is_a_timeout_each_time() -> None:
    _, found = _checked("hangs_on_a_huge_stride", seconds=3.0)
    hung = {(e.argument, e.value) for e in found if e.verdict == "timeout"}
    assert hung == {("stride", v) for v in HUGE_STRIDES}
    assert all("(child killed)" in e.detail for e in found if e.verdict == "timeout")


CASE = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=4, width=4, kernel=(2, 2), data="int")


@pytest.mark.parametrize(
    "case, returned, verdict",
    [
        pytest.param(CASE, torch.zeros(1, 1, 3, 3), "wrong", id="wrong-values"),
        pytest.param(CASE, torch.zeros(1, 1, 2, 2), "wrong", id="wrong-shape"),
        pytest.param(replace(CASE, dilation=2**62), torch.zeros(1, 1, 5, 5), "wrong", id="no-output"),
        pytest.param(replace(CASE, padding=-1), torch.zeros(1, 1, 1, 1), "accepted", id="out-of-range"),
    ],
)
def test_a_returned_tensor_is_judged(case: Case, returned: torch.Tensor, verdict: str) -> None:
    assert judged(case, Outcome(result=returned, returned="Tensor"))[0] == verdict


def test_a_returned_tensor_that_is_right_is_right() -> None:
    inputs = make_inputs(CASE)
    right = torch.nn.functional.conv2d(inputs.input, inputs.weight)
    assert judged(CASE, Outcome(result=right, returned="Tensor")) == ("right", "shape (1, 1, 3, 3)")


def test_the_command_exits_1_on_a_crash_and_0_when_every_call_raises(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extremes", "--impl", f"{MISBEHAVING}:raises_on_a_huge_stride"]) == 0
    assert main(["extremes", "--impl", f"{MISBEHAVING}:segfaults_on_a_huge_stride"]) == 1
    out = capsys.readouterr().out
    assert "CRASH " in out and f"{MISBEHAVING}:segfaults_on_a_huge_stride: 81 calls, " in out
