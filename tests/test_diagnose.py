"""The one-line diagnoses say only what is true of the output they describe."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import planted_bugs
import pytest
import torch

from harness.campaign.check import check_case
from harness.generate.tensors import Inputs, make_inputs
from harness.judge.compare import judge
from harness.judge.diagnose import rearrangement, shifted
from harness.judge.oracle import Expected, expect
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.registry import implementation_from
from harness.model.verdict import Verdict

INF, NAN = float("inf"), float("nan")


def _checked(bug: str, case_id: str) -> Verdict:
    """A planted bug (tests/planted_bugs.py) judged on one fixed case."""
    return check_case(Case.from_id(case_id), [implementation_from(bug, getattr(planted_bugs, bug))])[bug]


def _judged(case: Case, expected: Expected, result: torch.Tensor) -> tuple[str | None, str]:
    verdict = judge(case, expected, Outcome(result=result, device="cpu"))
    return verdict.kind, verdict.message


# -- what the diagnosis must say, worked out here from the reference and the result -------
#
# Case data change with the data generator, and with them which element is worst, its
# values and how many elements are wrong: the tests below compute those from the data
# instead of writing them down, so that they check what the diagnosis says against what
# is so, whatever the data.

NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"


def _planted(bug: str, case_id: str) -> tuple[Expected, torch.Tensor]:
    """The reference of a planted bug's case, and what the bug returns there (as float64)."""
    case = Case.from_id(case_id)
    inputs = make_inputs(case)
    got = getattr(planted_bugs, bug)(
        inputs.input.clone(),
        inputs.weight.clone(),
        inputs.bias,
        stride=case.stride,
        padding=case.padding,
        dilation=case.dilation,
        groups=case.groups,
    )
    return expect(case, inputs), got.double()


