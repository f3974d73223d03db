"""ONNX Runtime: a one-node ONNX ``Conv`` model, built once per signature and cached.

The signature is everything the model's graph fixes: the input and weight shapes, the
dtype, stride, padding, dilation, groups and whether there is a bias. ONNX's Conv takes
NCHW/OIHW as torch does, padding as ``pads`` (top, left, bottom, right) or its own
``auto_pad`` ("SAME_UPPER" is torch's 'same': the odd pixel at the end; "VALID"), passed as
such. ONNX Runtime's CPU Conv has float32 and float16 kernels: no float64 ("Could not find
an implementation for Conv"), and the ONNX operator has no bfloat16 at all, so neither is
claimed. One intra-op thread per session, so that repeated calls give the same bits.
Install: ``pip install -e ".[onnxruntime]"``.
"""

from __future__ import annotations

import functools
from typing import Any

import onnxruntime
import torch
from onnx import TensorProto, helper

from harness import declare
from harness.adapters._convert import Pair, batched, from_numpy, to_numpy, unbatched

# float64 is passed on for ONNX Runtime to refuse itself; bfloat16 cannot cross over as NumPy.
_ELEMENT_TYPES = {
    torch.float32: TensorProto.FLOAT,
    torch.float16: TensorProto.FLOAT16,
    torch.float64: TensorProto.DOUBLE,
}
OPSET = 21


@functools.lru_cache(maxsize=256)
def session(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    dtype: torch.dtype,
    stride: Pair,
    padding: Pair | str,
    dilation: Pair,
    groups: int,
    bias: bool,
) -> onnxruntime.InferenceSession:
    """The session of a model with one Conv node of this signature."""
    if dtype not in _ELEMENT_TYPES:
        raise TypeError(f"ONNX's Conv has no {dtype} (it takes float16, float32 and float64)")
    element = _ELEMENT_TYPES[dtype]
    inputs = [
        helper.make_tensor_value_info("X", element, list(input_shape)),
        helper.make_tensor_value_info("W", element, list(weight_shape)),
    ]
    if bias:
        inputs.append(helper.make_tensor_value_info("B", element, [weight_shape[0]]))
    attributes: dict[str, Any] = {
        "strides": list(stride),
        "dilations": list(dilation),
        "group": groups,
        "kernel_shape": list(weight_shape[2:]),
    }
    if isinstance(padding, str):
        attributes["auto_pad"] = {"same": "SAME_UPPER", "valid": "VALID"}[padding]
    else:
        attributes["pads"] = [padding[0], padding[1], padding[0], padding[1]]
    node = helper.make_node("Conv", [i.name for i in inputs], ["Y"], **attributes)
    graph = helper.make_graph([node], "conv2d", inputs, [helper.make_tensor_value_info("Y", element, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # errors come back as exceptions; not also printed
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


# ONNX Runtime's CPU Conv refuses auto_pad SAME_UPPER/SAME_LOWER with a dilation (the ONNX
# operator allows it; explicit pads with a dilation work): a documented gap, declared, so
# that there it only has to raise, which it does.
SAME_WITH_DILATION = {
    "when": {"padding_mode": "same"},
    "require": {"dilation": 1},
    "why": "ONNX Runtime's CPU Conv: 'Dilation not supported for AutoPadType::SAME_UPPER' "
    "(https://github.com/microsoft/onnxruntime/issues/20582)",
}


@declare(arg_forms=("pair",), dtypes=("float32", "float16"), devices=("cpu",), limits=[SAME_WITH_DILATION])
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
    run = session(
        tuple(x.shape),
        tuple(weight.shape),
        input.dtype,
        tuple(stride),
        padding if isinstance(padding, str) else tuple(padding),
        tuple(dilation),
        groups,
        bias is not None,
    )
    feeds = {"X": to_numpy(x), "W": to_numpy(weight)}
    if bias is not None:
        feeds["B"] = to_numpy(bias)
    (out,) = run.run(None, feeds)
    return unbatched(from_numpy(out, input), was_batched)
