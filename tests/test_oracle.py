"""The oracle's tolerance: derived per dtype and device, exact where it can be, never loose for a bug."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness.generate.tensors import make_inputs
from harness.judge.compare import judge
from harness.judge.oracle import SMALLEST_SUBNORMAL, expect, for_algorithm, is_exact, unit_roundoff
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.verdict import PASSED

CASE = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(3, 5), data="int")


@pytest.mark.parametrize(("dtype", "largest_exact_k"), [("bfloat16", 15), ("float16", 127), ("float32", 2**20 - 1)])
def test_int_data_are_exact_while_every_partial_sum_fits_the_significand(dtype: str, largest_exact_k: int) -> None:
    # A partial sum is at most K * 4 * 4 + 4: it must stay below 2**p.
    case = replace(CASE, dtype=dtype)
    assert is_exact(case, largest_exact_k)
    assert not is_exact(case, largest_exact_k + 1)
    assert not is_exact(replace(case, data="uniform"), 1)


def test_the_case_reduction_length_is_the_default() -> None:
    case = replace(CASE, dtype="bfloat16")  # K = 15: the largest exact one
    assert case.reduction_length == 15 and is_exact(case)
    assert not is_exact(replace(case, kernel=(4, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_the_allowed_error_scales_with_the_dtypes_unit_roundoff_plus_its_smallest_subnormal(dtype: str) -> None:
    case = replace(CASE, data="uniform", dtype=dtype)
    expected = expect(case, make_inputs(case))
    terms = case.reduction_length + 2
    assert torch.allclose(
        expected.allowed_error,
        terms * (unit_roundoff(case) * expected.magnitude + SMALLEST_SUBNORMAL[dtype]),
        rtol=1e-12,
        atol=0,
    )


def test_a_correctly_rounded_result_near_underflow_passes() -> None:
    # One product per output, some of them tiny: float16 keeps 1.5e-5 with a spacing of
    # 6e-8, far more than u * M there (found as a false alarm against F.conv2d rounded to float16).
    case = Case.from_id("mb1ic3oc3g3ih3iw5kh1kw1s1p0d1-nobias-float16-contiguous-uniform-cpu-seed137")
    inputs = make_inputs(case)
    expected = expect(case, inputs)
    rounded = expected.values.to(torch.float16)  # the exact answer, correctly rounded
    tiny = rounded.abs() < 6.1e-5  # float16's smallest normal
    assert tiny.any() and ((rounded.double() - expected.values).abs() > 2**-11 * expected.magnitude)[tiny].any()
    assert judge(case, expected, Outcome(result=rounded, device="cpu")).status == PASSED


def test_cuda_float32_is_allowed_tf32_rounding_only_while_torch_allows_tf32() -> None:
    case = replace(CASE, device="cuda", dtype="float32")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        assert unit_roundoff(case) == 2.0**-24
        torch.backends.cudnn.allow_tf32 = True
        assert unit_roundoff(case) == 2.0**-11
        assert unit_roundoff(replace(case, device="cpu")) == 2.0**-24  # never on the CPU
        assert unit_roundoff(replace(case, dtype="float64")) == 2.0**-53
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_a_lower_precision_result_is_outside_the_float64_bound() -> None:
    # The point of deriving the bound: float64 computed in float32 must fail it.
    case = replace(CASE, data="uniform", dtype="float64", batch=2, in_channels=3, out_channels=2)
    inputs = make_inputs(case)
    expected = expect(case, inputs)
    in_float32 = torch.nn.functional.conv2d(inputs.input.float(), inputs.weight.float()).double()
    assert ((in_float32 - expected.values).abs() > expected.allowed_error).any()


# Wide enough for every Winograd tile and for the FFT's norms to differ from M.
WIDE = Case(batch=2, in_channels=4, out_channels=4, groups=2, height=12, width=10, kernel=(3, 3), padding=1, bias=True)


def test_direct_summation_is_judged_as_before() -> None:
    inputs = make_inputs(WIDE)
    expected = expect(WIDE, inputs)
    assert for_algorithm(WIDE, inputs, expected, "direct") is expected and expected.spread is None


@pytest.mark.parametrize("algorithm", ["fft", "winograd", "any"])
def test_a_transform_claims_no_exactness_on_int_data_and_allows_at_least_the_direct_bound(algorithm: str) -> None:
    case = replace(WIDE, data="int")
    inputs = make_inputs(case)
    expected = expect(case, inputs)
    assert expected.exact and not expected.allowed_error.any()
    transform = for_algorithm(case, inputs, expected, algorithm)
    assert not transform.exact and (transform.allowed_error > 0).all()
    direct = (case.reduction_length + 2) * unit_roundoff(case) * expected.magnitude
    assert (transform.allowed_error >= direct).all()


def test_any_algorithm_is_allowed_the_loosest_of_the_transforms() -> None:
    inputs = make_inputs(WIDE)
    expected = expect(WIDE, inputs)
    fft, winograd, anything = (
        for_algorithm(WIDE, inputs, expected, a).allowed_error for a in ("fft", "winograd", "any")
    )
    assert torch.equal(anything, torch.maximum(fft, winograd)) and not torch.equal(fft, winograd)


def test_a_transform_bound_that_reaches_m_makes_the_check_mistrusted() -> None:
    # In float16 the FFT bound passes M (an index bug would pass): the check says so.
    inputs = make_inputs(WIDE)
    assert not for_algorithm(WIDE, inputs, expect(WIDE, inputs), "fft").mistrusted
    half = replace(WIDE, dtype="float16")
    inputs = make_inputs(half)
    expected = for_algorithm(half, inputs, expect(half, inputs), "fft")
    assert (expected.allowed_error >= expected.magnitude).float().mean() > 0.5 and expected.mistrusted
