"""Correct conv2d implementations whose time the harness must not hold against them (not
registered; loaded by path).

- ``compiles_per_shape``: a JIT library, as seen in the wild: the first call on each new
  problem shape "compiles" for `COMPILE` seconds (past the harness's 2 s), then every call
  on that shape is quick. Undeclared: its timeouts must come out as slow, never as a bug.
- ``compiles_per_shape_declared``: the same, declaring ``compiles_per_shape``: no timeout at all.
- ``collects_while_hanging_with_bias``: a library with a garbage-collector callback of its
  own (in `gc.callbacks` from its import on, as profilers and memory trackers register one),
  whose calls make cyclic garbage; with a bias it never returns, making garbage all the
  while. Its callback is where the time goes, so a time limit goes off in it far more often
  than not: the harness must neither raise there nor print anything of its own.
"""

from __future__ import annotations

import gc
import time

import torch
import torch.nn.functional as F

from harness import declare

COMPILE = 3.0  # seconds a new shape takes to compile
_compiled: set[tuple[object, ...]] = set()


def _conv(input, weight, bias, stride, padding, dilation, groups):
    """F.conv2d on contiguous float32 or float64 (around torch 2.13 bugs with odd strides
    and half precision, as the planted bugs do)."""
    low = input.dtype in (torch.float16, torch.bfloat16)
    x, w = (t.float().contiguous() if low else t.contiguous() for t in (input, weight))
    b = None if bias is None else (bias.float() if low else bias)
    return F.conv2d(x, w, b, stride, padding, dilation, groups).to(input.dtype)


def _compiling(input, weight, bias, stride, padding, dilation, groups):
    key = (tuple(input.shape), tuple(weight.shape), bias is None, input.dtype, stride, padding, dilation, groups)
    if key not in _compiled:
        time.sleep(COMPILE)  # the compiler: Python-level, so a time limit interrupts it
        _compiled.add(key)
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def compiles_per_shape(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _compiling(input, weight, bias, stride, padding, dilation, groups)


@declare(compiles_per_shape=True)
def compiles_per_shape_declared(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _compiling(input, weight, bias, stride, padding, dilation, groups)


def _gc_callback(phase, info):
    """The library's bookkeeping at each collection: slow Python, where the time goes."""
    end = time.perf_counter() + 0.002
    while time.perf_counter() < end:
        pass


gc.callbacks.append(_gc_callback)


class _Node:
    def __init__(self):
        self.other = self  # a cycle: only the collector frees it


def collects_while_hanging_with_bias(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    garbage = [_Node() for _ in range(1000)]  # a collection or two in every call
    del garbage
    while bias is not None:
        _Node()
    return _conv(input, weight, bias, stride, padding, dilation, groups)


def wrong_and_slow(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Wrong (one too many) with a kernel wider than 1, and 50 ms a call: well
    inside any time limit, but each step of shrinking and attributing it costs that, and
    there are many."""
    time.sleep(0.05)
    return _conv(input, weight, bias, stride, padding, dilation, groups) + (weight.shape[-1] > 1)
