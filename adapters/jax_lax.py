"""JAX: ``jax.lax.conv_general_dilated``, the convolution every JAX conv layer calls.

JAX takes NCHW/OIHW directly (``dimension_numbers``), groups as ``feature_group_count``,
dilation as ``rhs_dilation`` and padding as explicit (low, high) pairs or its own ``"SAME"``
and ``"VALID"``, which are passed as such. float64 needs JAX's x64 mode, switched on as this
module is imported (without it JAX computes float64 input in float32). bfloat16 crosses over
as float32 and is cast to JAX's own bfloat16 inside JAX. It runs on JAX's CPU backend.
Install: ``pip install -e ".[jax]"``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import torch

from adapters._convert import Pair, batched, from_numpy, to_numpy, unbatched
from harness.capabilities import declare

jax.config.update("jax_enable_x64", True)
_CPU = jax.devices("cpu")[0]


@declare(arg_forms=("pair",), devices=("cpu",))
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = (1, 1),
    padding: Pair | str = (0, 0),
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> torch.Tensor:
    x, was_batched = batched(input)
    dtype = jnp.dtype(str(input.dtype).removeprefix("torch."))
    with jax.default_device(_CPU):
        lhs, rhs = (jnp.asarray(to_numpy(t)).astype(dtype) for t in (x, weight))
        pads = padding.upper() if isinstance(padding, str) else [(padding[0],) * 2, (padding[1],) * 2]
        out = jax.lax.conv_general_dilated(lhs, rhs, window_strides=stride, padding=pads, rhs_dilation=dilation,
                                           dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups)
        if bias is not None:
            out = out + jnp.asarray(to_numpy(bias)).astype(dtype)[None, :, None, None]
    return unbatched(from_numpy(out, input), was_batched)
