"""im2col in NumPy with strided windows: let the array's strides do the window bookkeeping.

``sliding_window_view`` returns every window of the padded input as a read-only view, so
no index arithmetic is written and nothing is copied until the contraction needs it.
Stride and dilation are both "take every k-th": stride over window positions, dilation
over the taps inside a window, so both become plain slices of that view (the view's
window spans the dilated kernel). ``tensordot`` then materialises each group's columns and
hands the product to BLAS. This path leaves torch entirely, hence no autograd. NumPy keeps
the input's dtype throughout, so nothing is computed in lower precision; it has no bfloat16,
so that one is computed in float32 and rounded once, at the end.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from implementations._common import IntOrPair, batched, four_paddings, pair


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
    computed = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    x_np, w_np = (t.detach().cpu().to(computed).numpy() for t in (x, weight))
    out_channels, in_per_group, kh, kw = w_np.shape
    out_per_group = out_channels // groups
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    top, bottom, left, right = four_paddings(padding, (kh, kw), (dh, dw))

    padded = np.pad(x_np, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    # (N, C, out_h, out_w, kh, kw): every stride-th window, every dilation-th tap in it.
    windows = sliding_window_view(padded, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]

    with np.errstate(all="ignore"):  # NaN and inf propagate silently, as in F.conv2d
        per_group = [
            np.tensordot(
                windows[:, g * in_per_group : (g + 1) * in_per_group],
                w_np[g * out_per_group : (g + 1) * out_per_group],
                axes=([1, 4, 5], [1, 2, 3]),
            )  # (N, out_h, out_w, out_per_group)
            for g in range(groups)
        ]
    out = np.moveaxis(np.concatenate(per_group, axis=3), 3, 1)
    if bias is not None:
        out = out + bias.detach().cpu().to(computed).numpy()[:, None, None]
    result = torch.from_numpy(np.ascontiguousarray(out)).to(input.device, input.dtype)
    return result if was_batched else result.squeeze(0)
