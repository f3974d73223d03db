"""PyTorch's own convolution down the paths a user can pick between, against the reference's.

``torch``: plain ``F.conv2d``, as a user calls it: whatever backend torch picks for each
dtype, layout and shape. Its known bugs on this project's machines are declared (each where
it happens, with its trigger as far as it is known: docs/torch.md, "A torch bug it found").

``torch_no_mkldnn``: ``F.conv2d`` with the oneDNN (mkldnn) backend switched off
(``torch.backends.mkldnn.flags(enabled=False)``), so that CPU float convolutions take
ATen's own kernels (the im2col "slow_conv2d" and "thnn" paths) instead of oneDNN's. The
reference, ``torch.nn.Conv2d``, runs with the defaults, so the two meet only where torch
agrees with itself across backends. Always available (torch is the harness's own
dependency), hence in every default campaign: one call each, cheap.

``torch.compile`` is not here (measured: docs/torch.md, "torch.compile"): even with
``dynamic=True`` it compiles again for each new set of arguments (2 to 3 s each here, 19 s
the first), and after 8 recompiles it runs the eager path without a word, so a campaign
would spend hours to test mostly what ``torch`` already tests.

``conv2d_no_mkldnn_explored`` is the same call declaring what else to explore (`EXPLORE`):
torch's own bugs are not where a hand-written im2col's are.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from harness import declare


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    """oneDNN off for the call, as it was after it. ``flags()`` also sets oneDNN's TF32
    switch (to what it was), which warns on a build without Intel GPU support: that one
    message is silenced, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


# Where torch's own conv2d bugs live (issue 18): weights laid out apart from the input,
# several threads, and sizes at which backends pick their blocked and vectorised kernels.
# The registered `conv2d` explores the first two: measured, they cost the main job about 13%
# (docs/torch.md); realistic sizes nearly halved its checks per second.
LAYOUTS_AND_THREADS: dict[str, Any] = {
    "weight_layouts": ["contiguous", "channels_last", "transposed"],
    "threads": True,
}
EXPLORE: dict[str, Any] = {**LAYOUTS_AND_THREADS, "realistic": 0.1}


# The torch releases each bug below was seen in, on this project's machine (an Intel Xeon with
# AVX512-FP16): every one its tox.ini knows. On another release a failure is a bug again.
SEEN_IN = ["2.5.1", "2.8.0", "2.10.0", "2.12.1", "2.13.0", "2.14.1"]
# oneDNN's float16 convolution kernel for AVX512-FP16 CPUs segfaults on some small grouped,
# strided, dilated problems (its whole trigger is not known; ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16,
# or oneDNN off, and the same calls return): called in a child process, and expected there.
FLOAT16_ON_AVX512_FP16 = {"dtype": "float16", "cpu_flags": {"contains": "avx512_fp16"}}
# Its bfloat16 kernel for AVX512-BF16 CPUs likewise, on a strided, dilated problem with padding
# unequal in H and W and a channels_last operand (torch 2.8.0 and later; 2.5.1 does not).
BFLOAT16_ON_AVX512_BF16 = {"dtype": "bfloat16", "cpu_flags": {"contains": "avx512_bf16"}}


def _seen(when: dict[str, Any], kind: str, reason: str, versions: list[str] = SEEN_IN) -> dict[str, Any]:
    """A torch bug declared as expected where ``when`` holds on the releases it was seen in,
    on some such cases only (``strict: false``: its whole trigger is not known)."""
    return {
        "when": {**when, "torch": {"in": versions}},
        "kind": kind,
        "reason": reason,
        "link": "docs/torch.md#a-torch-bug-it-found",
        "strict": False,
    }


