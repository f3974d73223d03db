"""A textbook convolution: the kernel flipped, where torch cross-correlates (docs/reports.md)."""

import torch.nn.functional as F


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight.flip(-2, -1), bias, stride, padding, dilation, groups)
