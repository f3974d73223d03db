"""Implementations whose declaration is malformed in the ways a plugin written without the
harness gets it wrong (a plain dict, read from JSON or typed by hand), and ones whose
names and messages are hostile to the reports that show them (not registered).

Each declared one is right except where its declaration, read loosely, would hide that:
`off_by_one_known_buggy_as_a_string` is wrong everywhere, and a "false" taken as true
would make it a canary whose failures pass the run. Tests load them by file
(``--impl tests/hostile_declared.py:NAME``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F


def _correct(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def off_by_one_known_buggy_as_a_string(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _correct(input, weight, bias, stride, padding, dilation, groups) + 1


def groups_as_a_string(*args, **kwargs):
    return _correct(*args, **kwargs)


def groups_as_a_number(*args, **kwargs):
    return _correct(*args, **kwargs)


def negative_max_in_channels(*args, **kwargs):
    return _correct(*args, **kwargs)


def fractional_max_out_channels(*args, **kwargs):
    return _correct(*args, **kwargs)


def max_in_channels_as_a_string(*args, **kwargs):
    return _correct(*args, **kwargs)


def dtypes_as_a_number(*args, **kwargs):
    return _correct(*args, **kwargs)


def limits_as_a_mapping(*args, **kwargs):
    return _correct(*args, **kwargs)


# What each declares, as a plugin that does not import the harness writes it.
DECLARED: dict[Callable[..., object], tuple[dict[str, object], str]] = {
    off_by_one_known_buggy_as_a_string: ({"known_buggy": "false"}, "known_buggy"),
    groups_as_a_string: ({"groups": "false"}, "groups"),
    groups_as_a_number: ({"groups": 1}, "groups"),
    negative_max_in_channels: ({"max_in_channels": -1}, "max_in_channels"),
    fractional_max_out_channels: ({"max_out_channels": 2.5}, "max_out_channels"),
    max_in_channels_as_a_string: ({"max_in_channels": "4"}, "max_in_channels"),
    dtypes_as_a_number: ({"dtypes": 32}, "dtypes"),
    limits_as_a_mapping: ({"limits": {"require": {"dilation": 1}}}, "limits"),
}
for _function, (_declaration, _) in DECLARED.items():
    _function.__conv2d_declaration__ = _declaration  # type: ignore[attr-defined]


def raises_a_long_message(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises with bias, a message of 3,000 characters and a second line that ends it."""
    if bias is not None:
        raise ValueError("x" * 3000 + "\nsecond line: the end")
    return _correct(input, weight, bias, stride, padding, dilation, groups)


def raises_a_flood(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises with bias, a message of 100,000 characters."""
    if bias is not None:
        raise ValueError("y" * 100_000)
    return _correct(input, weight, bias, stride, padding, dilation, groups)


def raises_a_hostile_message(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises with bias, a message a Markdown file or a terminal would act on."""
    if bias is not None:
        raise ValueError("\x1b[2J\x1b]0;owned\x07 <script>alert(1)</script> | a | b |\n| c | `code` *em*")
    return _correct(input, weight, bias, stride, padding, dilation, groups)
