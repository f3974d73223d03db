"""A correct FFT convolution passes when it says it is one, is flagged when it claims direct
summation, and an index bug in it is still caught: the transform bound is no blanket."""

from __future__ import annotations

from dataclasses import replace

import fft_conv
import planted_bugs

from harness.arguments import DEFAULT_MAX_EXAMPLES
from harness.campaign.engine import fuzz, planned_cases
from harness.model.capabilities import Capabilities
from harness.model.registry import implementation_from

FFT = implementation_from("fft", fft_conv.conv2d)
DIRECT = implementation_from("correct", planted_bugs.correct)


def test_a_correct_fft_convolution_declaring_fft_passes_a_default_campaign_beside_a_direct_one(
    im2col_seed: int,
) -> None:
    # One group (the same cases for both), each judged by its own algorithm's bound.
    assert planned_cases([FFT, DIRECT], DEFAULT_MAX_EXAMPLES) == DEFAULT_MAX_EXAMPLES
    result = fuzz([FFT, DIRECT], DEFAULT_MAX_EXAMPLES, im2col_seed)
    assert result.findings == [], [(f.implementation, f.case.id, f.diagnosis) for f in result.findings]
    tally = result.tallies["fft"]
    assert tally.statuses["passed"] > 0
    assert all(tally.coverage[f"data={data}"] > 0 for data in ("uniform", "int", "special"))


def test_an_fft_convolution_cropping_one_row_late_is_caught(im2col_seed: int) -> None:
    off = implementation_from("fft_off_by_one", fft_conv.conv2d_off_by_one)
    findings = fuzz([off], DEFAULT_MAX_EXAMPLES, im2col_seed).findings
    assert {f.verdict.kind for f in findings} & {"values", "layout"}, [f.diagnosis for f in findings]


def test_declared_direct_the_correct_fft_convolutions_rounding_is_flagged_while_direct_summation_passes(
    im2col_seed: int,
) -> None:
    as_direct = replace(FFT, name="fft_as_direct", capabilities=Capabilities())
    result = fuzz([as_direct, DIRECT], DEFAULT_MAX_EXAMPLES, im2col_seed)
    flagged = [f for f in result.findings if f.implementation == "fft_as_direct"]
    assert flagged and {f.verdict.kind for f in flagged} <= {"values", "nonfinite"}, [
        (f.case.id, f.diagnosis) for f in flagged
    ]
    assert all(f.implementation == "fft_as_direct" for f in result.findings)  # none for direct summation