def _misplaced(reference: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """NaN or an inf on either side, and not the same on both (NaN for NaN, an inf for the same inf)."""
    got = got.double()
    same = (got == reference) | (got.isnan() & reference.isnan())
    return ~(got.isfinite() & reference.isfinite()) & ~same


def _beyond(reference: torch.Tensor, bound: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """Finite on both sides and further apart than the element's own rounding bound."""
    got = got.double()
    return got.isfinite() & reference.isfinite() & ((got - reference).abs() > bound)


def _worst_elements(expected: Expected, got: torch.Tensor) -> list[int]:
    """Flat indices of the wrong elements furthest outside their own bound (where the bound
    is 0, as on exact data, all of them are: then those off by most); any one of them is
    the worst element."""
    error = (got.double() - expected.values).abs().flatten()
    bound = expected.allowed_error.flatten()
    beyond = torch.where(error > bound, error / bound, -1.0)  # error / 0 is inf
    furthest = beyond == beyond.max()
    return (furthest & (error == error[furthest].max())).nonzero().flatten().tolist()


def _told_apart(mine: float, theirs: float) -> tuple[str, str]:
    """The two numbers with the fewest significant digits, six or more, that tell them apart."""
    digits = next(digits for digits in range(6, 18) if f"{mine:.{digits}g}" != f"{theirs:.{digits}g}")
    return f"{mine:.{digits}g}", f"{theirs:.{digits}g}"


def _worst_said(message: str, how: str, expected: Expected, got: torch.Tensor) -> tuple[re.Match[str], int]:
    """Check that ``message`` ends by naming a worst element ("worst <got> vs <reference>,
    <how>", ``how`` a regex) that is one of `_worst_elements`, its two values told apart;
    return the match and that element's flat index."""
    match = re.search(rf"; worst ({NUMBER}) vs ({NUMBER}), {how}$", message)
    assert match, message
    candidates = {
        _told_apart(got.flatten()[at].item(), expected.values.flatten()[at].item()): at
        for at in _worst_elements(expected, got)
    }
    said = (match.group(1), match.group(2))
    assert said in candidates, (message, candidates)
    return match, candidates[said]


def _off_by_a_part_of_m(message: str, expected: Expected, got: torch.Tensor) -> float:
    """Check the "worst <got> vs <reference>, off by <r>x the size of the terms summed (M)"
    ending: the right element, and r its error over its M (to the two digits shown); return r."""
    match, at = _worst_said(message, rf"off by ({NUMBER})x the size of the terms summed \(M\)", expected, got)
    error = abs(got.flatten()[at].item() - expected.values.flatten()[at].item())
    part = error / expected.magnitude.flatten()[at].item()
    assert math.isclose(float(match.group(3)), part, rel_tol=0.05), (message, part)
    return part


# -- rearrangements: an element whose bound is not finite matches only exactly ------------

UNBATCHED_ROW = Case(
    batch=None, in_channels=1, out_channels=1, groups=1, height=1, width=3, kernel=(1, 1), data="special"
)
NONFINITE_ROW = Inputs(torch.tensor([[[-INF, NAN, -INF]]]), torch.tensor([[[[0.5]]]]), None)


def test_a_finite_value_where_the_reference_has_an_inf_is_not_the_same_values_rearranged() -> None:
    # Reported: "same values in an order no reshape or transpose gives" for these values.
    expected = expect(UNBATCHED_ROW, NONFINITE_ROW)
    assert expected.values.flatten().tolist()[::2] == [-INF, -INF] and expected.values.isnan().any()
    kind, message = _judged(UNBATCHED_ROW, expected, torch.tensor([[[NAN, -0.2016, -INF]]]))
    assert kind == "nonfinite" and "same values" not in message, message


def _reference(values: list[float], shape: tuple[int, ...]) -> Expected:
    """A float32 reference with a bound of 1e-6, and an infinite one where it is not finite
    (as the oracle once gave them): the diagnosis must not rely on the oracle's NaN there."""
    reference = torch.tensor(values, dtype=torch.float64).reshape(shape)
    bound = torch.where(reference.isfinite(), 1e-6, INF)
    return Expected(reference, bound, bound, shape, torch.float32, exact=False, mistrusted=False)


def test_an_infinite_bound_vouches_for_nothing_in_a_rearrangement() -> None:
    expected = _reference([-INF, NAN, -INF], (1, 3))
    assert rearrangement(torch.tensor([[NAN, -0.2016, -INF]]), expected) is None  # sorted: -0.2016 vs -inf
    # Reshaped: -0.2016 vs -inf again.
    assert rearrangement(torch.tensor([[-0.2016], [NAN], [1.0]]), _reference([-INF, NAN, 1.0], (1, 3))) is None
    # The same values, exactly, are recognised in any order and shape.
    same_order = rearrangement(torch.tensor([[-INF], [NAN], [-INF]]), expected)
    assert same_order is not None and "same order" in same_order
    same_values = rearrangement(torch.tensor([[NAN, -INF, -INF]]), expected)
    assert same_values is not None and "same values" in same_values


# -- rearrangements: what was tried is named, and nothing more is claimed ------------------


def test_a_result_written_in_another_dimension_order_is_named_by_the_reshape_and_permute_that_undo_it() -> None:
    # mixes_batch writes (C_out, N, H, W) and reads it as (N, C_out, H, W): this once read
    # "same values in an order no reshape or transpose gives", though one of each gives it.
    verdict = _checked("mixes_batch", "mb2ic2oc3g1ih4iw4kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed1")
    assert verdict.kind == "layout"
    assert verdict.message == "same values, different order: got.reshape(3, 2, 4, 4).permute(1, 0, 2, 3) matches"


def test_values_in_no_order_a_reshape_and_permute_give_are_only_said_to_match_once_sorted() -> None:
    expected = _reference([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (1, 2, 3))
    assert (
        rearrangement(torch.tensor([[[2.0, 1.0, 3.0], [4.0, 5.0, 6.0]]]), expected)
        == "same values in another order (they match once sorted)"
    )


def test_values_each_within_its_bound_rearranged_are_found_however_many_and_however_close() -> None:
    case = Case.from_id("mb2ic3oc4g1ih16iw16kh3kw3s1p1d1-bias-float64-contiguous-uniform-cpu-seed5")
    expected = expect(case, make_inputs(case))
    nudged = expected.values + 0.9 * expected.allowed_error  # every one off, all the same way
    assert (
        rearrangement(nudged.flatten().flip(0).reshape(expected.shape), expected)
        == "same values in another order (they match once sorted)"
    )
    beyond = nudged + 2 * expected.allowed_error
    assert rearrangement(beyond.flatten().flip(0).reshape(expected.shape), expected) is None


# -- NaN/inf failures: every wrong element counted and located ---------------------------

# Output (1, 1, 2, 5); the window overlaps padding in the first and last columns only.
# Seed 10 (hash32-v2 data) puts a -inf in the input's first row, fourth column, and -1e30
# in its second row: one column late, the -inf is out of place in one interior element
# only, and finite values are wrong on both sides of the border (the tests assert it).
SHIFTABLE = Case.from_id("mb1ic1oc1g1ih2iw5kh1kw3sh1sw1ph0pw1d1-nobias-float32-contiguous-special-cpu-seed10")
SHIFTABLE_BORDER = torch.tensor([True, False, False, False, True]).expand(1, 1, 2, 5)


def _one_column_late(case: Case) -> tuple[Expected, torch.Tensor]:
    """The reference, and what an im2col that pads one column too many on the left returns:
    every column one late, the first one made of padding."""
    inputs = make_inputs(case)
    late = torch.nn.functional.conv2d(torch.nn.functional.pad(inputs.input, (2, 0)), inputs.weight, inputs.bias)
    return expect(case, inputs), late


def test_a_nonfinite_failure_counts_the_wrong_finite_values_too_and_locates_them_all() -> None:
    # Reported: "NaN/inf mismatch: 1 of 10 output elements wrong, all where the window does
    # not touch padding (interior)", of an output shifted by a column: 8 of 10 are wrong.
    expected, late = _one_column_late(SHIFTABLE)
    misplaced = _misplaced(expected.values, late)
    beyond = _beyond(expected.values, expected.allowed_error, late)
    # The case this is about: the NaN/inf out of place are all interior, so that counting
    # and locating only them says "interior"; finite values are wrong at the border too.
    assert misplaced.any() and not misplaced[SHIFTABLE_BORDER].any()
    assert beyond.any() and beyond[SHIFTABLE_BORDER].any()
    nonfinite, more = int(misplaced.sum()), int(beyond.sum())
    kind, message = _judged(SHIFTABLE, expected, late)
    assert kind == "nonfinite"
    assert message.startswith(
        f"NaN/inf in the wrong place in {nonfinite} of 10 output elements, "
        f"and {more} more wrong value{'' if more == 1 else 's'}"
    )
    assert "interior" not in message and "border" not in message
    assert f"{nonfinite} of 10 output elements wrong, all where the window does not touch padding" not in message


def test_location_hints_cover_the_finite_wrong_values_of_a_nonfinite_failure() -> None:
    case = Case.from_id("mb1ic1oc1g1ih3iw3kh3kw3s1p1d1-nobias-float32-contiguous-uniform-cpu-seed0")
    expected = expect(case, make_inputs(case))
    got = expected.values.float().clone()
    got[0, 0, 0, 0] = NAN  # a border element
    got[0, 0, 1, 1] += 1.0  # the one interior element
    kind, message = _judged(case, expected, got)
    assert kind == "nonfinite"
    assert message == "NaN/inf in the wrong place in 1 of 9 output elements, and 1 more wrong value"


def test_every_element_wrong_is_said_once_nan_and_inf_and_finite_together() -> None:
    # SHIFTABLE's input (seed 10), under a 1x1 kernel: its -inf makes one output -inf.
    case = Case.from_id("mb1ic1oc1g1ih2iw5kh1kw1s1p0d1-nobias-float32-contiguous-special-cpu-seed10")
    expected = expect(case, make_inputs(case))
    got = expected.values.float() * 2 + 1  # every finite value wrong,
    got[~expected.values.isfinite()] = 0.0  # and every NaN and inf turned to 0
    nonfinite = int((~expected.values.isfinite()).sum())
    assert 0 < nonfinite < 10  # the case this is about: NaN/inf and finite values both
    assert int(_misplaced(expected.values, got).sum()) == nonfinite
    assert int(_beyond(expected.values, expected.allowed_error, got).sum()) == 10 - nonfinite
    said = f"NaN/inf in the wrong place in {nonfinite} of 10 output elements, and {10 - nonfinite} more wrong values"
    assert _judged(case, expected, got) == ("nonfinite", f"{said}: every element")


def test_a_last_row_whose_windows_overlap_padding_is_said_to_be_both() -> None:
    case = Case.from_id("mb1ic1oc1g1ih3iw3kh3kw3s1p1d1-nobias-float32-contiguous-uniform-cpu-seed0")
    expected = expect(case, make_inputs(case))
    got = expected.values.float().clone()
    got[..., -1, :] += 1.0
    kind, message = _judged(case, expected, got)
    assert kind == "values"
    assert message.startswith(
        "3 of 9 output elements wrong, all where the window overlaps padding (border), "
        "in the last output row (output size?); "
    )


# -- shifts by whole rows or columns are named -------------------------------------------


def test_an_output_one_column_late_is_said_to_be_shifted_right_by_a_column() -> None:
    expected, late = _one_column_late(SHIFTABLE)
    nonfinite = int(_misplaced(expected.values, late).sum())
    more = int(_beyond(expected.values, expected.allowed_error, late).sum())
    assert nonfinite and more >= 2  # a NaN/inf moved, and finite values to tell the shift by
    assert _judged(SHIFTABLE, expected, late) == (
        "nonfinite",
        f"NaN/inf in the wrong place in {nonfinite} of 10 output elements, and {more} more wrong values; "
        "shifted right by 1 column: got[..., :, 1:] matches expected[..., :, :-1]",
    )
    # What it says is so: NaN and inf included, got[..., :, 1:] is expected[..., :, :-1].
    moved, bound = expected.values[..., :, :-1], expected.allowed_error[..., :, :-1]
    assert not _misplaced(moved, late[..., :, 1:]).any() and not _beyond(moved, bound, late[..., :, 1:]).any()


def test_an_output_two_rows_early_is_said_to_be_shifted_up_by_two_rows() -> None:
    case = Case.from_id("mb2ic1oc2g1ih6iw3kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed3")
    expected = expect(case, make_inputs(case))
    early = torch.zeros(case.output_shape)
    early[..., :-2, :] = expected.values[..., 2:, :].float()
    kind, message = _judged(case, expected, early)
    assert kind == "values"
    assert message.startswith(
        "72 of 72 output elements wrong; shifted up by 2 rows: got[..., :-2, :] matches expected[..., 2:, :]; worst "
    )


def test_same_padding_with_the_odd_pixel_first_is_said_to_shift_the_output_down_and_right() -> None:
    verdict = _checked(
        "same_padding_odd_pixel_first", "mb1ic2oc2g1ih5iw5kh2kw2s1psamed1-bias-float32-contiguous-uniform-cpu-seed1"
    )
    assert verdict.kind == "values"
    assert (
        "; shifted down by 1 row and right by 1 column: got[..., 1:, 1:] matches expected[..., :-1, :-1]; "
        in verdict.message
    )


def test_values_rolled_by_a_column_are_said_to_be_the_same_values_shifted() -> None:
    case = Case.from_id("mb1ic1oc2g1ih3iw4kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed2")
    expected = expect(case, make_inputs(case))
    assert _judged(case, expected, expected.values.float().roll(1, -1)) == (
        "layout",
        "same values in another order (they match once sorted); "
        "shifted right by 1 column: got[..., :, 1:] matches expected[..., :, :-1]",
    )


def test_an_output_of_one_value_is_not_said_to_be_shifted_onto_a_block_of_it() -> None:
    def block_of(value: float) -> Expected:
        return _reference([value] * 6 + [1.0, 2.0, 3.0], (1, 3, 3))

    for value in (NAN, 0.0, 5.0):  # got[..., 1:, :] matches expected[..., :-1, :], and says nothing
        assert shifted(torch.full((1, 3, 3), value), block_of(value)) is None
    early = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 0.0, 0.0]]])
    assert (
        shifted(early, _reference([9.0] * 3 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (1, 3, 3)))
        == "shifted up by 1 row: got[..., :-1, :] matches expected[..., 1:, :]"
    )


