"""The notebook the project started from, run through the harness exactly as it ran there."""

from __future__ import annotations

import torch

from harness.campaign.check import check_case
from harness.generate.tensors import Inputs
from harness.model.case import Case
from harness.model.registry import discover


def test_the_notebook_example_is_diagnosed_as_right_values_in_the_wrong_layout() -> None:
    img = torch.arange(1, 26, dtype=torch.float32).reshape(5, 5)
    kernel = torch.tensor([[1, 0, -1]] * 3, dtype=torch.float32)
    # As the notebook called Conv2d: an unbatched (1, 5, 5) image and a (1, 1, 3, 3) weight.
    inputs = Inputs(img.unsqueeze(0), kernel.unsqueeze(0).unsqueeze(0), None)
    case = Case(batch=None, in_channels=1, out_channels=1, groups=1, height=5, width=5, kernel=(3, 3))
    original = discover(["original"]).implementations["original"]

    verdict = check_case(case, [original], inputs)["original"]

    assert verdict.kind == "layout"
    assert "shape (9, 1), expected (1, 3, 3)" in verdict.message
    assert "same values in the same order" in verdict.message
    assert "got.reshape(1, 3, 3) matches" in verdict.message


def test_the_notebooks_own_comparison_crashes_where_the_harness_reports() -> None:
    """What the notebook saw: torch.allclose raising instead of answering."""
    from implementations.original import conv2d_im2col

    img = torch.arange(1, 26, dtype=torch.float32).reshape(1, 5, 5)
    kernel = torch.tensor([[[[1, 0, -1]] * 3]], dtype=torch.float32)
    expected = torch.nn.functional.conv2d(img, kernel)
    got = conv2d_im2col(img.squeeze(0), kernel.squeeze(0), stride=1, padding=0)
    assert torch.equal(got.flatten(), expected.flatten())  # the nine values are right
    try:
        torch.allclose(expected, got, atol=1e-5)
    except RuntimeError as error:
        assert "must match the size" in str(error)
    else:
        raise AssertionError("torch.allclose accepted (1, 3, 3) against (9, 1)")
