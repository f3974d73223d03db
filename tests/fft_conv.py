"""A correct conv2d by the FFT, and the same with one index bug (not registered).

The oracle's transform bound is tested with these: `conv2d` computes every case F.conv2d
accepts through ``torch.fft.rfft2`` (each padded input channel, and each weight channel
dilated and zero-padded to the same size), multiplies the spectra, sums the group's input
channels in the frequency domain and takes one inverse transform per output channel. The
circular correlation of length H + top + bottom (and W + left + right) equals the linear
one on every output F.conv2d keeps, so no larger transform is needed; strided outputs are
every stride-th of them. float16 and bfloat16 are computed in float32 (torch.fft has no
half-precision CPU kernels) and rounded once.

`conv2d_off_by_one` crops the correlation one row late: everything moves up a row and the
last row reads the wrapped-around correlation, an O(M) error that the bound must still catch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.model.capabilities import declare


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _paddings(padding, kernel, dilation):
    """(left, right, top, bottom) for F.pad: 'same' puts the odd pixel last, as torch does."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        (th, tw) = (d * (k - 1) for d, k in zip(dilation, kernel))
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    ph, pw = _pair(padding)
    return (pw, pw, ph, ph)


def _fft_conv2d(input, weight, bias, stride, padding, dilation, groups, first_row=0):
    if input.dtype in (torch.float16, torch.bfloat16):
        x, w, b = (None if t is None else t.float() for t in (input, weight, bias))
        return _fft_conv2d(x, w, b, stride, padding, dilation, groups, first_row).to(input.dtype)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    out_channels, per_group, kh, kw = weight.shape
    padded = F.pad(x, _paddings(padding, (kh, kw), (dh, dw)))
    size = padded.shape[-2:]
    dilated = weight.new_zeros(out_channels, per_group, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    dilated[..., ::dh, ::dw] = weight
    out_h, out_w = size[0] - dilated.shape[-2] + 1, size[1] - dilated.shape[-1] + 1
    if not padded.numel():  # oneMKL refuses an empty batch
        out = padded.new_zeros(x.shape[0], out_channels, (out_h - 1) // sh + 1, (out_w - 1) // sw + 1)
        return out.squeeze(0) if unbatched else out
    spectrum = torch.fft.rfft2(padded, s=size).unflatten(1, (groups, per_group))
    kernel = torch.fft.rfft2(dilated, s=size).unflatten(0, (groups, out_channels // groups)).conj()
    product = torch.einsum("ngcij,gocij->ngoij", spectrum, kernel)
    correlation = torch.fft.irfft2(product, s=size).flatten(1, 2)
    out = correlation.roll(-first_row, -2)[..., :out_h:sh, :out_w:sw]
    if bias is not None:
        out = out + bias.reshape(-1, 1, 1)
    out = out.contiguous()
    return out.squeeze(0) if unbatched else out


@declare(algorithm="fft")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _fft_conv2d(input, weight, bias, stride, padding, dilation, groups)


@declare(algorithm="fft")
def conv2d_off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _fft_conv2d(input, weight, bias, stride, padding, dilation, groups, first_row=1)