def test_a_shift_is_named_only_where_the_values_match_closely_not_just_within_a_loose_bound() -> None:
    reference = torch.tensor([[0.0, 1.2, 2.4, 3.6, 4.8]], dtype=torch.float64)
    loose = Expected(
        reference,
        torch.full_like(reference, 0.6),
        reference.abs(),
        (1, 5),
        torch.bfloat16,
        exact=False,
        mistrusted=False,
    )
    near = torch.cat([torch.tensor([[9.0]]), reference[:, :-1] + 0.5], 1)  # 0.7 from where it stands
    assert shifted(near, loose) is None
    assert (
        shifted(torch.cat([torch.tensor([[9.0]]), reference[:, :-1] + 0.01], 1), loose)
        == "shifted right by 1 column: got[..., :, 1:] matches expected[..., :, :-1]"
    )


# -- how far off, in plain words, for the worst wrong element ----------------------------


def test_an_index_bug_is_off_by_a_multiple_of_the_size_of_the_terms_summed() -> None:
    case_id = "mb1ic2oc2g1ih5iw5kh3kw3s1p1d1-bias-float32-contiguous-uniform-cpu-seed1"
    verdict = _checked("flips_kernel", case_id)
    expected, got = _planted("flips_kernel", case_id)
    assert bool(_beyond(expected.values, expected.allowed_error, got).all())  # a flipped kernel: every element
    assert verdict.kind == "values"
    assert verdict.message.startswith("50 of 50 output elements wrong: every element; worst ")
    # Off by a sizeable part of M, as an index bug is, not by rounding ((K + 2) * u of it).
    assert _off_by_a_part_of_m(verdict.message, expected, got) > 0.1


