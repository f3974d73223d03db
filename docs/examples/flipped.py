"""A textbook convolution: the kernel flipped, where torch cross-correlates (docs/reports.md).

Half precision is computed in float32 and rounded back: torch's own float16 and bfloat16
kernels have bugs of their own on some CPUs (docs/torch.md), which this example would
otherwise inherit, and report, on those machines only."""

import torch
import torch.nn.functional as F


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    dtype = input.dtype
    if dtype in (torch.float16, torch.bfloat16):
        input, weight = input.float(), weight.float()
        bias = None if bias is None else bias.float()
    return F.conv2d(input, weight.flip(-2, -1), bias, stride, padding, dilation, groups).to(dtype)
