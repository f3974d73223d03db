"""MLX: ``mlx.core.conv2d``, Apple's array library, on its CPU backend (Linux and macOS).

MLX takes NHWC input and OHWI weights (channels last), so both are permuted there and the
result back; groups, stride and dilation are its own arguments, and padding is one
symmetric (height, width) pair: it has no 'same' or 'valid', so neither is claimed. Its CPU
convolution has no float64 ("[Convolution::eval] got unsupported data type"), so that is not
claimed either; bfloat16 crosses over as float32, cast to MLX's bfloat16 inside MLX and back
to float32 inside MLX (exact both ways). Install: ``pip install -e ".[mlx]"``.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import torch

from harness import declare
from harness.adapters._convert import Pair, batched, from_numpy, to_numpy, unbatched


@declare(arg_forms=("pair",), padding_modes=(), dtypes=("float32", "float16", "bfloat16"), devices=("cpu",))
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = (1, 1),
    padding: Pair = (0, 0),
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> torch.Tensor:
    x, was_batched = batched(input)
    dtype = getattr(mx, str(input.dtype).removeprefix("torch."))
    nhwc = mx.array(to_numpy(x).transpose(0, 2, 3, 1)).astype(dtype)
    ohwi = mx.array(to_numpy(weight).transpose(0, 2, 3, 1)).astype(dtype)
    out = mx.conv2d(nhwc, ohwi, stride=stride, padding=padding, dilation=dilation, groups=groups, stream=mx.cpu)
    if bias is not None:
        out = out + mx.array(to_numpy(bias)).astype(dtype)
    nchw = out.transpose(0, 3, 1, 2)
    if nchw.dtype == mx.bfloat16:
        return unbatched(from_numpy(np.array(nchw.astype(mx.float32)), input).to(torch.bfloat16), was_batched)
    return unbatched(from_numpy(np.array(nchw), input), was_batched)
