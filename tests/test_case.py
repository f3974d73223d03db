"""The case model: its id, its derived shapes, and its plain-data form."""

from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

from harness.generate.strategies import cases
from harness.model.case import OPTIONAL, Case, CaseError, CaseIdError, Limits, pair

BASE = Case(
    batch=2,
    in_channels=4,
    out_channels=8,
    groups=2,
    height=7,
    width=5,
    kernel=(3, 2),
    stride=1,
    padding=1,
    dilation=1,
    bias=True,
    dtype="float32",
    layout="contiguous",
    data="uniform",
    device="cpu",
    seed=12,
)
GOOD_ID = BASE.id


def _with_part(index: int, part: str) -> str:
    parts = GOOD_ID.split("-")
    parts[index] = part
    return "-".join(parts)


def _replaced(name: str, value: Any) -> Case:
    """BASE with the field a test is parametrized over set to value."""
    changes: dict[str, Any] = {name: value}
    return replace(BASE, **changes)


# -- the id -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(cases())
def test_an_id_parses_back_to_the_same_case(case: Case) -> None:
    parsed = Case.from_id(case.id)
    assert parsed == case
    assert parsed.id == case.id


@pytest.mark.parametrize("name, letter", [("stride", "s"), ("padding", "p"), ("dilation", "d")])
def test_an_int_and_an_equal_pair_get_different_ids_and_keep_their_form(name: str, letter: str) -> None:
    as_int = _replaced(name, 2)
    as_pair = _replaced(name, (2, 2))
    assert f"{letter}2" in as_int.id.split("-")[0]
    assert f"{letter}h2{letter}w2" in as_pair.id.split("-")[0]
    assert as_int.id != as_pair.id
    assert getattr(Case.from_id(as_int.id), name) == 2
    assert getattr(Case.from_id(as_pair.id), name) == (2, 2)


def test_a_pair_with_different_values_keeps_its_order_through_the_id() -> None:
    case = replace(BASE, stride=(1, 2), padding=(0, 1), dilation=(2, 1))
    parsed = Case.from_id(case.id)
    assert (parsed.stride, parsed.padding, parsed.dilation) == ((1, 2), (0, 1), (2, 1))


@pytest.mark.parametrize("mode", ["same", "valid"])
def test_a_padding_mode_is_spelled_in_the_id_and_parses_back(mode: str) -> None:
    case = replace(BASE, padding=mode)
    assert f"p{mode}" in case.id
    assert Case.from_id(case.id).padding == mode


def test_an_unbatched_case_is_named_mbnone_and_parses_back_unbatched() -> None:
    case = replace(BASE, batch=None)
    assert case.id.startswith("mbnone")
    parsed = Case.from_id(case.id)
    assert parsed.batch is None
    assert parsed.input_shape == (case.in_channels, case.height, case.width)


def test_a_batch_of_zero_is_not_confused_with_unbatched() -> None:
    parsed = Case.from_id(replace(BASE, batch=0).id)
    assert parsed.batch == 0
    assert parsed.input_shape[0] == 0


def test_surrounding_whitespace_does_not_stop_an_id_from_parsing() -> None:
    assert Case.from_id(f"  {GOOD_ID}\n") == BASE


@pytest.mark.parametrize(
    "text, named",
    [
        pytest.param(GOOD_ID.rsplit("-", 1)[0], "found 6", id="too-few-parts"),
        pytest.param(GOOD_ID + "-extra", "found 8", id="too-many-parts"),
        pytest.param(_with_part(0, "mb2ic4oc8g2ih7iw5kh3s1p1d1"), "mb2ic4oc8g2ih7iw5kh3s1p1d1", id="shape-missing-kw"),
        pytest.param(
            _with_part(0, "mb2ic4oc8g2ih7iw5kh3kw2s1p1"), "mb2ic4oc8g2ih7iw5kh3kw2s1p1", id="shape-missing-dilation"
        ),
        pytest.param(_with_part(0, "mb2ic4oc8g2ih7iw5kh3kw2s1pfulld1"), "pfull", id="shape-bad-padding-mode"),
        pytest.param(_with_part(1, "withbias"), "withbias", id="bias"),
        pytest.param(_with_part(6, "seedx"), "seedx", id="seed-not-digits"),
        pytest.param(_with_part(6, "seed"), "'seed'", id="seed-without-digits"),
        pytest.param(_with_part(6, "12"), "'12'", id="seed-without-prefix"),
        pytest.param(_with_part(2, "float8"), "dtype", id="dtype"),
        pytest.param(_with_part(3, "rowmajor"), "layout", id="layout"),
        pytest.param(_with_part(4, "normal"), "data", id="data-kind"),
        pytest.param(_with_part(5, "tpu"), "device", id="device"),
        pytest.param(replace(BASE, in_channels=5).id, "multiples of groups", id="channels-not-divisible-by-groups"),
        pytest.param(replace(BASE, out_channels=3).id, "multiples of groups", id="out-channels-not-divisible"),
        pytest.param(replace(BASE, height=1, padding=0).id, "larger than the padded input", id="kernel-too-large"),
        pytest.param(replace(BASE, padding="same", stride=2).id, "stride 1", id="same-with-stride"),
        pytest.param(replace(BASE, in_channels=0, groups=1).id, "in_channels must be >= 1", id="no-channels"),
        pytest.param(replace(BASE, stride=0).id, "stride must be >= 1", id="zero-stride"),
    ],
)
def test_a_malformed_id_is_rejected_with_a_message_naming_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(CaseIdError) as raised:
        Case.from_id(text)
    assert named in str(raised.value)


