"""The independent reference: direct summation in NumPy agrees with torch's float64 conv2d,
and its gradients with torch's autograd, within the bound (exactly on ``int`` data), and a
wrong "torch" reference or gradient is caught."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

from harness.generate.strategies import cases
from harness.generate.tensors import Inputs, make_inputs
from harness.judge.gradients import WITH_RESPECT_TO, ExpectedGradients, applies, expect_gradients
from harness.judge.independent import cross_check, cross_check_gradients, gradients, reference
from harness.judge.oracle import expect
from harness.model.case import DATA_KINDS, DTYPES, LAYOUTS, Case

# Hand-picked: every argument the Case can express, in its int and pair forms.
SHAPES = [
    "mb2ic4oc6g2ih9iw8kh2kw4sh1sw2p1d2-bias",  # groups, stride pair, dilation
    "mb3ic9oc9g3ih12iw11kh4kw2s1psamed2-bias",  # 'same' with even kernels: uneven split
    "mbnoneic3oc2g1ih7iw6kh3kw3s2ph0pw2dh1dw2-nobias",  # unbatched, padding and dilation pairs
    "mb1ic2oc4g2ih5iw9kh2kw3s3pvalidd1-bias",  # 'valid', stride 3, depthwise-like groups
    "mb0ic2oc3g1ih6iw6kh3kw3s1p1d1-bias",  # an empty batch
]


def _cases() -> list[Case]:
    hand = [
        Case.from_id(f"{shape}-{dtype}-{layout}-{data}-cpu-seed{seed}")
        for seed, shape in enumerate(SHAPES)
        for dtype in DTYPES
        for layout in LAYOUTS
        for data in DATA_KINDS
    ]
    return hand + _seeded(random.Random(18), 40)


def _seeded(rng: random.Random, count: int) -> list[Case]:
    """Valid random cases, fixed by the seed, spread over every dtype, layout and data kind."""
    found: list[Case] = []
    while len(found) < count:
        groups = rng.choice((1, 2, 3))
        kernel = (rng.randint(1, 4), rng.randint(1, 4))
        paddings: list[int | tuple[int, int] | str] = [0, 1, 2, (1, 0), (0, 3), "same", "valid"]
        padding = rng.choice(paddings)
        case = Case(
            batch=rng.choice((None, 0, 1, 2)),
            in_channels=groups * rng.randint(1, 3),
            out_channels=groups * rng.randint(1, 3),
            groups=groups,
            height=rng.randint(1, 12),
            width=rng.randint(1, 12),
            kernel=kernel,
            stride=1 if padding == "same" else rng.choice((1, 2, (1, 3))),
            padding=padding,
            dilation=rng.choice((1, 2, (2, 1))),
            bias=rng.random() < 0.5,
            dtype=DTYPES[len(found) % len(DTYPES)],
            layout=LAYOUTS[len(found) % len(LAYOUTS)],
            data=DATA_KINDS[len(found) % len(DATA_KINDS)],
            seed=rng.randrange(2**32),
        )
        if not case.problems():
            found.append(case)
    return found


CASES = _cases()


def _torch64(case: Case, inputs: Inputs) -> torch.Tensor:
    return expect(case, inputs).values


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_independent_reference_agrees_with_torch_within_the_bound_and_exactly_on_int_data(case: Case) -> None:
    inputs = make_inputs(case)
    theirs = _torch64(case, inputs)
    mine = reference(case, inputs)
    assert mine.shape == case.output_shape == tuple(theirs.shape)
    checked = cross_check(case, inputs, theirs)
    assert checked.agree, checked.description
    if case.data == "int":
        assert np.array_equal(mine, theirs.numpy())  # bit for bit: no rounding at all
        assert mine.size == 0 or checked.allowed == 0


def test_special_data_put_nan_and_both_infinities_where_torch_puts_them() -> None:
    # The placement is judged by the cross-check; here: the fixed cases do make each of them.
    made = {"nan": False, "+inf": False, "-inf": False}
    for case in (c for c in CASES if c.data == "special"):
        inputs = make_inputs(case)
        mine, theirs = reference(case, inputs), _torch64(case, inputs).numpy()
        assert np.array_equal(np.isnan(mine), np.isnan(theirs))
        assert np.array_equal(np.isposinf(mine), np.isposinf(theirs))
        assert np.array_equal(np.isneginf(mine), np.isneginf(theirs))
        made["nan"] |= bool(np.isnan(mine).any())
        made["+inf"] |= bool(np.isposinf(mine).any())
        made["-inf"] |= bool(np.isneginf(mine).any())
    assert all(made.values()), made


@settings(max_examples=30, deadline=None, database=None)
@given(cases())
def test_any_drawn_case_agrees(case: Case) -> None:
    inputs = make_inputs(case)
    theirs = _torch64(case, inputs)
    checked = cross_check(case, inputs, theirs)
    assert checked.agree, checked.description
    if case.data == "int":
        assert np.array_equal(reference(case, inputs), theirs.numpy())


# -- a wrong "torch" is caught ----------------------------------------------------------

UNIFORM = Case.from_id("mb2ic4oc6g2ih9iw8kh2kw4sh1sw2p1d2-bias-float32-contiguous-uniform-cpu-seed3")


@pytest.mark.parametrize(("times", "agree"), [(0.4, True), (3.0, False)])
def test_one_element_moved_beyond_twice_the_float64_bound_is_caught_and_within_it_is_not(
    times: float, agree: bool
) -> None:
    inputs = make_inputs(UNIFORM)
    index = (1, 4, 5, 1)
    # Each reference may be off by the float64 bound: two correct ones, by twice that.
    allowed = 2 * expect(replace(UNIFORM, dtype="float64"), inputs).allowed_error[index].item()
    planted = _torch64(UNIFORM, inputs).clone()
    planted[index] = reference(UNIFORM, inputs)[index] + times * allowed
    checked = cross_check(UNIFORM, inputs, planted)
    assert checked.agree is agree, checked.description
    if not agree:
        assert checked.index == index and checked.torch_value == planted[index].item()
        assert checked.allowed == pytest.approx(allowed, rel=1e-6)
        assert checked.description.startswith("torch's float64 reference is wrong at (1, 4, 5, 1)")


def test_int_data_off_by_one_in_one_element_is_caught() -> None:
    case = replace(UNIFORM, data="int")
    inputs = make_inputs(case)
    planted = _torch64(case, inputs).clone()
    planted[0, 2, 3, 1] += 1
    checked = cross_check(case, inputs, planted)
    assert not checked.agree and checked.index == (0, 2, 3, 1) and checked.allowed == 0
    assert "exactly" in checked.description


def test_same_padding_split_the_other_way_is_caught() -> None:
    # torch puts the odd pixel of 'same' padding last (bottom, right); first would be wrong.
    case = Case.from_id("mb1ic2oc3g1ih7iw8kh2kw4s1psamed1-nobias-float64-contiguous-uniform-cpu-seed5")
    inputs = make_inputs(case)
    top, bottom, left, right = case.paddings
    assert (top, bottom, left, right) == (0, 1, 1, 2)
    swapped = F.conv2d(F.pad(inputs.input, (right, left, bottom, top)), inputs.weight)
    assert swapped.shape == _torch64(case, inputs).shape
    checked = cross_check(case, inputs, swapped)
    assert not checked.agree, checked.description


def test_nan_where_torch_has_a_number_and_an_infinity_of_the_wrong_sign_are_caught() -> None:
    case = replace(UNIFORM, data="special")
    inputs = make_inputs(case)
    values = _torch64(case, inputs)
    finite = tuple(int(i) for i in torch.nonzero(values.isfinite())[0])
    infinite = tuple(int(i) for i in torch.nonzero(values.isinf())[0])
    for index, wrong in ((finite, torch.nan), (infinite, -values[infinite].item()), (infinite, torch.nan)):
        planted = values.clone()
        planted[index] = wrong
        checked = cross_check(case, inputs, planted)
        assert not checked.agree and checked.index == index, checked.description


def test_a_reference_of_the_wrong_shape_is_caught() -> None:
    inputs = make_inputs(UNIFORM)
    checked = cross_check(UNIFORM, inputs, _torch64(UNIFORM, inputs)[:, :, :-1])
    assert not checked.agree and checked.index is None and "shape" in checked.description


# -- exact integers beyond int64 ---------------------------------------------------------


def test_int_sums_beyond_int64_are_exact() -> None:
    # 3_037_000_500**2 is just over 2**63: int64 would wrap, Python ints do not.
    case = Case(
        batch=1,
        in_channels=1,
        out_channels=1,
        groups=1,
        height=1,
        width=2,
        kernel=(1, 2),
        bias=True,
        dtype="float64",
        data="int",
    )
    big = 3_037_000_500
    inputs = Inputs(
        torch.full((1, 1, 1, 2), float(big), dtype=torch.float64),
        torch.full((1, 1, 1, 2), float(big), dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
    )
    assert 2 * big * big >= 2**63
    assert reference(case, inputs).item() == float(2 * big * big + 1)


def test_int_data_that_are_not_integers_are_refused() -> None:
    case = replace(UNIFORM, data="int")
    with pytest.raises(ValueError, match="not integers"):
        reference(case, make_inputs(UNIFORM))


def test_int_values_beyond_int64_are_exact() -> None:
    # 2**70 is an integer float64 holds exactly, and int64 cannot.
    case = Case(
        batch=None,
        in_channels=1,
        out_channels=1,
        groups=1,
        height=1,
        width=1,
        kernel=(1, 1),
        dtype="float64",
        data="int",
    )
    inputs = Inputs(
        torch.tensor([[[2.0**70]]], dtype=torch.float64), torch.tensor([[[[3.0]]]], dtype=torch.float64), None
    )
    assert reference(case, inputs).item() == 3 * 2.0**70


# -- gradients ---------------------------------------------------------------------------


def _torch_gradients(case: Case, inputs: Inputs) -> ExpectedGradients:
    return expect_gradients(case, inputs)


@pytest.mark.parametrize("case", [c for c in CASES if applies(c)], ids=str)
def test_the_independent_gradients_agree_with_torchs_within_the_bound_and_exactly_on_int_data(case: Case) -> None:
    inputs = make_inputs(case)
    theirs = _torch_gradients(case, inputs)
    mine = gradients(case, inputs, theirs.upstream)
    shapes = [case.input_shape, case.weight_shape, (case.out_channels,) if case.bias else None]
    assert [None if m is None else m.shape for m in mine] == shapes
    checked = cross_check_gradients(case, inputs, theirs.upstream, theirs.values)
    assert list(checked) == ["input", "weight", "bias"][: 3 if case.bias else 2]
    assert all(c.agree for c in checked.values()), [c.description for c in checked.values()]
    if case.data == "int":
        for ours, torchs, allowed in zip(mine, theirs.values, (c.allowed for c in checked.values()), strict=False):
            assert ours is not None and torchs is not None
            assert np.array_equal(ours, torchs.numpy())  # bit for bit: no rounding at all
            assert ours.size == 0 or allowed == 0


@settings(max_examples=30, deadline=None, database=None)
@given(cases())
def test_any_drawn_case_has_the_same_gradients(case: Case) -> None:
    if not applies(case):
        return
    inputs = make_inputs(case)
    theirs = _torch_gradients(case, inputs)
    checked = cross_check_gradients(case, inputs, theirs.upstream, theirs.values)
    assert all(c.agree for c in checked.values()), [c.description for c in checked.values()]


@pytest.mark.parametrize("name", ["input", "weight", "bias"])
@pytest.mark.parametrize(("times", "agree"), [(0.4, True), (3.0, False)])
def test_one_gradient_element_moved_beyond_twice_the_float64_bound_is_caught_and_within_it_is_not(
    name: str, times: float, agree: bool
) -> None:
    case = replace(UNIFORM, dtype="float64")
    inputs = make_inputs(case)
    theirs = _torch_gradients(case, inputs)
    which = WITH_RESPECT_TO.index(name)
    wanted, allowed_error = theirs.values[which], theirs.allowed_error[which]
    assert wanted is not None and allowed_error is not None
    index = tuple(int(i) for i in torch.nonzero(wanted)[-1])  # the last element: not where a search starts
    # Float64 gradients may each be off by the float64 bound: two correct ones, by twice that.
    allowed = 2 * allowed_error[index].item()
    mine = gradients(case, inputs, theirs.upstream)[which]
    assert mine is not None
    moved = wanted.clone()
    moved[index] = mine[index] + times * allowed
    planted = list(theirs.values)
    planted[which] = moved
    checked = cross_check_gradients(case, inputs, theirs.upstream, planted)
    assert checked[name].agree is agree, checked[name].description
    assert all(c.agree for other, c in checked.items() if other != name)
    if not agree:
        assert checked[name].index == index and checked[name].allowed == pytest.approx(allowed, rel=1e-6)
        assert checked[name].description.startswith(f"torch's float64 {name} gradient is wrong at {index}")


def test_int_gradients_off_by_one_in_one_element_are_caught() -> None:
    case = replace(UNIFORM, data="int")
    inputs = make_inputs(case)
    theirs = _torch_gradients(case, inputs)
    for which, name in enumerate(WITH_RESPECT_TO):
        planted = list(theirs.values)
        wrong = planted[which]
        assert wrong is not None
        planted[which] = wrong = wrong.clone()
        wrong.view(-1)[-1] += 1
        checked = cross_check_gradients(case, inputs, theirs.upstream, planted)[name]
        assert not checked.agree and checked.allowed == 0 and "exactly" in checked.description


def test_int_gradients_beyond_int64_are_exact() -> None:
    # 3_037_000_500**2 is just over 2**63: int64 would wrap, Python ints do not.
    big = 3_037_000_500
    case = Case(
        batch=1, in_channels=1, out_channels=1, groups=1, height=1, width=2, kernel=(1, 1), dtype="float64", data="int"
    )
    inputs = Inputs(
        torch.tensor([[[[float(big), 1.0]]]], dtype=torch.float64), torch.ones((1, 1, 1, 1), dtype=torch.float64), None
    )
    upstream = torch.tensor([[[[float(big), float(big)]]]], dtype=torch.float64)
    input_, weight, bias = gradients(case, inputs, upstream)
    assert bias is None and input_ is not None and weight is not None
    assert weight.item() == float(big * big + big) and big * big >= 2**63
    assert input_.tolist() == [[[[float(big), float(big)]]]]
