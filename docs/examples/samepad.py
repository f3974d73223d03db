"""A wrapper whose 'same' padding is worked out the scipy way (docs/plugging-in.md)."""

import torch.nn.functional as F


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """'same' padding the scipy way: an even kernel's odd pixel goes top/left; no dilation with 'same'."""
    input, weight = input.contiguous(), weight.contiguous()  # torch 2.13 crashes on some strided weights
    if padding == "same":
        if dilation != 1:
            raise NotImplementedError("'same' padding with dilation")
        kh, kw = weight.shape[-2:]
        input = F.pad(input, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2))
        padding = (0, 0)
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


conv2d.__conv2d_declaration__ = {
    "dtypes": ["float32", "float64"],
    "arg_forms": {"stride": "int", "dilation": "int", "padding": "pair"},
    "limits": [
        {"when": {"padding": "same"}, "require": {"dilation": 1}, "why": "'same' is worked out for an undilated kernel"}
    ],
    "expected": [
        {
            "when": {"padding": "same", "uneven_padding": True},
            "kind": ["values", "layout", "nonfinite"],
            "reason": "scipy.signal's 'same' puts the odd padding pixel first",
            "link": "https://docs.scipy.org/doc/scipy/reference/generated/scipy.signal.convolve2d.html",
        }
    ],
}
