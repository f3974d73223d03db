"""Each disagreement with torch the README keeps, checked by calling the library directly.

Not a test module (pytest does not collect it) but a script: ``python tests/library_disagreements.py``.
No adapter is involved: each library's own conv is called on the case, its result compared
with float64 F.conv2d, and the library's version printed. A library not installed is said so.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F

from harness.generate.tensors import make_inputs
from harness.model.case import Case


def _have(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        print(f"{module}: not installed, not checked")
        return False
    return True


def jax_grouped_float64_inf_leaks_into_another_group() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    print(f"JAX {jax.__version__} (jaxlib {jax.lib.__version__}), x64 on, CPU:")
    # Two groups of one channel each: group 0 sees inf, group 1 sees 1.0; weights all 1.
    x = np.array([np.inf, 1.0]).reshape(1, 2, 1, 1)
    w = np.ones((2, 1, 1, 1))
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), groups=2).flatten().tolist()
    for dtype in ("float64", "float32"):
        got = jax.lax.conv_general_dilated(
            x.astype(dtype),
            w.astype(dtype),
            (1, 1),
            "VALID",
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            feature_group_count=2,
        )
        print(
            f"  {dtype}: conv_general_dilated gives {np.asarray(got).flatten().tolist()}, float64 F.conv2d gives {want}"
        )


def tensorflow_empty_batch_keeps_the_input_shape() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, CPU:")
    want = tuple(F.conv2d(torch.zeros(0, 3, 5, 5), torch.zeros(4, 3, 3, 3)).shape)
    for dtype in (tf.float32, tf.float64, tf.float16, tf.bfloat16):
        x, w = tf.zeros((0, 5, 5, 3), dtype), tf.zeros((3, 3, 3, 4), dtype)  # NHWC, HWIO
        got = tf.nn.conv2d(x, w, strides=1, padding="VALID").shape
        print(
            f"  {dtype.name}: tf.nn.conv2d on NHWC (0, 5, 5, 3) with a 3x3 filter, 3 -> 4 channels gives "
            f"{tuple(got)}; F.conv2d gives NCHW {want}, i.e. NHWC (0, 3, 3, 4)"
        )


def tensorflow_bfloat16_nan_in_an_all_finite_window() -> None:
    import tensorflow as tf

    case = Case.from_id("mb1ic1oc1g1ih1iw3kh1kw1sh1sw1ph0pw0dh1dw1-nobias-bfloat16-contiguous-special-cpu-seed0")
    inputs = make_inputs(case)
    x, w = inputs.input.float(), inputs.weight.float()
    want = F.conv2d(x.double(), w.double())
    print(f"TensorFlow {tf.__version__}, CPU, bfloat16, case {case.id}:")
    print(f"  input {x.flatten().tolist()}, weight {w.flatten().tolist()}")
    nhwc = tf.cast(tf.transpose(x.numpy(), (0, 2, 3, 1)), tf.bfloat16)
    hwio = tf.cast(tf.transpose(w.numpy(), (2, 3, 1, 0)), tf.bfloat16)
    got = tf.cast(tf.nn.conv2d(nhwc, hwio, strides=1, padding="VALID"), tf.float32).numpy().flatten().tolist()
    print(f"  tf.nn.conv2d gives {got}; float64 F.conv2d gives {want.flatten().tolist()}")


def onnxruntime_refuses_same_padding_with_dilation() -> None:
    import onnxruntime
    from onnx import TensorProto, helper

    print(f"ONNX Runtime {onnxruntime.__version__}, CPUExecutionProvider:")
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), padding="same", dilation=2)

    def run(element: int, dtype: str, **attributes: object) -> str:
        inputs = [helper.make_tensor_value_info(n, element, list(a.shape)) for n, a in (("X", x), ("W", w))]
        node = helper.make_node("Conv", ["X", "W"], ["Y"], dilations=[2, 2], **attributes)
        graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", element, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        try:
            session = onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            (y,) = session.run(None, {"X": x.astype(dtype), "W": w.astype(dtype)})
        except Exception as error:
            return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        worst = np.abs(y.astype(np.float64) - want.numpy()).max()
        return f"shape {y.shape}, max |error| vs float64 F.conv2d {worst:.1e}"

    print(f"  auto_pad=SAME_UPPER, dilations 2: {run(TensorProto.FLOAT, 'float32', auto_pad='SAME_UPPER')}")
    print(f"  pads=[2, 2, 2, 2], dilations 2:  {run(TensorProto.FLOAT, 'float32', pads=[2, 2, 2, 2])}")
    print(f"  float64, pads=[2, 2, 2, 2]:      {run(TensorProto.DOUBLE, 'float64', pads=[2, 2, 2, 2])}")


if __name__ == "__main__":
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if _have("jax"):
        jax_grouped_float64_inf_leaks_into_another_group()
    if _have("tensorflow"):
        tensorflow_empty_batch_keeps_the_input_shape()
        tensorflow_bfloat16_nan_in_an_all_finite_window()
    if _have("onnxruntime"):
        onnxruntime_refuses_same_padding_with_dilation()
