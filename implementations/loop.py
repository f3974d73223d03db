"""im2col by looping over kernel offsets, not output pixels.

The seed notebook visited every output pixel and multiplied its window by the kernel:
correct in spirit, but the loop runs out_h * out_w times and every bit of geometry
(stride, dilation, padding) has to be redone by hand for each pixel. Turning the loop
around fixes both: for one kernel offset (i, j), the input pixels it touches across all
output positions form a single strided slice of the padded input. So kh * kw slices,
stacked, are exactly the im2col columns, and the convolution is one grouped matmul. The
loop is now as long as the kernel is small, and stride and dilation are just slice steps
and starts.
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
    n, _, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    paddings = top, bottom, left, right = four_paddings(padding, (kh, kw), (dh, dw))
    out_h = output_size(h, kh, sh, dh, top, bottom)
    out_w = output_size(w, kw, sw, dw, left, right)
    padded = pad(x, paddings)

    # Offset (i, j) of every window, for all windows at once: one strided slice each.
    slices = [
        padded[:, :, i * dh :: sh, j * dw :: sw][:, :, :out_h, :out_w]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = torch.stack(slices, dim=2)  # (N, C_in, kh*kw, out_h, out_w)

    columns = columns.reshape(n, groups, c_per_group, kh * kw, out_h, out_w)
    kernels = weight.reshape(groups, c_out // groups, c_per_group, kh * kw)
    out = torch.einsum("ngckhw,gock->ngohw", columns, kernels).reshape(n, c_out, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out if was_batched else out.squeeze(0)
