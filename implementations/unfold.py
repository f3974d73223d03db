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

    columns = F.unfold(pad(x, paddings), (kh, kw), dilation=(dh, dw), stride=(sh, sw))
    columns = columns.reshape(n, groups, c_per_group * kh * kw, out_h * out_w)
    kernels = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)
    out = (kernels @ columns).reshape(n, c_out, out_h, out_w)  # (N, groups, C_out/groups, L)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out if was_batched else out.squeeze(0)
