"""The tensors of a case: deterministic, independent of torch's RNG, in the layout asked for."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings

from harness.generate.strategies import cases
from harness.generate.tensors import INT_RANGE, SPECIAL_VALUES, make_inputs, upstream_gradient
from harness.model.case import Case

CASE = Case(
    batch=2,
    in_channels=3,
    out_channels=4,
    groups=1,
    height=5,
    width=6,
    kernel=(3, 3),
    bias=True,
    dtype="float64",
    seed=7,
)

_BITS = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The exact bit pattern, so that -0.0 vs 0.0 or NaN payloads would count as different."""
    return tensor.view(_BITS[tensor.dtype]).contiguous()


def _same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.stride() == b.stride() and torch.equal(_bits(a), _bits(b))


# -- determinism --------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(cases())
def test_the_same_case_gives_bit_identical_tensors_whatever_torchs_rng_state(case: Case) -> None:
    torch.manual_seed(1)
    first = make_inputs(case)
    torch.manual_seed(2)
    torch.rand(100)
    second = make_inputs(case)
    assert _same_bits(first.input, second.input)
    assert _same_bits(first.weight, second.weight)
    assert _same_bits(first.bias, second.bias)


@pytest.mark.parametrize("data", ["uniform", "int"])
def test_different_seeds_give_different_data(data: str) -> None:
    a = make_inputs(replace(CASE, data=data, seed=0))
    b = make_inputs(replace(CASE, data=data, seed=1))
    assert not torch.equal(a.input, b.input)
    assert not torch.equal(a.weight, b.weight)


def test_input_weight_and_bias_do_not_share_values() -> None:
    inputs = make_inputs(CASE)
    n = CASE.out_channels
    assert inputs.bias is not None
    assert not torch.equal(inputs.input.flatten()[:n], inputs.bias)
    assert not torch.equal(inputs.weight.flatten()[:n], inputs.bias)


# -- the documented hash, reimplemented with Python ints ----------------------------------

_MASK32 = 0xFFFFFFFF


def _reference_hash(index: int, key: int) -> int:
    x = (index ^ key) & _MASK32
    for multiplier in (0x2C1B3C6D, 0x297A2D39, 0x7FEB352D):
        x = ((x ^ (x >> 16)) * multiplier) & _MASK32
    return x ^ (x >> 15)


def _reference_values(seed: int, data: str, sizes: list[int]) -> list[float]:
    values = []
    for role, size in enumerate(sizes):  # input, weight, bias: each from its own key
        key = (seed * 0x9E3779B1 + role * 0x632BE5AB) & _MASK32
        for i in range(size):
            high, low = _reference_hash(2 * i, key), _reference_hash(2 * i + 1, key)
            if data == "int":
                values.append(float(high % (2 * INT_RANGE + 1) - INT_RANGE))
            else:  # 27 high bits and 26 low bits make a 53-bit mantissa: exact in a Python float.
                values.append(((high >> 5) * 2**26 + (low >> 6)) * 2.0**-52 - 1.0)
    return values


@pytest.mark.parametrize("seed", [0, 12345, 2**32 - 1])
@pytest.mark.parametrize("data", ["uniform", "int"])
def test_the_data_follow_the_documented_hash_exactly(seed: int, data: str) -> None:
    case = replace(CASE, seed=seed, data=data, dtype="float64")
    inputs = make_inputs(case)
    sizes = [math.prod(case.input_shape), math.prod(case.weight_shape), case.out_channels]
    expected = _reference_values(seed, data, sizes)
    assert inputs.bias is not None
    got = torch.cat([inputs.input.flatten(), inputs.weight.flatten(), inputs.bias]).tolist()
    assert got == expected  # Python floats compare exactly: every bit of every value


