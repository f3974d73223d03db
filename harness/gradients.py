"""Gradient checks, for implementations that declare autograd support.

The implementation is called with inputs that require grad, and the gradients of
``sum(output * g)`` with respect to input, weight and bias (``g`` from the case's seed,
`harness.tensors.upstream_gradient`) are compared with those of the float64 Conv2d.
The tolerance follows the oracle's rule, per gradient: each element is a sum of K
products, so it may be off by (K + 2) * (u * M + eta), where M is the same gradient with
every operand replaced by its absolute value (`oracle.allowed_error`). The K differ: an input pixel collects
``out_channels / groups * kh * kw`` terms, a weight or bias element one per output position
of every batch item. With ``int`` data (and an integer ``g``) gradients must be exact.

Special-value data are not used here: which of NaN and inf a backward pass makes of
``inf * 0`` and ``inf - inf`` depends on how it is written, not on whether it is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.case import Case
from harness.compare import how_the_call_went
from harness.oracle import allowed_error, convolve
from harness.outcome import Outcome
from harness.tensors import Inputs, upstream_gradient
from harness.verdict import Verdict, failure

WITH_RESPECT_TO = ("input", "weight", "bias")


def applies(case: Case) -> bool:
    return case.data != "special"


@dataclass(frozen=True)
class ExpectedGradients:
    """float64 gradients of input, weight and bias (None where there is no bias), and the
    error each element may have."""

    upstream: torch.Tensor  # what the implementation's output is multiplied by, in its dtype
    values: tuple[torch.Tensor | None, ...]
    allowed_error: tuple[torch.Tensor | None, ...]


def _reference_gradients(case: Case, tensors: list[torch.Tensor], upstream: torch.Tensor) -> tuple[torch.Tensor, ...]:
    leaves = [t.requires_grad_() for t in tensors]
    with torch.enable_grad():
        output = convolve(case, leaves[0], leaves[1], leaves[2] if case.bias else None)
        return torch.autograd.grad(output, leaves, upstream)


def expect_gradients(case: Case, inputs: Inputs) -> ExpectedGradients:
    upstream = upstream_gradient(case)
    exact = [t.detach().cpu().to(torch.float64, memory_format=torch.contiguous_format) for t in inputs.tensors()]
    g = upstream.cpu().to(torch.float64)
    values = _reference_gradients(case, [t.clone() for t in exact], g)
    magnitudes = _reference_gradients(case, [t.abs() for t in exact], g.abs())
    out_h, out_w = case.output_hw
    per_output = (case.batch if case.batch is not None else 1) * out_h * out_w
    lengths = (case.out_channels // case.groups * case.kernel[0] * case.kernel[1], per_output, per_output)
    allowed = [allowed_error(case, m, length) for m, length in zip(magnitudes, lengths, strict=False)]  # no bias: 2
    pad = [None] * (len(WITH_RESPECT_TO) - len(values))
    return ExpectedGradients(upstream, (*values, *pad), (*allowed, *pad))


def judge_gradients(case: Case, expected: ExpectedGradients, outcome: Outcome) -> Verdict | None:
    """A failure, or None when every gradient is within its bound."""
    went_wrong = how_the_call_went(outcome, "during backward: ")
    if went_wrong:
        return went_wrong
    if outcome.error_type:
        return failure("gradient", f"with inputs that require grad: {outcome.error_type}: "
                                   f"{outcome.error_message} (at {outcome.error_site})",
                       f"raised:{outcome.error_type}@{outcome.error_site}")
    assert outcome.grads is not None
    for name, got, want, allowed in zip(WITH_RESPECT_TO, outcome.grads, expected.values, expected.allowed_error,
                                        strict=True):
        if want is None or allowed is None:
            continue
        if got is None:
            return failure("gradient", f"no gradient reaches the {name}: autograd does not see it used",
                           f"missing:{name}")
        if got.shape != want.shape or got.dtype != getattr(torch, case.dtype):
            return failure("gradient", f"the {name} gradient is {got.dtype} {tuple(got.shape)}, expected "
                                       f"{case.dtype} {tuple(want.shape)}", f"shape:{name}")
        error = (got.detach().cpu().to(torch.float64) - want).abs()
        wrong = ~(error <= allowed)  # NaN where the reference is finite is wrong too
        if wrong.any():
            worst = int(error.nan_to_num(torch.inf).argmax())
            return failure("gradient", f"the {name} gradient is wrong in {int(wrong.sum())} of {wrong.numel()} "
                                       f"elements; worst {got.flatten()[worst].item():.6g} vs "
                                       f"{want.flatten()[worst].item():.6g}", f"values:{name}")
    return None
