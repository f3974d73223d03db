"""Gradient checks, for implementations that declare autograd support.

The implementation is called with inputs that require grad, and the gradients of
``sum(output * g)`` with respect to input, weight and bias (``g`` from the case's seed,
`harness.generate.tensors.upstream_gradient`) are compared with those of the float64 Conv2d.
The tolerance follows the oracle's rule, per gradient: each element is a sum of K
products, so it may be off by (K + 2) * (u * M + eta), where M is the same gradient with
every operand replaced by its absolute value (`oracle.allowed_error`). The K differ: an input pixel collects
``out_channels / groups * kh * kw`` terms, a weight or bias element one per output position
of every batch item. With ``int`` data (and an integer ``g``) gradients must be exact.

Special-value data are not used here: which of NaN and inf a backward pass makes of
``inf * 0`` and ``inf - inf`` depends on how it is written, not on whether it is right.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from harness.generate.tensors import Inputs, upstream_gradient
from harness.judge.compare import how_the_call_went
from harness.judge.oracle import allowed_error, convolve
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.verdict import Verdict, failure

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


def weighted_gradients(
    output: object, leaves: Sequence[torch.Tensor], upstream: torch.Tensor, allow_unused: bool = False
) -> tuple[torch.Tensor | None, ...]:
    """d(sum(output * upstream)) / d(leaves).

    Where ``output`` is a plain tensor of ``upstream``'s shape, dtype and device, taken of
    that sum: the same bits as passing ``upstream`` in as the output's gradient (the sum's
    is one, times ``upstream``), without what torch imports the first time an output's
    gradient is passed in (sympy: 0.3 s of a core, once per process). Anything else goes to
    autograd as it is, to fail its way, once that import is made with the warnings filter
    it adds dropped: made during a call, it would read as the call's (`process_state.Guard`)."""
    if (
        type(output) is torch.Tensor
        and output.shape == upstream.shape
        and output.dtype == upstream.dtype
        and output.device == upstream.device
    ):
        return torch.autograd.grad((output * upstream).sum(), leaves, allow_unused=allow_unused)
    with warnings.catch_warnings():
        importlib.import_module("torch.fx.experimental.symbolic_shapes")
    return torch.autograd.grad(cast(torch.Tensor, output), leaves, upstream, allow_unused=allow_unused)


def _reference_gradients(case: Case, tensors: list[torch.Tensor], upstream: torch.Tensor) -> tuple[torch.Tensor, ...]:
    leaves = [t.requires_grad_() for t in tensors]
    with torch.enable_grad():
        output = convolve(case, leaves[0], leaves[1], leaves[2] if case.bias else None)
        return cast(tuple[torch.Tensor, ...], weighted_gradients(output, leaves, upstream))


def reduction_lengths(case: Case) -> tuple[int, int, int]:
    """K of each gradient, input, weight and bias: how many products one of its elements sums
    (an input pixel: one per output channel of its group and kernel tap; a weight or bias
    element: one per output position of every batch item)."""
    out_h, out_w = case.output_hw
    per_output = (case.batch if case.batch is not None else 1) * out_h * out_w
    return (case.out_channels // case.groups * case.kernel[0] * case.kernel[1], per_output, per_output)


def expect_gradients(case: Case, inputs: Inputs) -> ExpectedGradients:
    upstream = upstream_gradient(case)
    exact = [t.detach().cpu().to(torch.float64, memory_format=torch.contiguous_format) for t in inputs.tensors()]
    g = upstream.cpu().to(torch.float64)
    values = _reference_gradients(case, [t.clone() for t in exact], g)
    magnitudes = _reference_gradients(case, [t.abs() for t in exact], g.abs())
    # No bias: two magnitudes, and zip stops there.
    allowed = [allowed_error(case, m, length) for m, length in zip(magnitudes, reduction_lengths(case), strict=False)]
    pad = [None] * (len(WITH_RESPECT_TO) - len(values))
    return ExpectedGradients(upstream, (*values, *pad), (*allowed, *pad))


def judge_gradients(case: Case, expected: ExpectedGradients, outcome: Outcome) -> Verdict | None:
    """A failure, or None when every gradient is within its bound."""
    went_wrong = how_the_call_went(outcome, "during backward: ")
    if went_wrong:
        return went_wrong
    if outcome.error_type:
        return failure(
            "gradient",
            f"with inputs that require grad: {outcome.error_type}: {outcome.error_message} (at {outcome.error_site})",
            f"raised:{outcome.error_type}@{outcome.error_site}",
        )
    assert outcome.grads is not None
    for name, got, want, allowed in zip(
        WITH_RESPECT_TO, outcome.grads, expected.values, expected.allowed_error, strict=True
    ):
        if want is None or allowed is None:
            continue
        if got is None:
            return failure(
                "gradient", f"no gradient reaches the {name}: autograd does not see it used", f"missing:{name}"
            )
        if got.shape != want.shape or got.dtype != getattr(torch, case.dtype):
            return failure(
                "gradient",
                f"the {name} gradient is {got.dtype} {tuple(got.shape)}, expected {case.dtype} {tuple(want.shape)}",
                f"shape:{name}",
            )
        error = (got.detach().cpu().to(torch.float64) - want).abs()
        wrong = ~(error <= allowed)  # NaN where the reference is finite is wrong too
        if wrong.any():
            worst = int(error.nan_to_num(torch.inf).argmax())
            return failure(
                "gradient",
                f"the {name} gradient is wrong in {int(wrong.sum())} of {wrong.numel()} "
                f"elements; worst {got.flatten()[worst].item():.6g} vs "
                f"{want.flatten()[worst].item():.6g}",
                f"values:{name}",
            )
    return None
