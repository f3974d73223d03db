"""The second call and the outside-the-declaration rule, judged."""

from __future__ import annotations

import pytest
import torch

from harness.generate.tensors import Inputs, make_inputs
from harness.judge.compare import judge, judge_outside, judge_repeat
from harness.judge.oracle import expect, for_algorithm
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.verdict import PASSED, UNSUPPORTED, core_signature, failure

CASE = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=3, width=3, kernel=(1, 1))
EXPECTED = expect(CASE, make_inputs(CASE))
FIRST = torch.tensor([1.0, -0.0, float("nan")])


def test_the_same_bits_twice_pass() -> None:
    assert judge_repeat(CASE, EXPECTED, FIRST, Outcome(result=FIRST.clone())) is None


def test_different_values_the_second_time_are_nondeterministic() -> None:
    verdict = judge_repeat(CASE, EXPECTED, FIRST, Outcome(result=torch.tensor([1.0 + 2**-20, -0.0, float("nan")])))
    assert verdict is not None and verdict.kind == "nondeterministic"
    assert "1 of 3 elements" in verdict.message


def test_a_nan_the_second_time_is_not_called_an_infinite_change() -> None:
    verdict = judge_repeat(CASE, EXPECTED, FIRST, Outcome(result=torch.tensor([float("nan"), -0.0, float("nan")])))
    assert verdict is not None and verdict.kind == "nondeterministic"
    assert verdict.message.endswith("1 of 3 elements came out different (1 NaN in one call only)")  # once 'change inf'
    both = judge_repeat(CASE, EXPECTED, FIRST, Outcome(result=torch.tensor([float("nan"), 1.0, 2.0])))
    assert both is not None and both.message.endswith("(largest change 1; 2 NaN in one call only)")


def test_a_signed_zero_flipped_the_second_time_is_nondeterministic_too() -> None:
    verdict = judge_repeat(CASE, EXPECTED, FIRST, Outcome(result=torch.tensor([1.0, 0.0, float("nan")])))
    assert verdict is not None and "different bits" in verdict.message


def test_raising_the_second_time_is_nondeterministic() -> None:
    verdict = judge_repeat(CASE, EXPECTED, FIRST, Outcome(error_type="ValueError", error_message="cache"))
    assert verdict is not None and verdict.signature == "nondeterministic:second-call"
    assert "raised ValueError: cache" in verdict.message


def test_outside_the_declaration_raising_is_unsupported_and_a_wrong_answer_is_its_own_failure() -> None:
    raised = judge(CASE, EXPECTED, Outcome(error_type="NotImplementedError", error_message="bias"))
    assert judge_outside(raised, "bias").status == UNSUPPORTED
    wrong = failure("values", "every element", "x")
    outside = judge_outside(wrong, "bias")
    assert outside.kind == "outside-declared" and outside.signature == "outside-declared:values:x"
    assert "outside its declared capabilities (bias)" in outside.message
    crash = failure("crash", "killed")
    assert judge_outside(crash, "bias") is crash  # a crash is never the right way to refuse
    right = judge(CASE, EXPECTED, Outcome(result=EXPECTED.values.float(), returned="Tensor", device="cpu"))
    assert right.status == PASSED and judge_outside(right, "bias") is right


def test_a_bug_inside_and_outside_the_declaration_is_one_bug() -> None:
    assert core_signature("outside-declared:layout") == core_signature("layout") == "layout"
    assert core_signature("outside-declared:values:border") == "values:border"


def test_values_in_a_scrambled_order_are_a_layout_failure_with_nan_and_inf_too() -> None:
    case = Case(
        batch=1, in_channels=2, out_channels=2, groups=1, height=4, width=4, kernel=(1, 1), data="special", seed=4
    )
    expected = expect(case, make_inputs(case))
    assert not expected.values.isfinite().all()  # the point: NaN or inf among them
    scrambled = expected.values.flatten().flip(0).reshape(expected.shape).float()
    verdict = judge(case, expected, Outcome(result=scrambled, returned="Tensor", device="cpu"))
    assert verdict.kind == "layout" and "same values in another order (they match once sorted)" in verdict.message


def test_a_few_wrong_elements_are_wrong_values_even_where_sorting_would_pair_them_up() -> None:
    # A dropped bias in bfloat16: each output is off by less than the loose rounding bound
    # in most places, and sorted, every value finds a partner within it; it once read as
    # "same values in an order no reshape or transpose gives".
    case = Case.from_id("mb1ic4oc2g2ih6iw4kh4kw3s1p0d1-bias-bfloat16-contiguous-uniform-cpu-seed0")
    inputs = make_inputs(case)
    without_bias = torch.nn.functional.conv2d(inputs.input.float(), inputs.weight.float(), None, 1, 0, 1, 2)
    outcome = Outcome(result=without_bias.bfloat16(), returned="Tensor", device="cpu")
    verdict = judge(case, expect(case, inputs), outcome)
    assert verdict.kind == "values", verdict.message