def test_a_seed_of_non_ascii_digits_is_rejected_as_a_case_id_error() -> None:
    with pytest.raises(CaseIdError):
        Case.from_id(_with_part(6, "seed²"))


def test_a_case_id_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Case.from_id("nonsense")


@pytest.mark.parametrize("part", ["mb", "ic", "iw", "sh", "seed"])
def test_a_number_of_thousands_of_digits_is_a_case_id_error_naming_it_in_one_short_line(part: str) -> None:
    digits = "9" * 5000  # past what int() will convert
    text = {
        "mb": _with_part(0, f"mb{digits}ic4oc8g2ih7iw5kh3kw2s1p1d1"),
        "ic": _with_part(0, f"mb2ic{digits}oc8g2ih7iw5kh3kw2s1p1d1"),
        "iw": _with_part(0, f"mb2ic4oc8g2ih7iw{digits}kh3kw2s1p1d1"),
        "sh": _with_part(0, f"mb2ic4oc8g2ih7iw5kh3kw2sh{digits}sw1p1d1"),
        "seed": _with_part(6, f"seed{digits}"),
    }[part]

    with pytest.raises(CaseIdError) as raised:
        Case.from_id(text)

    message = str(raised.value)
    assert f"{part} has 5,000 digits" in message
    assert "\n" not in message and len(message) < 500


@pytest.mark.parametrize(
    "text",
    [
        "x" * 100_000,
        _with_part(0, "mb2" + "ic4" * 30_000),
        _with_part(1, "b" * 100_000),
        _with_part(6, "seed" + "x" * 100_000),
        GOOD_ID.replace("-cpu-", "-" + "c" * 100_000 + "-"),
    ],
    ids=["no-parts", "shape", "bias", "seed", "device"],
)
def test_an_error_about_a_long_id_quotes_only_its_start(text: str) -> None:
    with pytest.raises(CaseIdError) as raised:
        Case.from_id(text)
    assert len(str(raised.value)) < 800 and "more characters" in str(raised.value)


@pytest.mark.parametrize("name", ["stride", "padding", "dilation", "kernel", "batch"])
def test_a_value_beyond_torchs_int64_is_out_of_range(name: str) -> None:
    value = (2**63, 1) if name == "kernel" else 2**63
    assert f"{name} must be at most 2**63 - 1" in "; ".join(_replaced(name, value).problems())
    assert not [p for p in replace(BASE, stride=2**63 - 1).problems() if "2**63" in p]


def test_an_id_with_a_stride_beyond_int64_is_refused_not_passed_to_torch() -> None:
    with pytest.raises(CaseIdError, match="stride must be at most"):
        Case.from_id(replace(BASE, stride=2**63).id)  # 19 digits, one past int64


# -- derived shapes -----------------------------------------------------------------------


def _conv_call(case: Case, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, w, None, case.stride, case.padding, case.dilation, case.groups)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@settings(max_examples=150, deadline=None)
@given(cases())
def test_output_shape_agrees_with_torch_conv2d(case: Case) -> None:
    x = torch.zeros(case.input_shape)
    w = torch.zeros(case.weight_shape)
    out = _conv_call(case, x, w)
    assert tuple(out.shape) == case.output_shape
    assert case.reduction_length == w[0].numel()


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize(
    "kernel, dilation",
    [
        ((2, 2), 1),
        ((2, 4), 1),
        ((4, 3), 1),
        ((3, 2), (1, 3)),
        ((2, 2), 2),
        ((1, 4), (2, 1)),
    ],
)
def test_same_padding_puts_the_extra_pixel_last_as_torch_does(kernel: tuple[int, int], dilation) -> None:
    case = Case(
        batch=1,
        in_channels=2,
        out_channels=3,
        groups=1,
        height=6,
        width=7,
        kernel=kernel,
        padding="same",
        dilation=dilation,
    )
    top, bottom, left, right = case.paddings
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    assert (top + bottom, left + right) == (dh * (kernel[0] - 1), dw * (kernel[1] - 1))
    assert bottom - top in (0, 1) and right - left in (0, 1)

    generator = torch.Generator().manual_seed(0)  # integer data: both sides are exact
    x = torch.randint(-4, 5, case.input_shape, generator=generator).double()
    w = torch.randint(-4, 5, case.weight_shape, generator=generator).double()
    same = F.conv2d(x, w, padding="same", dilation=dilation)
    explicit = F.conv2d(F.pad(x, (left, right, top, bottom)), w, dilation=dilation)
    assert torch.equal(same, explicit)
    assert tuple(same.shape) == case.output_shape == (1, 3, 6, 7)
    if (top, left) != (bottom, right):  # the mirror image really is a different convolution
        mirrored = F.conv2d(F.pad(x, (right, left, bottom, top)), w, dilation=dilation)
        assert not torch.equal(same, mirrored)


