"""Correct conv2d implementations that are slow now and then, as on a busy machine, and one
that hangs whenever there is a bias.

Each call is numbered, across processes (an isolated child's calls too), by a line it
appends to a file beside this module, ``<module>.calls``: its process id, and "slow" for
a call that sleeps far past any time limit (a time limit interrupts it; an isolated child
is killed). A test copies this file into its own temporary folder and loads the
implementations from there (``discover([f"{copy}:name"])``), so that each test has its
own count, and an isolated child, loading the file again by its path, counts on.

Not registered.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

FOREVER = 300.0  # seconds: far past any time limit, and still an end should none interrupt it


def _conv(input, weight, bias=None, *arguments):
    """F.conv2d as in tests/planted_bugs.py, around torch 2.13 bugs (standard strides,
    float16 and bfloat16 in float32). (A copy: this file is loaded by its path.)"""
    if input.dtype in (torch.float16, torch.bfloat16):
        return _conv(input.float(), weight.float(), None if bias is None else bias.float(), *arguments).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(input.clone(memory_format=standard), weight.clone(memory_format=standard), bias, *arguments)


def _called(slow) -> bool:
    """Log this call: its process, and "slow" where ``slow(its number)`` (from 1) says so;
    return that."""
    log = Path(__file__).with_suffix(".calls")
    number = len(log.read_text().splitlines()) + 1 if log.exists() else 1
    slowly = bool(slow(number))
    with log.open("a") as calls:
        calls.write(f"{os.getpid()}{' slow' if slowly else ''}\n")
    return slowly


def _slow_on(numbers, input, weight, bias, arguments):
    """Correct, but the calls numbered ``numbers`` sleep past their time limit first."""
    if _called(lambda number: number in numbers):
        time.sleep(FOREVER)
    return _conv(input, weight, bias, *arguments)


def slow_now_and_then(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Correct; its 1st, 4th and 7th calls are slow (three: as many as used to quarantine
    it). Each is made again at once (call 2, 5, 8), and then it is quick."""
    return _slow_on({1, 4, 7}, input, weight, bias, (stride, padding, dilation, groups))


def slow_three_times(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Correct; its first three calls are slow: the first call, made again here, then in a
    child process. Its case, checked again later, passes."""
    return _slow_on({1, 2, 3}, input, weight, bias, (stride, padding, dilation, groups))


def hangs_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Never returns when there is a bias, wherever and however often it is called."""
    if _called(lambda number: bias is not None):
        time.sleep(FOREVER)
    return _conv(input, weight, bias, stride, padding, dilation, groups)
