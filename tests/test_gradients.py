"""Gradient checks: the reference agrees with autograd, and each way a gradient goes wrong is named."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.generate.tensors import make_inputs
from harness.judge.gradients import applies, expect_gradients, judge_gradients
from harness.model.case import Case
from harness.model.outcome import Outcome

CASE = Case(
    batch=2,
    in_channels=4,
    out_channels=4,
    groups=2,
    height=6,
    width=5,
    kernel=(3, 2),
    stride=(2, 1),
    padding=1,
    dilation=(1, 2),
    bias=True,
    seed=3,
)


def _autograd(case: Case) -> tuple[torch.Tensor, ...]:
    """What torch's own conv2d gives in the case's dtype."""
    expected = expect_gradients(case, make_inputs(case))
    leaves = [t.clone().requires_grad_() for t in make_inputs(case).tensors()]
    input_, weight, bias = leaves  # the case has a bias
    out = F.conv2d(input_, weight, bias, case.stride, case.padding, case.dilation, case.groups)
    return torch.autograd.grad(out, leaves, expected.upstream)


def test_the_reference_gradients_are_autograds_in_float64() -> None:
    case = replace(CASE, dtype="float64")
    expected = expect_gradients(case, make_inputs(case))
    for got, want in zip(_autograd(case), expected.values):
        assert want is not None
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torchs_own_gradients_pass(dtype: str) -> None:
    case = replace(CASE, dtype=dtype)
    outcome = Outcome(grads=_autograd(case))
    assert judge_gradients(case, expect_gradients(case, make_inputs(case)), outcome) is None


def test_int_data_gradients_must_be_exact() -> None:
    case = replace(CASE, data="int")
    expected = expect_gradients(case, make_inputs(case))
    assert all(allowed is not None and not allowed.any() for allowed in expected.allowed_error)
    grads = list(_autograd(case))
    assert judge_gradients(case, expected, Outcome(grads=tuple(grads))) is None
    grads[1] = grads[1].clone()
    grads[1].view(-1)[0] += 1
    verdict = judge_gradients(case, expected, Outcome(grads=tuple(grads)))
    assert verdict is not None and verdict.signature == "gradient:values:weight"
    assert "1 of" in verdict.message


def test_a_missing_gradient_and_a_failing_backward_are_named() -> None:
    expected = expect_gradients(CASE, make_inputs(CASE))
    grads = _autograd(CASE)
    missing = judge_gradients(CASE, expected, Outcome(grads=(grads[0], grads[1], None)))
    assert missing is not None and missing.signature == "gradient:missing:bias"
    raised = judge_gradients(
        CASE,
        expected,
        Outcome(
            error_type="RuntimeError",
            error_message="element 0 of tensors does not require grad",
            error_site="mine.py:3",
        ),
    )
    assert raised is not None and raised.kind == "gradient" and "does not require grad" in raised.message


def test_special_values_get_no_gradient_check() -> None:
    assert applies(CASE) and not applies(replace(CASE, data="special"))
