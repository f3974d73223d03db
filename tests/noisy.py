"""Conv2d implementations that talk while they work, as real libraries do: a Python warning,
lines on sys.stderr and sys.stdout, a line written straight to file descriptor 2 (the way
ONNX Runtime's C++ logger writes), and one printed by C's printf (buffered by C's stdio),
on every call.

Correct (`talks`) or broken only with a bias (`talks_off_by_one_with_bias`, whose warning
then says so, so that a test can tell the failing call's warning from the others'). The
stderr line carries a terminal escape sequence, which must never reach a terminal as is.

Not registered. Tests load them by file (``discover([f"{__file__}:name"])``) so that an
isolated child process can load them again from their source.
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
import warnings

import torch
import torch.nn.functional as F

WARNING = "invalid value encountered in conv2d"
WITH_BIAS = "a bias, added off by one"
STDERR = "noisy: \x1b[31mred\x1b[0m on stderr from Python"
FD_2 = "noisy: written to file descriptor 2"
STDOUT = "noisy: printed to stdout from Python"
PRINTF = "noisy: printf from C"
LAST_WORDS = "noisy: about to abort"

_libc = ctypes.CDLL(None)


def _conv(input, weight, bias=None, *arguments):
    """F.conv2d as in tests/planted_bugs.py, around torch 2.13 bugs (standard strides,
    float16 and bfloat16 in float32). (A copy: isolated children load this file by its
    path, where tests/ is not importable.)"""
    if input.dtype in (torch.float16, torch.bfloat16):
        return _conv(input.float(), weight.float(), None if bias is None else bias.float(), *arguments).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(input.clone(memory_format=standard), weight.clone(memory_format=standard), bias, *arguments)


def _talk(warning: str) -> None:
    warnings.warn(warning, RuntimeWarning, stacklevel=2)
    print(STDERR, file=sys.stderr)
    print(STDOUT)
    os.write(2, f"{FD_2}\n".encode())
    _libc.printf(f"{PRINTF}\n".encode())


def talks(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    _talk(WARNING)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def talks_off_by_one_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    _talk(WITH_BIAS if bias is not None else WARNING)
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out + 1 if bias is not None else out


def floods(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Ten thousand warnings, each different, and 8 MB on each stream, in every call: what is
    kept must stay small."""
    for i in range(10_000):
        warnings.warn(f"warning number {i}", UserWarning, stacklevel=1)
    chunk = "x" * 2**20
    for _ in range(8):
        sys.stderr.write(chunk)
        sys.stdout.write(chunk)
        os.write(2, chunk.encode())
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def says_then_aborts_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A C library's last words before a failed assert: isolated only."""
    if bias is not None:
        os.write(2, f"{LAST_WORDS}\n".encode())
        os.abort()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def replaces_stderr_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Swaps sys.stderr for a stream of its own and leaves it there: changed process state."""
    if bias is not None:
        sys.stderr = io.StringIO()
    return _conv(input, weight, bias, stride, padding, dilation, groups)
