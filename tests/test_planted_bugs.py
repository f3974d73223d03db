"""The harness proves it catches bugs: each planted bug is found, with the right kind, in a default run."""

from __future__ import annotations

import functools
from dataclasses import replace

import planted_bugs
import pytest
import torch

from harness.arguments import DEFAULT_MAX_EXAMPLES
from harness.campaign.engine import fuzz
from harness.model.capabilities import Capabilities
from harness.model.finding import Finding
from harness.model.registry import implementation_from

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
    "sums_channels_in_random_order": {"nondeterministic"},
    "adds_bias_through_data": {"gradient"},
    "returns_float32_for_half": {"dtype"},
    "flattens_with_view": {"exception"},
    "computes_broadcast_batch_once": {"shape"},
    "ignores_undeclared_bias": {"outside-declared"},
    "ignores_dilation": {"shape", "values"},
    "reinterprets_channels_last": {"values"},
    "reads_first_item": {"exception"},
    "prescales_input": {"values"},
}
# bug -> the dimension only it fails in: the feature attribution must name it
ONLY_IN = {
    "flattens_with_view": {"layout=transposed"},
    "computes_broadcast_batch_once": {"layout=expanded"},
    "returns_float32_for_half": {"dtype=float16", "dtype=bfloat16"},
    "float32_math": {"dtype=float64"},
    "swallows_nan": {"data=special"},
    "prescales_input": {"data=int"},
    "ignores_dilation": {"dilation>1"},
    "reinterprets_channels_last": {"layout=channels_last"},
    "reads_first_item": {"batch=0"},
    "raises_on_groups": {"groups>1"},
    "ignores_bias": {"bias"},
}


@functools.cache  # a test that looks again at a planted bug's findings does not fuzz it again
def _findings(name: str, seed: int) -> tuple[Finding, ...]:
    implementation = implementation_from(name, getattr(planted_bugs, name))
    return tuple(fuzz([implementation], DEFAULT_MAX_EXAMPLES, seed).findings)


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_default_run_catches_the_planted_bug_and_names_the_dimension_it_is_in(name: str, im2col_seed: int) -> None:
    findings = _findings(name, im2col_seed)
    kinds = {finding.verdict.kind for finding in findings}
    assert kinds & PLANTED[name], f"{name}: found {kinds or 'nothing'} (seed {im2col_seed})"
    if name in ONLY_IN:  # the feature attribution must name the one dimension it fails in
        caught = [f for f in findings if f.verdict.kind in PLANTED[name]]
        assert any(f.needs & ONLY_IN[name] for f in caught), [f.diagnosis for f in caught]


def test_the_same_wrapper_without_a_bug_is_not_flagged(im2col_seed: int) -> None:
    assert _findings("correct", im2col_seed) == ()


def test_gradients_are_checked_only_where_autograd_is_declared(im2col_seed: int) -> None:
    undeclared = replace(
        implementation_from("no_autograd", planted_bugs.adds_bias_through_data), capabilities=Capabilities()
    )
    assert fuzz([undeclared], DEFAULT_MAX_EXAMPLES // 4, im2col_seed).findings == []


def test_raising_outside_the_declared_capabilities_is_not_a_failure(im2col_seed: int) -> None:
    # raises_on_groups, declared without groups, now only raises where it said it would.
    declared = replace(
        implementation_from("no_groups", planted_bugs.raises_on_groups), capabilities=Capabilities(groups=False)
    )
    result = fuzz([declared], DEFAULT_MAX_EXAMPLES // 4, im2col_seed)
    assert result.findings == []
    assert result.tallies["no_groups"].statuses["unsupported"] > 0  # it was called outside, and raised


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_result_moved_to_the_cpu_is_caught_on_cuda(im2col_seed: int) -> None:
    kinds = {f.verdict.kind for f in _findings("returns_cpu", im2col_seed)}
    assert "device" in kinds


def test_a_padding_bug_is_diagnosed_as_a_border_problem(im2col_seed: int) -> None:
    # Padding with copies of the edge also copies an edge's inf into the border: a
    # "nonfinite" failure may come too, with the same diagnosis.
    (finding,) = [f for f in _findings("replicate_padding", im2col_seed) if f.verdict.kind == "values"]
    assert "overlaps padding (border)" in finding.verdict.message
    assert "padding>0" in finding.needs


def test_a_stride_bug_is_attributed_to_unequal_strides(im2col_seed: int) -> None:
    findings = _findings("swaps_stride", im2col_seed)
    assert findings and all("stride_h!=stride_w" in f.needs for f in findings)
    assert all("fails this way only with" in f.diagnosis and "stride_h!=stride_w" in f.diagnosis for f in findings)


def test_each_failure_is_shrunk_to_a_small_case(im2col_seed: int) -> None:
    findings = _findings("ignores_bias", im2col_seed)
    assert len(findings) == 1, [(f.verdict.signature, f.case.id) for f in findings]
    (finding,) = findings
    case = finding.case
    assert finding.shrunk and case.bias and finding.needs == {"bias"}
    # Nothing but the bias is needed, so everything else shrinks to its simplest value.
    assert (case.in_channels, case.out_channels, case.groups, case.kernel) == (1, 1, 1, (1, 1))
    assert case.height * case.width == 1 and case.layout == "contiguous" and case.dtype == "float32"
