"""im2col by gathering: compute where every window element lives, then index once.

A window's element (i, j) at output position (y, x) sits at row ``y*stride + i*dilation``
and column ``x*stride + j*dilation`` of the padded input. Those addresses depend only on
the shapes, so they can be built up front as two small index grids (broadcast
``torch.arange``s) and used to pull every window out of the input with one advanced-
indexing gather. The convolution is then a plain contraction of those columns with the
weight, one block per group. Gathering and einsum are ordinary differentiable torch ops,
so autograd comes for free: the backward of the gather scatters gradients back onto the
input positions each window read.
"""

from __future__ import annotations

import torch

from harness import declare
from implementations._common import IntOrPair, accumulating, batched, finish, pad, problem


def window_indices(out_size: int, kernel: int, stride: int, dilation: int, device: torch.device) -> torch.Tensor:
    """(out_size, kernel) grid: entry [o, k] is the padded-input index that output o's k-th tap reads."""
    starts = torch.arange(out_size, device=device) * stride
    offsets = torch.arange(kernel, device=device) * dilation
    return starts[:, None] + offsets[None, :]


@declare(autograd=True)
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    x, was_batched = batched(input)
    x, weight = accumulating(x, weight)
    p = problem(x, weight, stride, padding, dilation)

    rows = window_indices(p.out_h, p.kh, p.sh, p.dh, x.device)  # (out_h, kh)
    cols = window_indices(p.out_w, p.kw, p.sw, p.dw, x.device)  # (out_w, kw)
    # Broadcast to (out_h, kh, out_w, kw): every tap of every window, read in one gather.
    columns = pad(x, p.paddings)[:, :, rows[:, :, None, None], cols[None, None, :, :]]

    columns = columns.reshape(p.n, groups, p.c_per_group, p.out_h, p.kh, p.out_w, p.kw)
    kernels = weight.reshape(groups, p.c_out // groups, p.c_per_group, p.kh, p.kw)
    out = torch.einsum("ngcyixj,gocij->ngoyx", columns, kernels)
    return finish(out.reshape(p.n, p.c_out, p.out_h, p.out_w), bias, was_batched, input.dtype)
