"""im2col with torch.nn.functional.unfold, then one matmul.

``F.unfold`` is torch's own im2col: it lays every (dilated, strided) window out as a
column, channel-major then kernel row then kernel column, which is the same order as a
flattened weight row. Convolution then is literally a matrix product. Its built-in
padding is symmetric only, so the four paddings (``'same'`` with an even kernel pads one
more pixel at the bottom/right) are applied first and unfold runs with padding 0. Groups
are a batch dimension of that matmul: each group's columns only meet its own kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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

    columns = F.unfold(pad(x, p.paddings), (p.kh, p.kw), dilation=(p.dh, p.dw), stride=(p.sh, p.sw))
    columns = columns.reshape(p.n, groups, p.c_per_group * p.kh * p.kw, p.out_h * p.out_w)
    kernels = weight.reshape(groups, p.c_out // groups, p.c_per_group * p.kh * p.kw)
    out = kernels @ columns  # (N, groups, C_out/groups, L)
    return finish(out.reshape(p.n, p.c_out, p.out_h, p.out_w), bias, was_batched, input.dtype)