# Chosen for its data (hash32-v2): seed 0 puts an inf in the input and no NaN, so the
# reference has an inf and no NaN (the test asserts it).
SPECIAL = Case.from_id("mb1ic1oc1g1ih3iw3kh1kw1s1p0d1-nobias-float32-contiguous-special-cpu-seed0")


def _judged(result: torch.Tensor) -> str | None:
    return judge(SPECIAL, expect(SPECIAL, make_inputs(SPECIAL)), Outcome(result=result, device="cpu")).kind


def test_an_infinity_turned_finite_or_flipped_is_a_nonfinite_failure_though_its_bound_is_infinite() -> None:
    expected = expect(SPECIAL, make_inputs(SPECIAL)).values
    assert expected.isinf().any() and not expected.isnan().any()  # the case this is about
    assert (
        judge(SPECIAL, expect(SPECIAL, make_inputs(SPECIAL)), Outcome(result=expected.float(), device="cpu")).status
        == PASSED
    )
    assert _judged(expected.float().nan_to_num()) == "nonfinite"  # inf -> the largest float
    assert _judged(-expected.float()) == "nonfinite"  # every infinity of the other sign


# Two batch items, two output channels: item 0's input holds one non-finite value, item 1's none.
TWO_ITEMS = Case(batch=2, in_channels=1, out_channels=2, groups=1, height=3, width=3, kernel=(1, 1))


def _with_one(value: float) -> Inputs:
    x = torch.ones(2, 1, 3, 3)
    x[0, 0, 1, 1] = value
    return Inputs(x, torch.tensor([1.0, -2.0]).reshape(2, 1, 1, 1), None)


def _judged_as(algorithm: str, inputs: Inputs, result: torch.Tensor) -> str | None:
    expected = for_algorithm(TWO_ITEMS, inputs, expect(TWO_ITEMS, inputs), algorithm)
    return judge(TWO_ITEMS, expected, Outcome(result=result, device="cpu")).kind


@pytest.mark.parametrize("algorithm", ["fft", "winograd", "any"])
def test_a_transform_may_spread_nan_over_what_a_non_finite_input_reaches_and_nowhere_else(algorithm: str) -> None:
    inputs = _with_one(float("nan"))
    right = expect(TWO_ITEMS, inputs).values.float()
    spread = right.clone()
    spread[0] = float("nan")  # all of item 0, both channels
    assert _judged_as(algorithm, inputs, spread) is None
    assert _judged_as("direct", inputs, spread) == "nonfinite"  # direct summation keeps it in its window
    leaked = right.clone()
    leaked[1, 0, 0, 0] = float("nan")  # item 1 holds nothing that is not finite
    assert _judged_as(algorithm, inputs, leaked) == "nonfinite"
    lost = right.clone()
    lost[0, 0, 1, 1] = 0.0  # torch's NaN made finite
    assert _judged_as(algorithm, inputs, lost) == "nonfinite"
    infinite = spread.clone()
    infinite[0, 1, 0, 0] = float("inf")  # only NaN spreads
    assert _judged_as(algorithm, inputs, infinite) == "nonfinite"


def test_a_transform_may_turn_an_infinity_into_nan_but_must_keep_it_non_finite() -> None:
    inputs = _with_one(float("inf"))
    right = expect(TWO_ITEMS, inputs).values.float()
    assert right[0, :, 1, 1].isinf().all()
    as_nan = right.clone()
    as_nan[0] = float("nan")
    assert _judged_as("fft", inputs, as_nan) is None
    assert _judged_as("direct", inputs, as_nan) == "nonfinite"
    assert _judged_as("fft", inputs, right.nan_to_num()) == "nonfinite"  # inf -> the largest float


def test_a_non_finite_weight_spreads_over_its_output_channel_only() -> None:
    inputs = Inputs(torch.ones(2, 1, 3, 3), torch.tensor([1.0, float("inf")]).reshape(2, 1, 1, 1), None)
    right = expect(TWO_ITEMS, inputs).values.float()
    spread = right.clone()
    spread[:, 1] = float("nan")
    assert _judged_as("fft", inputs, spread) is None
    spread[:, 0, 0, 0] = float("nan")
    assert _judged_as("fft", inputs, spread) == "nonfinite"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_wrong_shape_on_cuda_is_diagnosed_against_the_reference_on_the_cpu() -> None:
    case = Case(batch=None, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(3, 3), device="cuda")
    expected = expect(case, make_inputs(case))
    verdict = judge(case, expected, Outcome(result=expected.values.float().reshape(9, 1).cuda(), device="cuda:0"))
    assert verdict.kind == "layout" and "got.reshape(1, 3, 3) matches" in verdict.message
