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

from harness.capabilities import declare
from implementations._common import IntOrPair, batched, four_paddings, output_size, pad, pair


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
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    paddings = top, bottom, left, right = four_paddings(padding, (kh, kw), (dh, dw))
    out_h = output_size(h, kh, sh, dh, top, bottom)
    out_w = output_size(w, kw, sw, dw, left, right)

    # The strides below assume plain NCHW order; channels_last or sliced inputs get copied.
    padded = pad(x, paddings).contiguous()
    step_n, step_c, step_h, step_w = padded.stride()
    windows = padded.as_strided(
        (n, c_in, out_h, out_w, kh, kw),
        (step_n, step_c, step_h * sh, step_w * sw, step_h * dh, step_w * dw),
        padded.storage_offset(),
    )

    windows = windows.reshape(n, groups, c_per_group, out_h, out_w, kh, kw)
    kernels = weight.reshape(groups, c_out // groups, c_per_group, kh, kw)
    out = torch.einsum("ngcyxij,gocij->ngoyx", windows, kernels).reshape(n, c_out, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out if was_batched else out.squeeze(0)
