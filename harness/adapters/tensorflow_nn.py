"""TensorFlow: ``tf.nn.conv2d``, the convolution Keras's Conv2D calls.

TensorFlow's CPU kernels take NHWC input and HWIO filters only, so the input is permuted
there and the result back. Groups are implied, as in TensorFlow, by a filter with fewer
input channels than the input. Padding goes as explicit ((top, bottom), (left, right)) pairs
or TensorFlow's own ``"SAME"`` and ``"VALID"``, passed as such. It runs on the CPU; float64,
float16 and bfloat16 are its own dtypes (bfloat16 crosses over as float32 and is cast inside
TensorFlow). Install: ``pip install -e ".[tensorflow]"``.

TensorFlow is imported at the first call, not with this module, as JAX is (``jax_lax``):
its import takes seconds and starts thread pools, and every command loads the registry,
whose parallel workers are forked from the process that loaded it. A TensorFlow that is not
installed is still an ImportError here, as the registry needs it to be.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType

import torch

from harness import declare
from harness.adapters._convert import Pair, batched, from_numpy, to_numpy, unbatched

if importlib.util.find_spec("tensorflow") is None:
    raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")


@functools.cache
def _tensorflow() -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its start-up banners, not its errors
    return importlib.import_module("tensorflow")


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
    tf = _tensorflow()
    x, was_batched = batched(input)
    dtype = tf.as_dtype(str(input.dtype).removeprefix("torch."))
    with tf.device("/CPU:0"):
        nhwc = tf.cast(tf.transpose(to_numpy(x), (0, 2, 3, 1)), dtype)
        hwio = tf.cast(tf.transpose(to_numpy(weight), (2, 3, 1, 0)), dtype)
        pads = padding.upper() if isinstance(padding, str) else [[0, 0], [padding[0]] * 2, [padding[1]] * 2, [0, 0]]
        out = tf.nn.conv2d(nhwc, hwio, strides=[1, *stride, 1], padding=pads, dilations=[1, *dilation, 1])
        if bias is not None:
            out = tf.nn.bias_add(out, tf.cast(to_numpy(bias), dtype))
        nchw = tf.transpose(out, (0, 3, 1, 2)).numpy()
    return unbatched(from_numpy(nchw, input), was_batched)
