"""JAX: ``jax.lax.conv_general_dilated``, the convolution every JAX conv layer calls.

JAX takes NCHW/OIHW directly (``dimension_numbers``), groups as ``feature_group_count``,
dilation as ``rhs_dilation`` and padding as explicit (low, high) pairs or its own ``"SAME"``
and ``"VALID"``, which are passed as such. float64 needs JAX's x64 mode, switched on as this
module is imported (without it JAX computes float64 input in float32). bfloat16 crosses over
as float32 and is cast to JAX's own bfloat16 inside JAX. It runs on JAX's CPU backend.
Install: ``pip install -e ".[jax]"``.

JAX is imported at the first call, not with this module: JAX starts threads as it is
imported, and a process forked after that (the harness's parallel workers are forked from
the process that loaded the registry) deadlocks in its first JAX call. A JAX that is not
installed is still an ImportError here, as the registry needs it to be.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

import torch

from harness import declare
from harness.adapters._convert import Pair, batched, from_numpy, to_numpy, unbatched

if importlib.util.find_spec("jax") is None:
    raise ModuleNotFoundError("No module named 'jax'", name="jax")


@functools.cache
def _jax() -> ModuleType:
    jax = importlib.import_module("jax")
    importlib.import_module("jax.numpy")  # jax.numpy, as an attribute of jax
    jax.config.update("jax_enable_x64", True)
    return jax


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
    jax = _jax()
    jnp = jax.numpy
    x, was_batched = batched(input)
    dtype = jnp.dtype(str(input.dtype).removeprefix("torch."))
    with jax.default_device(jax.devices("cpu")[0]):
        lhs, rhs = (jnp.asarray(to_numpy(t)).astype(dtype) for t in (x, weight))
        pads = padding.upper() if isinstance(padding, str) else [(padding[0],) * 2, (padding[1],) * 2]
        out = jax.lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides=stride,
            padding=pads,
            rhs_dilation=dilation,
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            feature_group_count=groups,
        )
        if bias is not None:
            out = out + jnp.asarray(to_numpy(bias)).astype(dtype)[None, :, None, None]
    return unbatched(from_numpy(out, input), was_batched)