def test_float32_math_in_a_float64_result_is_named_as_such_and_its_worst_values_told_apart() -> None:
    case_id = "mb1ic2oc2g1ih5iw5kh3kw3s1p1d1-bias-float64-contiguous-uniform-cpu-seed1"
    verdict = _checked("float32_math", case_id)
    expected, got = _planted("float32_math", case_id)
    assert bool(_beyond(expected.values, expected.allowed_error, got).all())
    assert bool((got.float().double() == got).all())  # every value a float32 value
    assert verdict.kind == "values"
    assert verdict.message.startswith("50 of 50 output elements wrong: every element; worst ")
    match, at = _worst_said(
        verdict.message, f"off by ({NUMBER}): float32-level rounding in a float64 result", expected, got
    )
    mine, theirs = got.flatten()[at].item(), expected.values.flatten()[at].item()
    assert math.isclose(float(match.group(3)), abs(mine - theirs), rel_tol=5e-3)
    # The case this is about: six digits show the worst two values as one number.
    assert f"{mine:.6g}" == f"{theirs:.6g}" and f"worst {mine:.6g} vs {theirs:.6g}," not in verdict.message


def _not_exact(dtype: str) -> tuple[str, Expected, torch.Tensor, re.Match[str], int]:
    """prescales_input (x / 3, conv, * 3) on int data in ``dtype``: its verdict's message,
    checked to end by naming a worst element off by rounding; the reference and result, the
    match and that element's flat index."""
    case_id = f"mb1ic2oc2g1ih5iw5kh3kw3s1p1d1-bias-{dtype}-contiguous-int-cpu-seed1"
    verdict = _checked("prescales_input", case_id)
    expected, got = _planted("prescales_input", case_id)
    # The case this is about: exact data, on which the bug is off by rounding in some
    # elements (not all, not more than a few units in the last place).
    error = (got - expected.values).abs()
    wrong = int((error > 0).sum())
    assert expected.exact and 0 < wrong < got.numel()
    assert bool((error <= 8 * torch.finfo(getattr(torch, dtype)).eps * expected.values.abs()).all())
    assert verdict.kind == "values"
    assert re.match(rf"{wrong} of 50 output elements wrong[^;]*; worst ", verdict.message), verdict.message
    match, at = _worst_said(
        verdict.message,
        rf"not exact: off by ({NUMBER}) where every partial sum is an exact "
        "integer",
        expected,
        got,
    )
    assert math.isclose(float(match.group(3)), error.flatten()[at].item(), rel_tol=5e-3)
    return verdict.message, expected, got, match, at


