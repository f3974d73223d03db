"""The case strategies: always valid, always inside the domain, and reaching all of it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

import implementations.original
from harness.generate.strategies import cases, steady_draws
from harness.generate.support import devices
from harness.model.capabilities import Capabilities, declaration_of, refusal
from harness.model.case import Case, pair

NOTEBOOK = declaration_of(implementations.original.conv2d).capabilities


def _assert_valid_and_claimed(case: Case, caps: Capabilities) -> None:
    assert case.problems() == [], case.id
    assert refusal(caps, case) is None, case.id
    assert min(case.output_hw) >= 1


@settings(max_examples=200, deadline=None)
@given(cases())
def test_every_default_case_is_a_valid_problem_in_the_full_domain(case: Case) -> None:
    _assert_valid_and_claimed(case, Capabilities())


@settings(max_examples=100, deadline=None)
@given(cases(NOTEBOOK))
def test_every_case_for_the_notebook_is_inside_what_it_declares(case: Case) -> None:
    _assert_valid_and_claimed(case, NOTEBOOK)
    assert case.batch is None and case.in_channels == case.out_channels == 1
    assert isinstance(case.stride, int) and isinstance(case.padding, int)


NARROW = [
    pytest.param(Capabilities(arg_forms=("pair",)), id="pairs-only"),
    pytest.param(Capabilities(arg_forms=("int",), padding_modes=("valid",)), id="ints-and-valid-only"),
    pytest.param(Capabilities(dilation=False, square_kernels_only=True, groups=False), id="plain"),
    pytest.param(
        Capabilities(unbatched=False, bias=False, dtypes=("float64",), layouts=("strided",)),
        id="batched-float64-strided",
    ),
    pytest.param(Capabilities(max_in_channels=6, max_out_channels=3), id="channel-limits-above-groups"),
]


@pytest.mark.parametrize("caps", NARROW)
def test_every_case_for_narrowed_capabilities_is_inside_them(caps: Capabilities) -> None:
    @settings(max_examples=40, deadline=None, database=None)
    @given(cases(caps))
    def check(case: Case) -> None:
        _assert_valid_and_claimed(case, caps)

    check()


@pytest.mark.parametrize("caps", [Capabilities(max_in_channels=2), Capabilities(max_out_channels=2)])
def test_channel_limits_below_the_group_count_are_respected(caps: Capabilities) -> None:
    @settings(max_examples=100, deadline=None, database=None, phases=[Phase.generate])
    @given(cases(caps))
    def check(case: Case) -> None:
        _assert_valid_and_claimed(case, caps)

    check()


# -- reach --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn() -> list[Case]:
    """A few hundred default cases, the same every run."""
    seen: list[Case] = []

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: Case) -> None:
        seen.append(case)

    collect()
    return seen


def _differs(value: object) -> bool:
    return not isinstance(value, str) and pair(value)[0] != pair(value)[1]  # type: ignore[arg-type]


REACHED: dict[str, Callable[[Case], bool]] = {
    "batch-0": lambda c: c.batch == 0,
    "batch-above-1": lambda c: c.batch is not None and c.batch > 1,
    "unbatched": lambda c: c.batch is None,
    "groups": lambda c: c.groups > 1,
    "depthwise": lambda c: c.groups > 1 and c.in_channels == c.groups,
    "channel-multiplier": lambda c: c.groups > 1 and c.out_channels > c.in_channels,
    "non-square-kernel": lambda c: c.kernel[0] != c.kernel[1],
    "stride-int": lambda c: isinstance(c.stride, int) and c.stride > 1,
    "stride-pair-differing": lambda c: _differs(c.stride),
    "dilation-int": lambda c: isinstance(c.dilation, int) and c.dilation > 1,
    "dilation-pair-differing": lambda c: _differs(c.dilation),
    "padding-int": lambda c: isinstance(c.padding, int) and c.padding > 0,
    "padding-pair-differing": lambda c: _differs(c.padding),
    "padding-same": lambda c: c.padding == "same",
    "padding-same-even-kernel": lambda c: c.padding == "same" and c.kernel[0] % 2 == 0,
    "padding-valid": lambda c: c.padding == "valid",
    "bias": lambda c: c.bias,
    "no-bias": lambda c: not c.bias,
    "uniform-data": lambda c: c.data == "uniform",
    "int-data": lambda c: c.data == "int",
    "special-data": lambda c: c.data == "special",
    "float64": lambda c: c.dtype == "float64",
    "float16": lambda c: c.dtype == "float16",
    "bfloat16": lambda c: c.dtype == "bfloat16",
    "channels-last": lambda c: c.layout == "channels_last",
    "strided": lambda c: c.layout == "strided",
    "transposed": lambda c: c.layout == "transposed",
    "expanded": lambda c: c.layout == "expanded",
}


@pytest.mark.parametrize("feature", sorted(REACHED))
def test_a_few_hundred_default_draws_reach(drawn: list[Case], feature: str) -> None:
    assert any(REACHED[feature](case) for case in drawn), feature


def test_the_default_draws_stay_on_devices_this_machine_has(drawn: list[Case]) -> None:
    assert {case.device for case in drawn} == set(devices())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cases_are_drawn_where_cuda_is_available(drawn: list[Case]) -> None:
    assert any(case.device == "cuda" for case in drawn)


def test_the_draws_are_not_all_alike(drawn: list[Case]) -> None:
    # Hypothesis repeats and mutates earlier examples on purpose; most draws still differ.
    assert len({case.id for case in drawn}) > 0.75 * len(drawn)


def _seeded_draws(examples: int = 300) -> list[str]:
    drawn: list[str] = []

    @hypothesis_seed(5)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate])
    @given(cases())
    def draw(case: Case) -> None:
        drawn.append(case.id)

    draw()
    return drawn


def test_a_seed_draws_the_same_cases_whatever_local_modules_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hypothesis draws some integers from the literals of the local modules loaded when it
    draws (a plugin file, what an earlier test imported): `steady_draws` leaves them out."""
    with steady_draws():
        before = _seeded_draws()
    (tmp_path / "full_of_constants.py").write_text(f"SEEDS = {[123_456_789 + 7_919 * i for i in range(200)]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "full_of_constants", raising=False)
    importlib.import_module("full_of_constants")
    with steady_draws():
        assert _seeded_draws() == before
    # Outside it, as Hypothesis draws for anyone else: the module's constants are drawn.
    seeds = {int(case_id.rsplit("seed", 1)[1]) for case_id in _seeded_draws()}
    assert seeds & {123_456_789 + 7_919 * i for i in range(200)}
