"""The one-line diagnoses say only what is true of the output they describe."""

from __future__ import annotations

import torch

from harness.case import Case
from harness.compare import judge
from harness.diagnose import rearrangement
from harness.oracle import Expected, expect
from harness.runner import Outcome
from harness.tensors import Inputs

INF, NAN = float("inf"), float("nan")


def _judged(case: Case, expected: Expected, result: torch.Tensor) -> tuple[str | None, str]:
    verdict = judge(case, expected, Outcome(result=result, device="cpu"))
    return verdict.kind, verdict.message


# -- rearrangements: an element whose bound is not finite matches only exactly ------------

UNBATCHED_ROW = Case(batch=None, in_channels=1, out_channels=1, groups=1, height=1, width=3, kernel=(1, 1),
                     data="special")
NONFINITE_ROW = Inputs(torch.tensor([[[-INF, NAN, -INF]]]), torch.tensor([[[[0.5]]]]), None)


def test_a_finite_value_where_the_reference_has_an_inf_is_not_the_same_values_rearranged() -> None:
    # Reported: "same values in an order no reshape or transpose gives" for these values.
    expected = expect(UNBATCHED_ROW, NONFINITE_ROW)
    assert expected.values.flatten().tolist()[::2] == [-INF, -INF] and expected.values.isnan().any()
    kind, message = _judged(UNBATCHED_ROW, expected, torch.tensor([[[NAN, -0.2016, -INF]]]))
    assert kind == "nonfinite" and "same values" not in message, message


def _infinite_bounds(values: list[float], shape: tuple[int, ...]) -> Expected:
    """A reference whose non-finite elements have an infinite rounding bound (as the oracle
    once gave them), to show the diagnosis does not rely on the oracle's NaN."""
    reference = torch.tensor(values, dtype=torch.float64).reshape(shape)
    bound = torch.where(reference.isfinite(), 1e-6, INF)
    return Expected(reference, bound, bound, shape, torch.float32, exact=False, mistrusted=False)


def test_an_infinite_bound_vouches_for_nothing_in_a_rearrangement() -> None:
    expected = _infinite_bounds([-INF, NAN, -INF], (1, 3))
    assert rearrangement(torch.tensor([[NAN, -0.2016, -INF]]), expected) is None  # sorted: -0.2016 vs -inf
    # Reshaped: -0.2016 vs -inf again.
    assert rearrangement(torch.tensor([[-0.2016], [NAN], [1.0]]), _infinite_bounds([-INF, NAN, 1.0], (1, 3))) is None
    # The same values, exactly, are recognised in any order and shape.
    assert "same order" in rearrangement(torch.tensor([[-INF], [NAN], [-INF]]), expected)
    assert "same values" in rearrangement(torch.tensor([[NAN, -INF, -INF]]), expected)