def test_int_data_off_by_rounding_is_not_exact_where_every_partial_sum_is_an_exact_integer() -> None:
    _not_exact("float32")
    message, expected, got, _, at = _not_exact("float64")
    # Nine digits once showed the worst of this as "-66 vs -66" (two equal numbers).
    mine, theirs = got.flatten()[at].item(), expected.values.flatten()[at].item()
    assert f"{mine:.9g}" == f"{theirs:.9g}" and f"worst {mine:.9g} vs {theirs:.9g}," not in message


LONG_SUMS = Case.from_id("mb1ic16oc1g1ih3iw3kh2kw2s1p1d1-nobias-float32-contiguous-uniform-cpu-seed0")  # K = 64


def test_the_worst_element_is_the_one_furthest_outside_its_own_bound_not_the_largest_error() -> None:
    expected = expect(LONG_SUMS, make_inputs(LONG_SUMS))
    bound = expected.allowed_error.flatten()
    loose, tight = int(bound.argmax()), int(bound.argmin())
    got = expected.values.flatten().clone()
    got[loose] += 0.9 * bound[loose]  # the largest error, within its bound
    got[tight] += 2.0 * bound[tight]  # a smaller error, twice its bound
    assert 2.0 * bound[tight] < 0.9 * bound[loose]
    kind, message = _judged(LONG_SUMS, expected, got.float().reshape(expected.shape))
    assert kind == "values" and message.startswith("1 of 16 output elements wrong, at (0, 0, 0, 3)")
    mine, theirs = got[tight].float().item(), expected.values.flatten()[tight].item()
    assert f"; worst {mine:.6g} vs {theirs:.6g}, off by " in message  # once the element within its bound


