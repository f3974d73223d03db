"""Throw-away conv2d implementations that try to end the harness's run, or hang it, from
where the harness reads what they gave back rather than from the call itself.

Each is the plain `F.conv2d` (correct) except when a bias is given, where it raises an
exception, or returns a tensor subclass, that misbehaves when the harness looks at it
(``str()``, ``.shape``), or leaves the process with status 0 (directly, or from a thread
of its own). A run that ends silently with status 0 after one of these has said nothing
true. The last ones stop the campaign early, or change the state of the process they
run in that no check after a call puts back (a test suite's, under
`assert_conv2d_matches`). Not registered: tests load them by file
(``--impl tests/hostile_exit.py:NAME``).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import hypothesis
import numpy
import torch
import torch.nn.functional as F


def _conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv2d on standard strides, float16 and bfloat16 in float32 (around torch 2.13 bugs,
    as tests/misbehaving.py does; a copy: files loaded by path cannot import each other)."""
    if input.dtype in (torch.float16, torch.bfloat16):
        return _conv(
            input.float(), weight.float(), None if bias is None else bias.float(), stride, padding, dilation, groups
        ).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(
        input.clone(memory_format=standard),
        weight.clone(memory_format=standard),
        bias,
        stride,
        padding,
        dilation,
        groups,
    )


# -- leave with status 0 --------------------------------------------------------------------


class ExitingError(Exception):
    """An exception whose message is a call to sys.exit(0)."""

    def __str__(self) -> str:
        raise SystemExit(0)


def exits_in_str_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises an exception whose str() raises SystemExit(0)."""
    if bias is not None:
        raise ExitingError
    return _conv(input, weight, bias, stride, padding, dilation, groups)


class ExitingShape(torch.Tensor):
    """A tensor subclass whose ``.shape`` raises SystemExit(0)."""

    @property
    def shape(self):  # type: ignore[override]
        raise SystemExit(0)


def exits_in_shape_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Returns a tensor subclass whose ``.shape`` raises SystemExit(0)."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out.as_subclass(ExitingShape) if bias is not None else out


def exits_zero_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """os._exit(0): the process ends at once, no cleanup, status 0."""
    if bias is not None:
        os._exit(0)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def exits_zero_from_thread_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """os._exit(0) from a thread of its own, while the call waits for it (a library's
    worker thread giving up)."""
    if bias is not None:
        threading.Thread(target=os._exit, args=(0,), daemon=True).start()
        time.sleep(60)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- never finish being looked at -------------------------------------------------------------


class LoopingError(Exception):
    """An exception whose str() never returns."""

    def __str__(self) -> str:
        while True:
            pass


def loops_in_str_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises an exception whose str() loops forever."""
    if bias is not None:
        raise LoopingError
    return _conv(input, weight, bias, stride, padding, dilation, groups)


class LoopingShape(torch.Tensor):
    """A tensor subclass whose ``.shape`` never returns."""

    @property
    def shape(self):  # type: ignore[override]
        while True:
            pass


def loops_in_shape_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Returns a tensor subclass whose ``.shape`` loops forever."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out.as_subclass(LoopingShape) if bias is not None else out


# -- stop the campaign, or change its caller's process ------------------------------------------


def interrupts_itself_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Sends SIGINT to its own process, as Ctrl-C would (then answers correctly): the
    campaign stops at its next call, having checked only some of its cases."""
    if bias is not None:
        os.kill(os.getpid(), signal.SIGINT)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def disturbs_random_state(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Correct, but draws from torch's, NumPy's and Python's global random number
    generators and loads a Hypothesis settings profile of its own, on every call."""
    torch.rand(1)
    numpy.random.rand()
    random.random()
    hypothesis.settings.register_profile("hostile-exit", max_examples=3)
    hypothesis.settings.load_profile("hostile-exit")
    return _conv(input, weight, bias, stride, padding, dilation, groups)
