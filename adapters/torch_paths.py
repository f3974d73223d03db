"""PyTorch's own convolution down the paths a user can pick between, against the reference's.

``torch_no_mkldnn``: ``F.conv2d`` with the oneDNN (mkldnn) backend switched off
(``torch.backends.mkldnn.flags(enabled=False)``), so that CPU float convolutions take
ATen's own kernels (the im2col "slow_conv2d" and "thnn" paths) instead of oneDNN's. The
reference, ``torch.nn.Conv2d``, runs with the defaults, so the two meet only where torch
agrees with itself across backends. Always available (torch is the harness's own
dependency), hence in every default campaign: one call each, cheap.

``torch.compile`` is not here: it compiles once per input shape, and a campaign draws
thousands of distinct shapes (each compile takes seconds), so a default campaign could not
afford it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from harness.capabilities import declare


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    """oneDNN off for the call, as it was after it. ``flags()`` also sets oneDNN's TF32
    switch (to what it was), which warns on a build without Intel GPU support: that one
    message is silenced, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


@declare(autograd=True)
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