def test_an_error_within_a_coarser_bound_is_not_called_rounding_unless_the_values_are_that_dtypes() -> None:
    case = dataclasses.replace(LONG_SUMS, bias=True)
    inputs = make_inputs(case)
    expected = expect(case, inputs)
    without_bias = torch.nn.functional.conv2d(inputs.input, inputs.weight, None, 1, 1)
    error = (without_bias.double() - expected.values).abs()
    assert bool((error <= 66 * 2.0**-8 * expected.magnitude).all())  # within bfloat16's (K + 2) * u * M
    kind, message = _judged(case, expected, without_bias)
    assert kind == "values" and "rounding" not in message and message.endswith("x the size of the terms summed (M)")


def test_a_result_computed_in_bfloat16_is_named_bfloat16_though_its_values_are_float16_values_too() -> None:
    inputs = make_inputs(LONG_SUMS)
    expected = expect(LONG_SUMS, inputs)
    rounded = [t.bfloat16().float() for t in (inputs.input, inputs.weight)]
    in_bfloat16 = torch.nn.functional.conv2d(rounded[0], rounded[1], None, 1, 1).bfloat16().float()
    assert bool((in_bfloat16.half().float() == in_bfloat16).all())
    kind, message = _judged(LONG_SUMS, expected, in_bfloat16)
    assert kind == "values" and message.endswith(": bfloat16-level rounding in a float32 result")


def test_an_error_where_every_term_summed_is_zero_is_given_as_it_is_not_as_a_multiple_of_zero() -> None:
    case = Case.from_id("mb1ic1oc1g1ih2iw2kh1kw1s1p2d1-nobias-float32-contiguous-uniform-cpu-seed0")
    expected = expect(case, make_inputs(case))
    got = expected.values.float().clone()
    got[0, 0, 0, 0] = 0.5  # the window lies in the padding: every product is 0 * w
    assert expected.magnitude[0, 0, 0, 0] == 0
    assert _judged(case, expected, got) == (
        "values",
        "1 of 36 output elements wrong, at (0, 0, 0, 0), where the "
        "window overlaps padding (border); worst 0.5 vs 0, off by 0.5 "
        "where every term summed is zero",
    )


