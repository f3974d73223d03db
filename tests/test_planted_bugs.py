"""The harness proves it catches bugs: each planted bug is found, with the right kind, in a default run."""

from __future__ import annotations

import pytest

import planted_bugs
from harness.campaign import fuzz
from harness.cli import DEFAULT_MAX_EXAMPLES
from harness.registry import implementation_from

# bug -> the failure kinds it may show as (the first check that sees it wins)
PLANTED = {
    "drops_last_row": {"shape"},
    "replicate_padding": {"values"},
    "swaps_stride": {"shape", "values"},
    "float32_math": {"values"},
    "pads_in_place": {"mutated-input"},
    "ignores_bias": {"values"},
    "mixes_batch": {"layout"},
    "flips_kernel": {"values"},
    "one_wrong_element": {"values"},
    "returns_float32": {"dtype"},
    "returns_numpy": {"not-a-tensor"},
    "raises_on_groups": {"exception"},
    "same_padding_odd_pixel_first": {"values"},
    "swallows_nan": {"nonfinite"},
    "creates_nan": {"nonfinite"},
}


def _findings(name: str, seed: int):
    implementation = implementation_from(name, getattr(planted_bugs, name))
    return fuzz([implementation], DEFAULT_MAX_EXAMPLES, seed).findings


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_default_run_catches_the_planted_bug(name: str, im2col_seed: int) -> None:
    findings = _findings(name, im2col_seed)
    kinds = {finding.verdict.kind for finding in findings}
    assert kinds & PLANTED[name], f"{name}: found {kinds or 'nothing'} (seed {im2col_seed})"


def test_the_same_wrapper_without_a_bug_is_not_flagged(im2col_seed: int) -> None:
    assert _findings("correct", im2col_seed) == []


def test_a_padding_bug_is_diagnosed_as_a_border_problem(im2col_seed: int) -> None:
    # Padding with copies of the edge also copies an edge's inf into the border: a
    # "nonfinite" failure may come too, with the same diagnosis.
    (finding,) = [f for f in _findings("replicate_padding", im2col_seed) if f.verdict.kind == "values"]
    assert "overlaps padding (border)" in finding.verdict.message
    assert "padding>0" in finding.needs


def test_a_stride_bug_is_attributed_to_unequal_strides(im2col_seed: int) -> None:
    findings = _findings("swaps_stride", im2col_seed)
    assert findings and all("stride_h!=stride_w" in f.needs for f in findings)
    assert all("fails only with" in f.diagnosis and "stride_h!=stride_w" in f.diagnosis for f in findings)


def test_each_failure_is_shrunk_to_a_small_case(im2col_seed: int) -> None:
    (finding,) = _findings("ignores_bias", im2col_seed)
    case = finding.case
    assert finding.shrunk and case.bias and finding.needs == {"bias"}
    # Nothing but the bias is needed, so everything else shrinks to its simplest value.
    assert (case.in_channels, case.out_channels, case.groups, case.kernel) == (1, 1, 1, (1, 1))
    assert case.height * case.width == 1 and case.layout == "contiguous" and case.dtype == "float32"
