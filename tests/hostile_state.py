"""Throw-away conv2d implementations that compute the right answer but, when a bias is
given, change what the whole process shares in a way that would corrupt the reference or
the judging of everything called after them.

Each is `F.conv2d` (on standard-strided copies, as in tests/misbehaving.py) except that,
with a bias, it first changes one piece of state and never puts it back: registers a
buggy CPU kernel for ``aten::convolution`` through ``torch.library`` (as extension
libraries register theirs), patches the harness's own judging functions, turns grad mode
off, enters inference mode or anomaly mode for good, moves the default device, or
rewrites the warnings filters. The bias is the condition a test checks the failure
shrinks to (``needs == {"bias"}``).

Not registered. Tests load them by file (``discover([f"{__file__}:name"])``), so that an
isolated child process can load them again from their source; this module imports
nothing from tests/.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

# Kept alive here, as an extension library keeps its registrations: a Library object that
# is garbage-collected takes its kernels with it.
LIBRARIES: list[torch.library.Library | torch._C._DispatchModule] = []
INFERENCE: list[object] = []  # the inference-mode context entered, never left


def _conv(input, weight, bias=None, *arguments):
    """F.conv2d around torch 2.13 bugs (standard strides; float16 and bfloat16 in float32)."""
    if input.dtype in (torch.float16, torch.bfloat16):
        return _conv(input.float(), weight.float(), None if bias is None else bias.float(), *arguments).to(input.dtype)
    standard = torch.contiguous_format
    return F.conv2d(input.clone(memory_format=standard), weight.clone(memory_format=standard), bias, *arguments)


def _convolution_without_bias(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """A planted bug in aten::convolution's CPU kernel: the bias is dropped."""
    return torch.ops.aten._convolution(
        input, weight, None, stride, padding, dilation, transposed, output_padding, groups, False, False, True, True
    )


def overrides_convolution_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Registers a CPU kernel for aten::convolution that drops the bias, then computes its
    own answer through it: right by the corrupted reference, wrong by torch's."""
    if bias is not None:
        library = torch.library.Library("aten", "IMPL")
        with warnings.catch_warnings():  # "overriding a previously registered kernel"
            warnings.simplefilter("ignore")
            library.impl("convolution", _convolution_without_bias, "CPU")
        LIBRARIES.append(library)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def overrides_convolution_for_good_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The same kernel, registered through the dispatcher's own handle rather than a
    torch.library object, as a C++ extension's would be: nothing in Python can remove it.
    Run it only in a process of its own: it corrupts every convolution after it there."""
    if bias is not None and not LIBRARIES:
        handle = torch._C._dispatch_library("IMPL", "aten", "", __file__, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle.impl("convolution", "CPU", _convolution_without_bias)
        LIBRARIES.append(handle)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def _passed(*arguments, **keywords):
    from harness.model.verdict import PASSED, Verdict

    return Verdict(PASSED)


def patches_the_judge_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Replaces the harness's value comparison with one that passes everything, and returns
    a wrong answer (off by one): judged by the patched function, it would pass."""
    import harness.judge.compare

    if bias is not None:
        harness.judge.compare._judge_values = _passed
    return _conv(input, weight, bias, stride, padding, dilation, groups) + (0 if bias is None else 1)


def _off_by_one(case, x, w, b):
    from harness.judge import oracle

    return oracle.CONV2D(x, w, b, case.stride, case.padding, case.dilation, case.groups) + 1


def rewrites_the_reference_code_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Swaps the code of the reference's `convolve` in place (the function object stays the
    same): every reference after it is off by one, and so is its own answer."""
    import harness.judge.oracle

    if bias is not None:
        harness.judge.oracle.convolve.__code__ = _off_by_one.__code__
    return _conv(input, weight, bias, stride, padding, dilation, groups) + (0 if bias is None else 1)


def turns_off_grad_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Switches autograd off before the harness has ever computed a gradient."""
    if bias is not None:
        torch.set_grad_enabled(False)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def enters_inference_mode_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Enters inference mode and never leaves it."""
    if bias is not None:
        mode = torch.inference_mode()
        mode.__enter__()
        INFERENCE.append(mode)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def enables_anomaly_mode_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Turns autograd's anomaly detection on for everything after it (and slows it down)."""
    if bias is not None:
        torch.autograd.set_detect_anomaly(True)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def sets_default_device_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Makes the meta device the default: every torch.zeros(...) after it has no data."""
    out = _conv(input, weight, bias, stride, padding, dilation, groups)
    if bias is not None:
        torch.set_default_device("meta")
    return out


def turns_warnings_into_errors_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Makes every warning an exception, in whatever code runs after it."""
    if bias is not None:
        warnings.simplefilter("error")
    return _conv(input, weight, bias, stride, padding, dilation, groups)


# Its gradients are checked too.
turns_off_grad_with_bias.__conv2d_declaration__ = {"autograd": True}  # type: ignore[attr-defined]
