"""Planted bugs whose report is easy to get wrong (not registered): a message that embeds
the shapes it was raised on, and triggers that no plain feature names (an even kernel with
'same' padding, one output column with a stride, two features together).

Each is one cause, and must come out as one report naming its trigger (tests/test_triggers.py).
"""

from __future__ import annotations

import torch.nn.functional as F
from planted_bugs import _conv, _pair

from harness.model.capabilities import declare


def misaligned_matmul(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Multiplies the columns by the weight matrix the wrong way round, which only works when
    it is square (C_in * kh * kw == C_out): NumPy's message, with the shapes in it."""
    out_channels, per_group, kh, kw = weight.shape
    reduced = per_group * kh * kw
    if reduced != out_channels:
        raise ValueError(
            f"shapes ({reduced},{out_channels}) and ({out_channels},{reduced}) not aligned: "
            f"{out_channels} (dim 1) != {reduced} (dim 0)"
        )
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def same_padding_even_kernel_left(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """'same' padding split evenly, the odd pixel of an even kernel given to the top/left
    (torch gives it to the bottom/right): right for every odd kernel."""
    if padding != "same":
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    (dh, dw), (kh, kw) = _pair(dilation), weight.shape[-2:]
    th, tw = dh * (kh - 1), dw * (kw - 1)
    x = input if input.dim() == 4 else input.unsqueeze(0)
    x = F.pad(x, (tw - tw // 2, tw // 2, th - th // 2, th // 2))
    out = _conv(x, weight, bias, stride, 0, dilation, groups)
    return out if input.dim() == 4 else out.squeeze(0)


def one_column_fast_path(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A fast path for an output one column wide: a 1-D convolution down the rows at stride
    1, then every stride-th row kept, counted from the wrong end of the first stride."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if out.shape[-1] != 1 or isinstance(padding, str):
        return out
    sh, sw = _pair(stride)
    return _conv(input, weight, bias, (1, sw), padding, dilation, groups)[..., sh - 1 :: sh, :]


def drops_bias_when_grouped(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The grouped path forgets the bias: wrong only with both a bias and groups."""
    return _conv(input, weight, None if groups > 1 else bias, stride, padding, dilation, groups)


def stride_past_the_kernel(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Gathers each window's rows from the wrong start when the stride skips rows (a row
    stride larger than the kernel's reach): one row down, wrapping round."""
    (sh, _), (dh, _), kh = _pair(stride), _pair(dilation), weight.shape[-2]
    if sh <= dh * (kh - 1) + 1:
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    return _conv(input.roll(-1, -2), weight, bias, stride, padding, dilation, groups)


@declare(max_in_channels=1)
def doubles_one_channel(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Declares one input channel, and gets it wrong; right with more (outside what it declares)."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out * 2 if input.shape[-3] == 1 else out


@declare(max_in_channels=1)
def doubles_one_channel_refuses_more(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The same bug, and it refuses more than one input channel, as it may outside its declaration."""
    if input.shape[-3] > 1:
        raise NotImplementedError("one input channel only")
    return _conv(input, weight, bias, stride, padding, dilation, groups) * 2
