"""Throw-away conv2d implementations that misbehave in one way each, under one simple condition.

Each is the plain `F.conv2d` wrapper (correct) except when its condition holds (a bias is
given, groups > 1, or a bias in float64), where it crashes the process, hangs, exhausts
memory, returns or raises something a conv2d never should, or changes state that the
whole process shares. The condition is what lets a test check that the
harness shrinks the case to it and attributes the failure to it (``needs``).

Not registered. Tests load them by file (``discover([f"{__file__}:name"])``) so that an
isolated child process can load them again from their source.

Some of these kill or hang whatever process runs them: the crashing and C-level hanging
ones belong in an isolated child (`Supervisor(isolate=True)`), and `allocates_with_bias`
must only ever run there, where the address space is capped; in this process it would
take the machine's memory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

QUARTER_GIB = 256 * 2**20


def _conv(input, weight, bias=None, *arguments):
    """F.conv2d as in tests/planted_bugs.py, around torch 2.13 bugs (standard strides,
    float16 and bfloat16 in float32); these misbehave otherwise. (A copy: isolated
    children load this file by its path, where tests/ is not importable.)"""
    if input.dtype in (torch.float16, torch.bfloat16):
        return _conv(input.float(), weight.float(), None if bias is None else bias.float(), *arguments).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(input.clone(memory_format=standard), weight.clone(memory_format=standard), bias, *arguments)


# -- kill the process ---------------------------------------------------------------------


def segfaults_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Reads address 0, as a C extension with a null pointer would: SIGSEGV."""
    if bias is not None:
        ctypes.string_at(0)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def segfaults_with_bias_declared(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """`segfaults_with_bias`, declaring the cases it crashes on to be called isolated (as a
    plain dict: a file loaded by path need not import the harness)."""
    return segfaults_with_bias(input, weight, bias, stride, padding, dilation, groups)


segfaults_with_bias_declared.__conv2d_declaration__ = {"isolate": {"bias": True}}  # type: ignore[attr-defined]


def crashes_two_ways_one_declared(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Leaves the process (status 3) on a grouped, dilated problem, else segfaults with a
    bias, and declares only the bias's cases isolated: two crashes, the declared one (the
    commoner) quarantined apart."""
    if groups > 1 and dilation not in (1, (1, 1)):
        os._exit(3)
    return segfaults_with_bias(input, weight, bias, stride, padding, dilation, groups)


crashes_two_ways_one_declared.__conv2d_declaration__ = {"isolate": {"bias": True}}  # type: ignore[attr-defined]


def exits_with_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Leaves the process at once, no cleanup, status 3 (a C library calling exit())."""
    if groups > 1:
        os._exit(3)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def aborts_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A failed C assert: SIGABRT."""
    if bias is not None:
        os.abort()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- at an extreme argument (`harness.campaign.extremes`) ------------------------------------


def _huge(value):
    return (max(value) if isinstance(value, tuple) else value) >= 2**31 - 1


def _conv_refusing_huge(input, weight, bias, stride, padding, dilation, groups):
    """`_conv`, refusing a huge padding or dilation itself: torch 2.13 returns a wrong tensor
    for a dilation of 2**63 - 1 (docs/torch.md), and these are right but at a huge stride."""
    if _huge(padding) or _huge(dilation):
        raise ValueError("padding or dilation too large")
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def segfaults_on_a_huge_stride(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """An int32 size computation gone wrong: reads address 0 for a stride of 2**31 - 1 or more."""
    if _huge(stride):
        ctypes.string_at(0)
    return _conv_refusing_huge(input, weight, bias, stride, padding, dilation, groups)


def hangs_on_a_huge_stride(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Blocks for ever in C on a stride of 2**31 - 1 or more given as an int (a pair is fine)."""
    if isinstance(stride, int) and _huge(stride):
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)
        libc.pthread_mutex_lock(mutex)
        libc.pthread_mutex_lock(mutex)  # the second lock never returns
    return _conv_refusing_huge(input, weight, bias, stride, padding, dilation, groups)