# oneDNN's bfloat16 convolution backward (the gradient, which takes oneDNN whatever flags the
# forward ran under) segfaults with padding='same' around an even kernel, with dilation and several
# output channels (x 1x1x1x3, w 3x1x2x3, dilation 3: docs/torch.md); oneDNN off, or
# ONEDNN_MAX_CPU_ISA=AVX2, and it returns. Seen in every release of SEEN_IN.
BFLOAT16_SAME_BACKWARD = {"dtype": "bfloat16", "padding": "same", "cpu_flags": {"contains": "avx512_bf16"}}
BACKWARD_CRASH = _seen(
    BFLOAT16_SAME_BACKWARD,
    "crash",
    "torch's bfloat16 conv2d backward (oneDNN's) segfaults with padding='same' around an even kernel, with dilation",
)


@declare(autograd=True, isolate=[BFLOAT16_SAME_BACKWARD], expected=[BACKWARD_CRASH])
def conv2d_no_mkldnn(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    with _onednn_off():
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


# A float32 weight with channels_last strides (the input's too, or not), on a grouped,
# strided, dilated, padded problem with a bias, a 1x1 kernel and a tiny image (docs/torch.md):
# oneDNN's (torch_no_mkldnn returns). Seen in 2.13.0 and 2.14.1.
FLOAT32_WEIGHT_CHANNELS_LAST = {"dtype": "float32", "weight_layout": "channels_last"}
# The cases `conv2d` runs in a child process: where it is known to crash, and so may again.
ISOLATE = [FLOAT16_ON_AVX512_FP16, BFLOAT16_ON_AVX512_BF16, FLOAT32_WEIGHT_CHANNELS_LAST]


@declare(
    autograd=True,
    isolate=ISOLATE,
    **LAYOUTS_AND_THREADS,
    expected=[
        _seen(
            FLOAT16_ON_AVX512_FP16,
            "crash",
            "torch's float16 F.conv2d (oneDNN's AVX512-FP16 kernel) segfaults on some grouped, strided, dilated "
            "problems",
        ),
        _seen(
            BFLOAT16_ON_AVX512_BF16,
            "crash",
            "torch's bfloat16 F.conv2d (oneDNN's AVX512-BF16 kernel) segfaults on some strided, dilated problems "
            "with a channels_last operand",
            SEEN_IN[1:],
        ),
        _seen(
            {"dtype": "bfloat16", "data": "special", "cpu_flags": {"contains": "avx512bw"}},
            "nonfinite",
            "torch's bfloat16 F.conv2d (oneDNN's AVX-512 kernels) puts NaN next to an inf or a NaN, in outputs "
            "whose windows hold only finite values, in any layout (worst on one thread)",
        ),
        BACKWARD_CRASH,
        _seen(
            FLOAT32_WEIGHT_CHANNELS_LAST,
            "crash",
            "torch's float32 F.conv2d (oneDNN's) segfaults with a channels_last weight on some grouped, strided, "
            "dilated, padded problems with a bias",
            ["2.13.0", "2.14.1"],
        ),
    ],
)
def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Plain ``F.conv2d``, as a user calls it, on weights in their own layouts and on
    several threads too (`LAYOUTS_AND_THREADS`)."""
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _exploring(path: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``path`` declaring `EXPLORE` and none of its known bugs, to run by name (not
    registered: a default campaign spends nothing on these dimensions). It runs in a child
    process where `conv2d` is known to crash (`ISOLATE`), so that an in-process campaign
    survives what it finds there, and each kind of crash is quarantined apart."""

    @declare(autograd=True, isolate=ISOLATE, **EXPLORE)
    def explored(*args: Any, **kwargs: Any) -> torch.Tensor:
        return path(*args, **kwargs)

    return explored


# ``--impl harness.adapters.torch_paths:conv2d_no_mkldnn_explored``: oneDNN off, found nothing so far.
conv2d_no_mkldnn_explored = _exploring(conv2d_no_mkldnn)
# ``--impl harness.adapters.torch_paths:conv2d_explored --isolate``: plain F.conv2d, which
# segfaults on some of what these reach (docs/torch.md).
conv2d_explored = _exploring(conv2d)