def test_valid_padding_pads_nothing_and_an_int_pads_all_four_sides() -> None:
    assert replace(BASE, padding="valid").paddings == (0, 0, 0, 0)
    assert replace(BASE, padding=2).paddings == (2, 2, 2, 2)
    assert replace(BASE, padding=(1, 3)).paddings == (1, 1, 3, 3)


# -- size and limits ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@settings(max_examples=100, deadline=None)
@given(cases())
def test_elements_and_macs_count_what_torch_allocates_and_computes(case: Case) -> None:
    one = case if case.batch else replace(case, batch=1)  # an empty batch counts as one
    x, w = torch.zeros(one.input_shape), torch.zeros(one.weight_shape)
    out = _conv_call(one, x, w)
    # What an implementation that pads the input and spreads the kernel out allocates.
    top, bottom, left, right = one.paddings
    (dh, dw), (kh, kw) = pair(one.dilation), one.kernel
    padded = F.pad(x, (left, right, top, bottom))
    spread = w.new_zeros(*w.shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    spread[..., ::dh, ::dw] = w
    assert F.conv2d(padded, spread, None, one.stride, 0, 1, one.groups).shape == out.shape
    assert case.elements == padded.numel() + spread.numel() + out.numel()
    assert case.macs == out.numel() * w[0].numel()


def test_an_empty_batch_counts_as_one_so_no_dimension_escapes_the_limit() -> None:
    wide = replace(BASE, batch=0, height=10**12)
    assert wide.elements == replace(wide, batch=1).elements > Limits().elements
    with pytest.raises(CaseError):
        Limits().check(wide)


def test_a_case_over_a_limit_is_refused_naming_the_case_the_limit_and_the_flag() -> None:
    exactly = Limits(elements=BASE.elements, macs=BASE.macs)
    exactly.check(BASE)  # at the limit is within it

    with pytest.raises(CaseError) as elements:
        Limits(elements=BASE.elements - 1).check(BASE)
    with pytest.raises(CaseError) as macs:
        Limits(macs=BASE.macs - 1).check(BASE)

    assert str(elements.value) == (
        f"case {GOOD_ID!r} is too large: {BASE.elements:,} elements (padded input + "
        f"dilated weight + output), over the limit of {BASE.elements - 1:,}; raise the "
        "limit with --max-elements N"
    )
    assert "multiply-adds" in str(macs.value) and "--max-macs N" in str(macs.value)


@pytest.mark.timing
def test_a_huge_case_is_refused_in_well_under_a_second_without_allocating() -> None:
    huge = replace(BASE, batch=10**9, height=10**9, width=10**9, in_channels=10**9, groups=1)
    started = time.perf_counter()
    with pytest.raises(CaseError) as raised:
        Limits().check(huge)
    assert time.perf_counter() - started < 1.0  # microseconds here: arithmetic, nothing allocated
    assert len(str(raised.value)) < 400


# -- plain data ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(cases())
def test_a_case_survives_a_json_round_trip_through_its_dict(case: Case) -> None:
    restored = Case.from_dict(json.loads(json.dumps(case.to_dict())))
    assert restored == case
    assert restored.id == case.id


@pytest.mark.parametrize("name", [field.name for field in fields(Case) if field.name not in OPTIONAL])
def test_a_dict_missing_any_field_is_an_error_naming_it_never_a_default(name: str) -> None:
    data = BASE.to_dict()
    del data[name]
    with pytest.raises(CaseError, match=f"missing field\\(s\\) {name}$"):
        Case.from_dict(data)


def test_a_dict_with_an_unknown_field_or_a_value_out_of_range_is_an_error_naming_it() -> None:
    with pytest.raises(CaseError, match="unknown field\\(s\\) 'colour'"):
        Case.from_dict({**BASE.to_dict(), "colour": "red"})
    with pytest.raises(CaseError, match="out of range: seed has the wrong type"):
        Case.from_dict({**BASE.to_dict(), "seed": "12"})