def raises_on_a_huge_stride(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Refuses a stride of 2**31 - 1 or more, as a library with int32 sizes must."""
    if _huge(stride):
        raise ValueError("stride too large")
    return _conv_refusing_huge(input, weight, bias, stride, padding, dilation, groups)


# -- never return -------------------------------------------------------------------------


def loops_with_float64_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A Python loop that never ends (in float64 with a bias): a time limit in this process
    can interrupt it. (Two conditions, so that only some variants of a drawn case hang and
    each one that does costs a time limit.)"""
    if bias is not None and input.dtype == torch.float64:
        while True:
            pass
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def hangs_in_c_with_float64_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Deadlocks inside C (in float64 with a bias): locks a (default, non-recursive) pthread
    mutex it already holds.

    Nothing in this process can interrupt it: a signal handler runs and the wait resumes,
    and Python never gets control back to raise. (libc ``sleep(3600)`` would not do: a
    signal makes it return early, and the Python-level alarm then fires.)
    """
    if bias is not None and input.dtype == torch.float64:
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)  # zeroed = PTHREAD_MUTEX_INITIALIZER on glibc
        libc.pthread_mutex_lock(mutex)
        libc.pthread_mutex_lock(mutex)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- exhaust memory (isolated only) -------------------------------------------------------


def allocates_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Keeps every 256 MiB buffer it allocates, without bound. ONLY run it isolated: the
    child's address space is capped, this process's is not. (``torch.empty`` maps the memory
    without touching it, so reaching the cap costs address space, not RAM.)"""
    if bias is not None:
        hoard = []
        while True:
            hoard.append(torch.empty(QUARTER_GIB, dtype=torch.uint8))
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def raises_memory_error_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Runs out of memory at once (as a failed Python allocation does): safe in this process."""
    if bias is not None:
        raise MemoryError
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- return the wrong thing ---------------------------------------------------------------


def returns_list_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return [out] if bias is not None else out


def returns_meta_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The right shape and dtype, on the 'meta' device (no data at all)."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out.to("meta") if bias is not None else out


def returns_input_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Hands the caller's own input tensor back."""
    if bias is not None:
        return input
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def returns_view_of_input_with_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Hands back a view of the input (``detach()`` shares its memory), as a botched
    "fast path" for grouped convolutions might."""
    if groups > 1:
        return input.detach()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- raise what is not an Exception ---------------------------------------------------------


def raises_keyboard_interrupt_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises KeyboardInterrupt itself: not the user pressing Ctrl-C."""
    if bias is not None:
        raise KeyboardInterrupt
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def raises_system_exit_with_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Calls sys.exit() from inside a library call."""
    if groups > 1:
        raise SystemExit(2)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("not even this")


def raises_unprintable_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises an exception whose str() raises too."""
    if bias is not None:
        raise Unprintable()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- return a tensor that is not quite one -------------------------------------------------


class RaisingTensor(torch.Tensor):
    """A subclass every torch function on which raises, ``.device`` and ``.shape`` included."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("this tensor cannot be used")


class UnpicklableTensor(torch.Tensor):
    def __reduce_ex__(self, protocol):
        raise TypeError("UnpicklableTensor cannot be pickled")


def returns_raising_subclass_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return out.as_subclass(RaisingTensor) if bias is not None else out


def returns_unpicklable_off_by_one_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Off by one, in a tensor subclass that cannot cross a process boundary as it is."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    return (out + 1).as_subclass(UnpicklableTensor) if bias is not None else out


# -- change what the whole process shares ----------------------------------------------------


def turns_off_grad_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Switches autograd off for everything after it, and never back on."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None:
        torch.set_grad_enabled(False)
    return out


def sets_default_dtype_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Makes float64 the default dtype: every torch.zeros(...) after it changes type."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None:
        torch.set_default_dtype(torch.float64)
    return out


def _off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return torch.conv2d(input, weight, bias, stride, padding, dilation, groups) + 1


def replaces_conv2d_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Monkeypatches F.conv2d with an off-by-one version, after computing its own answer."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None:
        F.conv2d = _off_by_one
    return out


def ignores_time_limits_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Ignores SIGALRM from then on: the harness's time limits in this process."""
    if bias is not None:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def changes_directory_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Moves the process to the temporary directory: relative paths then point elsewhere."""
    if bias is not None:
        os.chdir(tempfile.gettempdir())
    return _conv(input, weight, bias, stride, padding, dilation, groups)


LEFTOVER = "im2col-harness-test-leftover"  # in the command line of the process left running


def leaves_a_process_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Starts a process and never waits for it (a worker pool nobody shuts down)."""
    if bias is not None:
        subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(600)  # {LEFTOVER}"])
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# -- misbehave once ----------------------------------------------------------------------------

_calls = [0]


def mutates_weight_on_its_50th_call(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Adds 1 to its weight in place on its 50th call only (state kept between calls)."""
    _calls[0] += 1
    if _calls[0] == 50:
        weight.add_(1)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


_UNFOLD = F.unfold


def _unfold_off_by_one(*arguments, **keywords):
    return _UNFOLD(*arguments, **keywords) + 1


def replaces_unfold_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Monkeypatches F.unfold, which the shipped `unfold` implementation calls, with an
    off-by-one version."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None:
        F.unfold = _unfold_off_by_one
    return out
