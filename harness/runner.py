"""Call one implementation on one case and capture everything it did.

The runner does not judge (that is `compare`); it only calls, in the argument form the
implementation declared, and records what came back, what was raised and where, and
whether the inputs it was handed are still bit-for-bit what they were.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import torch

from harness.capabilities import call_arguments
from harness.case import Case
from harness.registry import Implementation
from harness.tensors import Inputs

_INT_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Outcome:
    """What one call produced: a result or an error, and which inputs it modified."""

    result: Any = None
    error: BaseException | None = None
    error_site: str = ""
    modified: tuple[str, ...] = ()


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality, so that NaN == NaN and -0.0 != 0.0."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    view = _INT_VIEWS[a.element_size()]
    return torch.equal(a.contiguous().view(view), b.contiguous().view(view))


def _site(error: BaseException) -> str:
    """file:line of the innermost frame: Hypothesis tells bugs apart the same way."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


def call(implementation: Implementation, case: Case, inputs: Inputs, pristine: Inputs) -> Outcome:
    """Call with ``inputs``, then compare them with ``pristine``, the same values untouched."""
    try:
        arguments = call_arguments(implementation.capabilities, case)
        result = implementation.fn(inputs.input, inputs.weight, inputs.bias, **arguments)
        error, site = None, ""
    except Exception as raised:  # the implementation is under test: anything may happen
        result, error, site = None, raised, _site(raised)
    modified = []
    for name in ("input", "weight", "bias"):
        given, original = getattr(inputs, name), getattr(pristine, name)
        if given is not None and not same_bits(given, original):
            modified.append(name)
    return Outcome(result, error, site, tuple(modified))
