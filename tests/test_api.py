"""The one-call Python API a user puts in their own test suite."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import planted_bugs
import pytest
import torch.nn.functional as F

import harness
from harness import assert_conv2d_matches, running_test
from harness.store.corpus import load


def test_a_correct_callable_passes_and_reports_how_much_was_checked() -> None:
    result = assert_conv2d_matches(planted_bugs.correct, max_examples=60, seed=1)
    (tally,) = result.tallies.values()
    assert tally.examples >= 60 and not result.findings


def test_a_broken_callable_raises_with_the_minimal_case_and_the_repro(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as raised:
        assert_conv2d_matches(planted_bugs.ignores_bias, max_examples=100, seed=1, corpus=tmp_path)
    message = str(raised.value)
    assert "disagrees with torch.nn.Conv2d" in message
    assert "[values]" in message and "fails this way only with bias" in message
    assert "repro: python -m harness replay" in message and "seed=1" in message
    (entry,) = [e for _, e in load(tmp_path).entries]
    assert entry.case.bias and entry.needs == {"bias"}


def test_every_public_name_is_the_object_its_module_defines_and_is_listed() -> None:
    for name in harness.__all__:
        assert getattr(harness, name) is getattr(importlib.import_module(harness._HOMES[name]), name)
    assert set(harness.__all__) == set(harness._HOMES) and set(harness.__all__) <= set(dir(harness))
    assert isinstance(harness.__version__, str) and "__version__" in dir(harness)
    with pytest.raises(AttributeError, match="no attribute 'nothing_of_the_kind'"):
        harness.nothing_of_the_kind  # noqa: B018


def test_a_callable_that_cannot_be_called_as_conv2d_is_a_type_error_at_once() -> None:
    def conv2d(input, weight):
        return F.conv2d(input, weight)

    with pytest.raises(TypeError) as raised:
        assert_conv2d_matches(conv2d, max_examples=10, seed=1)
    assert str(raised.value) == (
        "conv2d(input, weight) has no parameter 'stride', 'padding', 'dilation' or 'groups' "
        "(implementations are called like torch.nn.functional.conv2d(input, weight, bias, "
        "stride=..., padding=..., dilation=..., groups=...))"
    )


def test_inside_a_pytest_run_the_campaign_seed_is_this_test_s_im2col_seed(im2col_seed: int) -> None:
    assert assert_conv2d_matches(planted_bugs.correct, max_examples=10).seed == im2col_seed


def _adds_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups) + 1


def _failures(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("FAILED") or "repro:" in line]


def test_outside_a_pytest_run_the_seed_is_drawn_and_the_failure_names_it_to_reproduce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(running_test, "current", None)
    with pytest.raises(AssertionError) as drawn:
        assert_conv2d_matches(_adds_one, max_examples=30)
    (seed,) = re.findall(r"^\(seed (\d+): drawn at random; pass seed=\1 to reproduce\)$", str(drawn.value), re.M)
    with pytest.raises(AssertionError) as again:
        assert_conv2d_matches(_adds_one, max_examples=30, seed=int(seed))
    assert _failures(str(again.value)) == _failures(str(drawn.value)) != []