# -- planted bugs read as what they do ----------------------------------------------------

PLAIN = "mb1ic2oc2g1ih5iw5kh3kw3s1p1d1-bias-float32-contiguous-uniform-cpu-seed1"  # output (1, 2, 5, 5)
# 3x3 windows, padding 1, stride 1: the windows of the output's outer ring overlap padding.
PLAIN_BORDER = torch.ones(1, 2, 5, 5, dtype=torch.bool)
PLAIN_BORDER[..., 1:-1, 1:-1] = False


def _drops_last_row_said(message: str, expected: Expected, got: torch.Tensor) -> None:
    assert message == "shape (1, 1, 1, 1), expected (1, 1, 2, 1)"  # shapes only: no data in it


def _swallows_nan_said(message: str, expected: Expected, got: torch.Tensor) -> None:
    misplaced = _misplaced(expected.values, got)
    # The case: NaN/inf in the reference (nothing else wrong: nan_to_num leaves finite
    # values be), in both channels, at the border and inside it, so that no place holds
    # them all and none is said.
    assert bool(got.isfinite().all()) and torch.equal(misplaced, ~expected.values.isfinite())
    assert not _beyond(expected.values, expected.allowed_error, got).any()
    assert misplaced[:, 0].any() and misplaced[:, 1].any()
    assert misplaced[PLAIN_BORDER].any() and misplaced[~PLAIN_BORDER].any()
    assert message == f"NaN/inf in the wrong place in {int(misplaced.sum())} of 50 output elements"


def _replicate_padding_said(message: str, expected: Expected, got: torch.Tensor) -> None:
    wrong = _beyond(expected.values, expected.allowed_error, got)
    # The case: wrong where the window overlaps padding and only there, in both channels
    # and more than the last row.
    assert wrong.any() and not wrong[~PLAIN_BORDER].any()
    assert wrong[:, 0].any() and wrong[:, 1].any() and wrong[..., :-1, :].any() and wrong[..., :, :-1].any()
    assert message.startswith(
        f"{int(wrong.sum())} of 50 output elements wrong, all where the window overlaps padding (border); worst "
    )
    _off_by_a_part_of_m(message, expected, got)


def _one_wrong_element_said(message: str, expected: Expected, got: torch.Tensor) -> None:
    wrong = _beyond(expected.values, expected.allowed_error, got)
    assert int(wrong.sum()) == 1 and bool(wrong.flatten()[-1])  # the bug's last element (a border one)
    at = tuple(wrong.nonzero()[0].tolist())
    assert PLAIN_BORDER[at]
    assert message.startswith(
        f"1 of 50 output elements wrong, at {at}, where the window overlaps padding (border); worst "
    )
    assert math.isclose(
        _off_by_a_part_of_m(message, expected, got) * expected.magnitude[at].item(), 1e-3, rel_tol=0.05
    )  # off by the bug's 1e-3


@pytest.mark.parametrize(
    "bug, case_id, kind, said",
    [
        (
            "drops_last_row",
            "mb1ic1oc1g1ih6iw4kh3kw3s2p0d1-nobias-float32-contiguous-uniform-cpu-seed1",
            "shape",
            _drops_last_row_said,
        ),
        ("swallows_nan", PLAIN.replace("uniform", "special"), "nonfinite", _swallows_nan_said),
        ("replicate_padding", PLAIN, "values", _replicate_padding_said),
        ("one_wrong_element", PLAIN, "values", _one_wrong_element_said),
    ],
    ids=["drops_last_row", "swallows_nan", "replicate_padding", "one_wrong_element"],
)
def test_a_planted_bug_reads_as_what_it_does(
    bug: str, case_id: str, kind: str, said: Callable[[str, Expected, torch.Tensor], None]
) -> None:
    """``said`` checks the message against the reference and what the bug returns, worked
    out here (`_planted`)."""
    verdict = _checked(bug, case_id)
    assert verdict.kind == kind
    said(verdict.message, *_planted(bug, case_id))
