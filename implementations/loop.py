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
    padded = pad(x, p.paddings)

    # Offset (i, j) of every window, for all windows at once: one strided slice each.
    slices = [
        padded[:, :, i * p.dh :: p.sh, j * p.dw :: p.sw][:, :, : p.out_h, : p.out_w]
        for i in range(p.kh)
        for j in range(p.kw)
    ]
    columns = torch.stack(slices, dim=2)  # (N, C_in, kh*kw, out_h, out_w)

    columns = columns.reshape(p.n, groups, p.c_per_group, p.kh * p.kw, p.out_h, p.out_w)
    kernels = weight.reshape(groups, p.c_out // groups, p.c_per_group, p.kh * p.kw)
    out = torch.einsum("ngckhw,gock->ngohw", columns, kernels)
    return finish(out.reshape(p.n, p.c_out, p.out_h, p.out_w), bias, was_batched, input.dtype)
