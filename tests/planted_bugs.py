"""Deliberately broken conv2d implementations, one real-world bug each (not registered).

Each wraps ``torch.nn.functional.conv2d`` and breaks exactly one thing, the way shipped
im2col code has broken it (see shared/DESIGN-NOTES.md), so a test can show the harness
catches that bug and only that one: `correct` is the same wrapper with nothing broken.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from harness.model.capabilities import declare


def _conv(input, weight, bias=None, *arguments):
    """F.conv2d on copies with standard strides, float16 and bfloat16 computed in float32:
    torch 2.13 segfaults on some channels_last-strided weights and on some grouped,
    strided, dilated float16 problems (on CPUs with AVX512-FP16), and puts NaN next to an
    inf in bfloat16 (all in the README), and these bugs are about something else."""
    standard = torch.contiguous_format
    if input.dtype in (torch.float16, torch.bfloat16):
        as_float = [None if t is None else t.float() for t in (input, weight, bias)]
        return _conv(*as_float, *arguments).to(input.dtype)
    return F.conv2d(input.clone(memory_format=standard), weight.clone(memory_format=standard), bias, *arguments)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def correct(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def drops_last_row(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Output height as if (H + 2p - k) were always divisible by the stride."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if isinstance(padding, str):
        return out
    (sh, _), (ph, _), (dh, _) = _pair(stride), _pair(padding), _pair(dilation)
    span = input.shape[-2] + 2 * ph - dh * (weight.shape[-2] - 1) - 1
    return out[..., :-1, :] if span % sh else out


def replicate_padding(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Pads by repeating the edge instead of with zeros: wrong only where windows overlap padding."""
    if isinstance(padding, str) or _pair(padding) == (0, 0):
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    ph, pw = _pair(padding)
    x = input if input.dim() == 4 else input.unsqueeze(0)
    out = _conv(F.pad(x, (pw, pw, ph, ph), mode="replicate"), weight, bias, stride, 0, dilation, groups)
    return out if input.dim() == 4 else out.squeeze(0)


