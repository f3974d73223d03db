"""An extension library in miniature: loading it registers a CPU kernel for
``aten::convolution`` with a planted bug (the bias is dropped), as extension libraries
register their kernels when imported; `conv2d` then computes through it. Judged against a
reference that runs through the same kernel, it would pass, and a correct implementation
beside it would not.

Not registered; loaded by file (``tests/hostile_extension.py:conv2d``), which registers
the kernel in whatever process loads it: a test runs it in a process of its own.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


def _convolution_without_bias(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    return torch.ops.aten._convolution(
        input, weight, None, stride, padding, dilation, transposed, output_padding, groups, False, False, True, True
    )


LIBRARY = torch.library.Library("aten", "IMPL")
with warnings.catch_warnings():  # "overriding a previously registered kernel"
    warnings.simplefilter("ignore")
    LIBRARY.impl("convolution", _convolution_without_bias, "CPU")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if input.dtype in (torch.float16, torch.bfloat16):
        return conv2d(
            input.float(), weight.float(), None if bias is None else bias.float(), stride, padding, dilation, groups
        ).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(
        input.clone(memory_format=standard),
        weight.clone(memory_format=standard),
        bias,
        stride,
        padding,
        dilation,
        groups,
    )
