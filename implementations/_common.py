"""Argument handling every full-semantics implementation needs, written once.

``F.conv2d`` takes stride/padding/dilation as ints or pairs, padding also as
``'same'``/``'valid'``, and input with or without a batch dimension. These helpers turn all
of that into explicit pairs and four paddings so each implementation can show its own
im2col idea and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

Pair = tuple[int, int]
IntOrPair = int | tuple[int, int] | list[int]


def pair(value: IntOrPair) -> Pair:
    """``2`` -> ``(2, 2)``; ``(2, 3)`` stays."""
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def four_paddings(padding: IntOrPair | str, kernel: Pair, dilation: Pair) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), resolving 'same' as torch does: the odd pixel goes last."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        (kh, kw), (dh, dw) = kernel, dilation
        total_h, total_w = dh * (kh - 1), dw * (kw - 1)
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    ph, pw = pair(padding)  # type: ignore[arg-type]
    return (ph, ph, pw, pw)


def output_size(size: int, kernel: int, stride: int, dilation: int, pad_before: int, pad_after: int) -> int:
    """How many window positions fit along one axis."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def batched(input: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Give a (C, H, W) input a batch dimension; say whether it had one to begin with."""
    if input.dim() == 3:
        return input.unsqueeze(0), False
    return input, True


def pad(input: torch.Tensor, paddings: tuple[int, int, int, int]) -> torch.Tensor:
    """Zero-pad H and W of an (N, C, H, W) tensor; F.pad takes the last axis first."""
    top, bottom, left, right = paddings
    return F.pad(input, (left, right, top, bottom))


@dataclass(frozen=True)
class Problem:
    """The geometry of one call, resolved once: shapes, pairs, four paddings, output size."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    c_per_group: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    paddings: tuple[int, int, int, int]
    out_h: int
    out_w: int


def problem(
    x: torch.Tensor, weight: torch.Tensor, stride: IntOrPair, padding: IntOrPair | str, dilation: IntOrPair
) -> Problem:
    """Read the geometry off a batched input, the weight and the arguments."""
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    paddings = top, bottom, left, right = four_paddings(padding, (kh, kw), (dh, dw))
    return Problem(
        n,
        c_in,
        h,
        w,
        c_out,
        c_per_group,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        paddings,
        output_size(h, kh, sh, dh, top, bottom),
        output_size(w, kw, sw, dw, left, right),
    )


def accumulating(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bfloat16 operands as float32, as torch's own kernels sum them: an 8-bit significand
    loses most of a long sum (and torch 2.14.1's CPU bfloat16 matmul turns an inf into NaN,
    see the README). `finish` rounds the result back, once. Other dtypes are left as they are."""
    if x.dtype != torch.bfloat16:
        return x, weight
    return x.float(), weight.float()


def finish(out: torch.Tensor, bias: torch.Tensor | None, was_batched: bool, dtype: torch.dtype) -> torch.Tensor:
    """Add the bias per output channel; drop the batch dimension the input did not have;
    round to the input's ``dtype``."""
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return (out if was_batched else out.squeeze(0)).to(dtype)