def swaps_stride(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Reads stride as (W, H): right whenever the two strides are equal."""
    sh, sw = _pair(stride)
    return _conv(input, weight, bias, (sw, sh), padding, dilation, groups)


def float32_math(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Computes in float32 whatever the input dtype, then casts back."""
    out = _conv(
        input.float(), weight.float(), None if bias is None else bias.float(), stride, padding, dilation, groups
    )
    return out.to(input.dtype)


def pads_in_place(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Zeroes a corner of the 'padded copy', which F.pad returns uncopied when padding is 0."""
    if isinstance(padding, str):
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    ph, pw = _pair(padding)
    padded = F.pad(input, (pw, pw, ph, ph)) if (ph, pw) != (0, 0) else input
    out = _conv(padded.clone(), weight, bias, stride, 0, dilation, groups)
    if padded.numel():
        padded[..., 0, 0] = 0  # "scratch space", but it is the caller's tensor
    return out


def ignores_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, None, stride, padding, dilation, groups)


def mixes_batch(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Builds (C_out, N, H, W) and reshapes it to (N, C_out, H, W) instead of permuting."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if out.dim() == 3:
        return out
    return out.permute(1, 0, 2, 3).contiguous().reshape(out.shape)


def flips_kernel(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A textbook convolution, not the cross-correlation torch computes."""
    return _conv(input, weight.flip(-2, -1), bias, stride, padding, dilation, groups)


def one_wrong_element(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Off by 1e-3 in the last output element only."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups).clone()
    if out.numel():
        out.view(-1)[-1] += 1e-3
    return out


def returns_float32(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups).float()


def returns_numpy(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups).numpy()


def raises_on_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if groups > 1:
        raise NotImplementedError("groups")
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def same_padding_odd_pixel_first(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """'same' padding with the odd pixel of an even kernel on the top/left instead of bottom/right."""
    if padding != "same":
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    (dh, dw), (kh, kw) = _pair(dilation), weight.shape[-2:]
    th, tw = dh * (kh - 1), dw * (kw - 1)
    x = input if input.dim() == 4 else input.unsqueeze(0)
    x = F.pad(x, (tw - tw // 2, tw // 2, th - th // 2, th // 2))
    out = _conv(x, weight, bias, stride, 0, dilation, groups)
    return out if input.dim() == 4 else out.squeeze(0)


def swallows_nan(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Cleans its output of NaN and inf: a NaN in the input no longer shows."""
    return torch.nan_to_num(_conv(input, weight, bias, stride, padding, dilation, groups))


def creates_nan(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Adds 0 * (the input's sum): NaN everywhere once any input element is inf or NaN."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out + 0 * input.sum()


def sums_channels_in_random_order(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Adds up the per-channel partial sums and the bias in a different order on every
    call, as GPU atomics do: right to within rounding, but not the same bits twice."""
    per_group = weight.shape[1]
    parts = [
        _conv(input[..., c::per_group, :, :], weight[:, c : c + 1], None, stride, padding, dilation, groups)
        for c in range(per_group)
    ]
    if bias is not None:
        parts.append(bias.reshape(-1, 1, 1).expand_as(parts[0]))
    order = torch.randperm(len(parts)).tolist()
    return sum((parts[i] for i in order[1:]), parts[order[0]])


@declare(autograd=True)
def adds_bias_through_data(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Adds the bias through ``bias.data`` (pre-0.4 style): a right forward pass, and no
    gradient ever reaches the bias."""
    out = _conv(input, weight, None, stride, padding, dilation, groups)
    return out if bias is None else out + bias.data.reshape(-1, 1, 1)


def returns_float32_for_half(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Computes float16/bfloat16 in float32 for accuracy, and forgets to cast back."""
    if input.dtype in (torch.float16, torch.bfloat16):
        input, weight, bias = input.float(), weight.float(), None if bias is None else bias.float()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def flattens_with_view(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Flattens H and W with .view ("no copy"), which needs the two adjacent in memory:
    fine for contiguous, channels_last and sliced inputs, an error for a transposed one."""
    rows = input.view(*input.shape[:-2], -1)
    return _conv(rows.view(input.shape), weight, bias, stride, padding, dilation, groups)


def computes_broadcast_batch_once(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Sees a stride-0 batch (every item the same), computes one item, and forgets to
    broadcast the result back to the batch."""
    if input.dim() == 4 and input.stride(0) == 0:
        input = input[:1]
    return _conv(input, weight, bias, stride, padding, dilation, groups)


@declare(bias=False)
def ignores_undeclared_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Declares it has no bias support, then silently drops a bias instead of refusing it."""
    return _conv(input, weight, None, stride, padding, dilation, groups)


def returns_cpu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Hands back a CPU tensor whatever the input's device (a NumPy round trip, say)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups).cpu()


def ignores_dilation(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """An im2col that never heard of dilation: every window is dense."""
    return _conv(input, weight, bias, stride, padding, 1, groups)


def reinterprets_channels_last(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Reads a channels_last input's memory as if it were NCHW, as a kernel that takes
    data_ptr() and assumes the default layout does."""
    if input.dim() == 4 and not input.is_contiguous() and input.is_contiguous(memory_format=torch.channels_last):
        dense = [input.shape[1] * input.shape[2] * input.shape[3], input.shape[2] * input.shape[3], input.shape[3], 1]
        input = input.as_strided(input.shape, dense, input.storage_offset())
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def reads_first_item(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Takes the spatial size from the first batch item, which an empty batch lacks."""
    _ = (input[0] if input.dim() == 4 else input).shape[-2:]  # an empty batch has no input[0]
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def prescales_input(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Divides the input by 3 "against overflow" and multiplies the output back: off by
    rounding only, so only exact (integer) data show it."""
    out = _conv(input / 3, weight, None, stride, padding, dilation, groups) * 3
    return out if bias is None else out + bias.reshape(-1, 1, 1)


def reverses_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolves each group, then concatenates the groups' outputs in reverse order."""
    if groups == 1:
        return _conv(input, weight, bias, stride, padding, dilation, groups)
    inputs, weights = input.chunk(groups, dim=-3), weight.chunk(groups, dim=0)
    biases = [None] * groups if bias is None else bias.chunk(groups)
    parts = [_conv(x, w, b, stride, padding, dilation, 1) for x, w, b in zip(inputs, weights, biases)]
    return torch.cat(parts[::-1], dim=-3)


# -- two independent bugs in one implementation -----------------------------------------


def flips_kernel_and_ignores_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return flips_kernel(input, weight, None, stride, padding, dilation, groups)


def swaps_stride_and_swallows_nan(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return swallows_nan(input, weight, bias, _pair(stride)[::-1], padding, dilation, groups)


def wrong_on_one_thread(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Right with several threads, wrong with one, as torch 2.13.0's own bfloat16 conv2d is
    on a one-channel channels_last input (docs/torch.md): a bug that shows only under the
    harness's one-thread rule, so a repro must keep that rule to show it."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out * 2 if torch.get_num_threads() == 1 else out


def wrong_on_fake_torch(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Right, unless the environment variable PLANTED_FAKE_TORCH is set, as in the second
    "torch version" of the matrix's test (tests/test_matrix.py): there it ignores the bias,
    a bug that appears in one version and not in the other."""
    if os.environ.get("PLANTED_FAKE_TORCH"):
        return ignores_bias(input, weight, bias, stride, padding, dilation, groups)
    return correct(input, weight, bias, stride, padding, dilation, groups)


# -- bugs in the dimensions explored only where declared (weight layout, threads, size) --


def reads_weight_as_laid_out_like_input(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Reads a channels_last weight's memory as if it were laid out as a contiguous batched
    input is (a kernel that picks its path by the input's layout): right whenever the two
    share a layout, which a weight laid out as the input is always does."""

    def channels_last(tensor):
        return not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last)

    contiguous = input.is_contiguous() and not input.is_contiguous(memory_format=torch.channels_last)
    if input.dim() == 4 and contiguous and channels_last(weight):
        weight = weight.permute(0, 2, 3, 1).contiguous().view(weight.shape)  # its memory, read in order
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def wrong_on_several_threads(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Right on one thread, wrong on several (a race in a parallel loop): never seen under
    the harness's one-thread rule unless threads are explored."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out * 2 if torch.get_num_threads() > 1 else out


def wrong_from_16_channels(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Counts the last input channel of a 16-channel block twice (a blocked kernel's
    remainder loop off by one), so wrong only with 16 input channels per group or more:
    realistic sizes. (Twice, not never: an inf or NaN stays where it was.)"""
    if weight.shape[1] >= 16:
        weight = weight.clone()
        weight[:, 15] *= 2
    return _conv(input, weight, bias, stride, padding, dilation, groups)
