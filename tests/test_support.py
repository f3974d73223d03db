"""What runs here is probed: dtypes F.conv2d computes, devices present; the campaign draws only those."""

from __future__ import annotations

import pytest
import torch

from harness.campaign.check import check_case
from harness.generate.support import computes, devices, full_domain, runnable, unavailable
from harness.model.capabilities import Capabilities
from harness.model.case import Case
from harness.model.registry import implementation_from
from harness.model.verdict import SKIPPED


def test_float32_and_float64_on_the_cpu_always_run() -> None:
    assert "cpu" in devices()
    assert computes("float32", "cpu") and computes("float64", "cpu")
    assert unavailable("float32", "cpu") is None


def test_cuda_is_a_device_exactly_when_torch_sees_one() -> None:
    assert ("cuda" in devices()) == torch.cuda.is_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_cuda_cases_are_skipped_saying_why() -> None:
    assert unavailable("float32", "cuda") == "no cuda device here"
    assert not computes("float32", "cuda")
    case = Case.from_id("mb1ic1oc1g1ih3iw3kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cuda-seed0")
    verdict = check_case(case, [implementation_from("conv", torch.nn.functional.conv2d)])["conv"]
    assert verdict.status == SKIPPED and "no cuda device here" in verdict.message


def test_the_full_domain_is_everything_declarable_that_runs_here() -> None:
    domain = full_domain()
    assert domain.devices == devices()
    assert set(domain.dtypes) == {d for d in Capabilities().dtypes if computes(d, "cpu")}
    assert domain.layouts == Capabilities().layouts


def test_runnable_narrows_a_domain_and_gives_none_when_nothing_runs() -> None:
    narrowed = runnable(Capabilities(dtypes=("float64",)))
    assert narrowed is not None and narrowed.dtypes == ("float64",) and narrowed.devices == devices()
    if not torch.cuda.is_available():
        assert runnable(Capabilities(devices=("cuda",))) is None
