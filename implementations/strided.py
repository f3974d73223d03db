"""im2col as a zero-copy view: Tensor.as_strided over the padded input.

Every window is already in memory; only the addressing differs. In a contiguous
(N, C, H, W) tensor, moving one output position down means stepping ``stride`` rows and
moving one kernel row down means stepping ``dilation`` rows, so a view of shape
(N, C, out_h, out_w, kh, kw) with those element strides *is* the im2col matrix, with no
copy and no loop. The windows overlap, which is why this must stay a read-only view;
einsum then contracts channel and kernel axes with the weight, per group.
"""

from __future__ import annotations

import torch

from harness import declare
from implementations._common import IntOrPair, accumulating, batched, finish, pad, problem


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

    # The strides below assume plain NCHW order; channels_last or sliced inputs get copied.
    padded = pad(x, p.paddings).contiguous()
    step_n, step_c, step_h, step_w = padded.stride()
    windows = padded.as_strided(
        (p.n, p.c_in, p.out_h, p.out_w, p.kh, p.kw),
        (step_n, step_c, step_h * p.sh, step_w * p.sw, step_h * p.dh, step_w * p.dw),
        padded.storage_offset(),
    )

    windows = windows.reshape(p.n, groups, p.c_per_group, p.out_h, p.out_w, p.kh, p.kw)
    kernels = weight.reshape(groups, p.c_out // groups, p.c_per_group, p.kh, p.kw)
    out = torch.einsum("ngcyxij,gocij->ngoyx", windows, kernels)
    return finish(out.reshape(p.n, p.c_out, p.out_h, p.out_w), bias, was_batched, input.dtype)