@pytest.mark.parametrize("data", ["uniform", "int", "special"])
def test_the_input_keeps_its_values_when_the_bias_or_the_weight_changes(data: str) -> None:
    case = replace(CASE, data=data)
    reference = make_inputs(case).input
    for other in (
        replace(case, bias=not case.bias),
        replace(case, out_channels=2 * case.out_channels),
        replace(case, kernel=(1, 1)),
    ):
        assert torch.equal(make_inputs(other).input.nan_to_num(), reference.nan_to_num()), other.id


def test_a_tensors_first_values_do_not_depend_on_its_size() -> None:
    small, large = replace(CASE, data="uniform", batch=1), replace(CASE, data="uniform", batch=3)
    first = make_inputs(small).input.flatten()
    assert torch.equal(make_inputs(large).input.flatten()[: first.numel()], first)


def test_special_data_put_a_special_value_in_one_input_element_in_eight_and_at_least_one() -> None:
    one = Case(
        batch=None,
        in_channels=1,
        out_channels=1,
        groups=1,
        height=1,
        width=1,
        kernel=(1, 1),
        data="special",
        dtype="float64",
    )
    found = {make_inputs(replace(one, seed=seed)).input.item() for seed in range(40)}
    assert all(value in SPECIAL_VALUES or math.isnan(value) for value in found)
    assert any(math.isnan(value) for value in found) and math.inf in found  # the seed picks which
    bigger = make_inputs(replace(one, height=8, width=8, in_channels=2, seed=3)).input.double()
    ordinary = bigger.isfinite() & (bigger.abs() <= 1) & (bigger != 0) & (bigger.abs() > 1e-20)
    assert int((~ordinary).sum()) == 128 // 8


def test_float32_data_are_the_float64_data_rounded() -> None:
    wide = make_inputs(replace(CASE, dtype="float64"))
    narrow = make_inputs(replace(CASE, dtype="float32"))
    assert narrow.input.dtype == torch.float32
    assert torch.equal(narrow.input, wide.input.to(torch.float32))
    assert torch.equal(narrow.weight, wide.weight.to(torch.float32))
    assert narrow.bias is not None and wide.bias is not None
    assert torch.equal(narrow.bias, wide.bias.to(torch.float32))


# -- the two kinds of data ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_int_data_are_small_integers_covering_the_whole_range(dtype: str) -> None:
    big = replace(CASE, batch=4, in_channels=6, height=8, width=8, data="int", dtype=dtype)
    values = torch.cat([t.flatten() for t in make_inputs(big).tensors()])
    assert torch.equal(values, values.round())
    assert values.abs().max().item() <= INT_RANGE
    assert set(values.tolist()) == {float(v) for v in range(-INT_RANGE, INT_RANGE + 1)}


def test_uniform_float64_data_lie_in_minus_one_to_one() -> None:
    big = replace(CASE, batch=4, in_channels=6, height=8, width=8, data="uniform")
    values = torch.cat([t.flatten() for t in make_inputs(big).tensors()])
    assert values.min().item() >= -1.0
    assert values.max().item() < 1.0
    assert values.min().item() < -0.9 and values.max().item() > 0.9  # the range is used


def test_uniform_float64_data_need_more_than_float32_precision() -> None:
    values = torch.cat([t.flatten() for t in make_inputs(replace(CASE, data="uniform")).tensors()])
    representable = values.to(torch.float32).to(torch.float64) == values
    # With 53 random mantissa bits, virtually no value fits float32's 24.
    assert representable.double().mean().item() < 0.05


# -- shapes, dtypes, layouts --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(cases())
def test_tensors_have_the_shapes_and_dtype_of_the_case(case: Case) -> None:
    inputs = make_inputs(case)
    dtype = getattr(torch, case.dtype)
    assert tuple(inputs.input.shape) == case.input_shape
    assert tuple(inputs.weight.shape) == case.weight_shape
    assert inputs.input.dtype == inputs.weight.dtype == dtype
    assert (inputs.bias is not None) == case.bias
    if inputs.bias is not None:
        assert tuple(inputs.bias.shape) == (case.out_channels,)
        assert inputs.bias.dtype == dtype
    assert len(inputs.tensors()) == 2 + case.bias


