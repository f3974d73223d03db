"""Implementations right only inside a conditional limit, or with a known disagreement, each
declared (or not) the way a wrapper of a real library would (not registered).

Built on `planted_bugs`: the same wrapper of F.conv2d, broken in one place.
"""

from __future__ import annotations

from typing import Any

import planted_bugs
from planted_bugs import _pair, correct, drops_last_row, same_padding_odd_pixel_first

from harness.model.capabilities import declare

SAME_WITHOUT_DILATION: dict[str, Any] = {
    "when": {"padding": "same"},
    "require": {"dilation": 1},
    "why": "its 'same' pads for an undilated kernel",
}
STRIDE_DIVIDES: dict[str, Any] = {
    "when": {"padding_mode": "explicit"},
    "require": {"stride_divides": True},
    "why": "it sizes the output as if the stride divided H + 2p - k",
}
SCIPY_SAME: dict[str, Any] = {
    "when": {"padding": "same", "uneven_padding": True},
    "kind": ["values", "layout", "nonfinite"],
    "reason": "scipy.signal's 'same' puts the odd padding pixel of an even kernel first",
    "link": "https://docs.scipy.org/doc/scipy/reference/generated/scipy.signal.convolve2d.html",
}
FORMS: dict[str, Any] = {"stride": "int", "dilation": "int", "padding": "pair"}
SEEN_FORMS: set[tuple[str, str]] = set()  # (argument, type name) as `takes_declared_forms` got them


def same_ignores_dilation(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """'same' padding worked out for an undilated kernel: right unless 'same' meets dilation > 1."""
    if padding == "same":
        kh, kw = weight.shape[-2:]
        (th, tw) = (kh - 1, kw - 1)
        x = input if input.dim() == 4 else input.unsqueeze(0)
        x = planted_bugs.F.pad(x, (tw // 2, tw - tw // 2, th // 2, th - th // 2))
        out = planted_bugs._conv(x, weight, bias, stride, 0, dilation, groups)
        return out if input.dim() == 4 else out.squeeze(0)
    return correct(input, weight, bias, stride, padding, dilation, groups)


@declare(limits=[SAME_WITHOUT_DILATION])
def same_ignores_dilation_declared(*args: Any, **kwargs: Any) -> Any:
    return same_ignores_dilation(*args, **kwargs)


@declare(limits=[SAME_WITHOUT_DILATION])
def same_refuses_dilation_declared(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The same, refusing what it does not claim: it raises where it would be wrong."""
    if padding == "same" and _pair(dilation) != (1, 1):
        raise NotImplementedError("unimplemented: 'same' padding with dilation")
    return same_ignores_dilation(input, weight, bias, stride, padding, dilation, groups)


def drops_last_row_declared(*args: Any, **kwargs: Any) -> Any:
    return drops_last_row(*args, **kwargs)


# The plain-dict form, as a plugin that does not import the harness writes it.
drops_last_row_declared.__conv2d_declaration__ = {"limits": [STRIDE_DIVIDES]}  # type: ignore[attr-defined]


@declare(limits=[STRIDE_DIVIDES])
def raises_where_stride_does_not_divide(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Refuses what it does not claim, as a library's 'unimplemented' check does."""
    if not isinstance(padding, str):
        (sh, sw), (ph, pw), (dh, dw), (kh, kw) = _pair(stride), _pair(padding), _pair(dilation), weight.shape[-2:]
        if (input.shape[-2] + 2 * ph - dh * (kh - 1) - 1) % sh or (input.shape[-1] + 2 * pw - dw * (kw - 1) - 1) % sw:
            raise ValueError("unimplemented: the stride must divide the padded input less the kernel")
    return drops_last_row(input, weight, bias, stride, padding, dilation, groups)


@declare(expected=[SCIPY_SAME])
def scipy_same(*args: Any, **kwargs: Any) -> Any:
    return same_padding_odd_pixel_first(*args, **kwargs)


@declare(expected=[SCIPY_SAME])
def scipy_same_fixed(*args: Any, **kwargs: Any) -> Any:
    """The same declaration on an implementation that no longer disagrees."""
    return correct(*args, **kwargs)


@declare(expected=[SCIPY_SAME], padding_modes=("valid",))
def scipy_same_unreached(*args: Any, **kwargs: Any) -> Any:
    """A known disagreement whose `when` the declaration never reaches (only just outside it)."""
    return same_padding_odd_pixel_first(*args, **kwargs)


@declare(arg_forms=FORMS)
def takes_declared_forms(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Refuses to compute unless handed stride and dilation as ints, padding as a pair."""
    for name, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        SEEN_FORMS.add((name, type(value).__name__))
    if not (
        isinstance(stride, int)
        and isinstance(dilation, int)
        and (isinstance(padding, tuple) or padding in ("same", "valid"))
    ):
        raise TypeError(f"wrong forms: stride={stride!r}, padding={padding!r}, dilation={dilation!r}")
    return correct(input, weight, bias, stride, padding, dilation, groups)