def test_channels_last_gives_channels_last_memory_with_the_same_values() -> None:
    plain = make_inputs(CASE)
    nhwc = make_inputs(replace(CASE, layout="channels_last"))
    for got, want in ((nhwc.input, plain.input), (nhwc.weight, plain.weight)):
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert not got.is_contiguous()
        assert torch.equal(got, want)
    assert nhwc.bias is not None and plain.bias is not None
    assert torch.equal(nhwc.bias, plain.bias)


def test_strided_gives_non_contiguous_views_with_the_same_values() -> None:
    plain = make_inputs(CASE)
    strided = make_inputs(replace(CASE, layout="strided"))
    for got, want in ((strided.input, plain.input), (strided.weight, plain.weight)):
        assert not got.is_contiguous()
        assert not got.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(got, want)
    assert strided.bias is not None and plain.bias is not None
    assert torch.equal(strided.bias, plain.bias)


def test_contiguous_gives_contiguous_tensors() -> None:
    inputs = make_inputs(CASE)
    assert inputs.input.is_contiguous() and inputs.weight.is_contiguous()


def test_transposed_gives_views_with_h_and_w_swapped_in_memory_and_the_same_values() -> None:
    plain = make_inputs(CASE)
    transposed = make_inputs(replace(CASE, layout="transposed"))
    for got, want in ((transposed.input, plain.input), (transposed.weight, plain.weight)):
        assert got.stride(-2) == 1 and got.stride(-1) == got.shape[-2]
        assert got.transpose(-1, -2).is_contiguous()
        assert torch.equal(got, want)


def test_expanded_broadcasts_the_first_slice_of_dim_0_with_stride_0() -> None:
    plain = make_inputs(CASE)
    expanded = make_inputs(replace(CASE, layout="expanded"))
    for got, want in ((expanded.input, plain.input), (expanded.weight, plain.weight)):
        assert got.stride(0) == 0 and got.shape == want.shape
        assert all(torch.equal(item, want[0]) for item in got)
        assert not torch.equal(got, want)  # the other slices' own values are gone
    assert expanded.bias is not None and plain.bias is not None
    assert torch.equal(expanded.bias, plain.bias)


def test_a_clone_of_an_expanded_tensor_keeps_its_stride_0() -> None:
    inputs = make_inputs(replace(CASE, layout="expanded"))
    copy = inputs.clone()
    assert copy.input.stride() == inputs.input.stride()
    assert torch.equal(copy.input, inputs.input)
    assert copy.input.data_ptr() != inputs.input.data_ptr()


def test_the_upstream_gradient_has_the_output_shape_and_is_reproducible() -> None:
    first, again = upstream_gradient(CASE), upstream_gradient(CASE)
    assert tuple(first.shape) == CASE.output_shape and first.dtype == torch.float64
    assert torch.equal(first, again)
    assert not torch.equal(upstream_gradient(replace(CASE, seed=8)), first)
    integers = upstream_gradient(replace(CASE, data="int"))
    assert torch.equal(integers, integers.round()) and integers.abs().max() <= INT_RANGE


@pytest.mark.parametrize("layout", ["channels_last", "strided", "transposed"])
def test_an_unbatched_input_keeps_its_values_in_every_layout(layout: str) -> None:
    case = replace(CASE, batch=None)
    plain, laid_out = make_inputs(case), make_inputs(replace(case, layout=layout))
    assert tuple(laid_out.input.shape) == case.input_shape
    assert torch.equal(laid_out.input, plain.input)
    assert torch.equal(laid_out.weight, plain.weight)


def test_a_clone_is_equal_but_does_not_share_memory() -> None:
    inputs = make_inputs(replace(CASE, layout="strided"))
    copy = inputs.clone()
    for original, cloned in zip(inputs.tensors(), copy.tensors()):
        assert torch.equal(original, cloned)
        assert original.data_ptr() != cloned.data_ptr()
    copy.input.add_(1)
    assert not torch.equal(copy.input, inputs.input)
