"""Arguments near the integer limits, which a conv2d must refuse with an error or get right.

A stride, padding or dilation of 2**31 - 1, 2**63 - 1 or just past them (and 0 and -1) is
where C code overflows an int32 or int64 size computation, divides by zero, or loops for
ever: a crash or a hang there is the bug, an exception is the right answer to an invalid or
unallocatable problem, and a tensor returned must be the right one. The campaign's
strategies never draw such values (their cases are small, so that shrinking ends small),
so this check calls them directly: each argument in turn, as an int and as either half of
a pair, on one small problem with integer data, every call in a child process
(`harness.execute.isolation.Child`) under a time limit, whatever the implementation declares.

A returned tensor is judged where it can be: against the independent reference
(`harness.judge.independent`, no torch kernel) where the problem is valid and its output
small. One returned for a problem with no output (the dilated kernel larger than the
padded input, `Case.problems`) is wrong; one for a value out of F.conv2d's range (a
negative padding, a stride past int64) is said, not judged: it is no conv2d's to define.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.execute.isolation import Child
from harness.generate.tensors import make_inputs
from harness.judge.independent import reference
from harness.model.case import MAX_DIMENSION, Case, IntOrPair, pair
from harness.model.outcome import Outcome
from harness.model.registry import Implementation
from harness.model.text import clipped, one_line

# Just below, at and past the int32 and int64 limits, and the smallest invalid values.
VALUES = (2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 0, -1, -(2**63))
ARGUMENTS = ("stride", "padding", "dilation")
BASE = Case(batch=1, in_channels=2, out_channels=2, groups=1, height=5, width=5, kernel=(2, 2), data="int", bias=True)
SECONDS = 10.0  # a call to refuse takes milliseconds: one this long is hung
JUDGED_ELEMENTS = 4096  # a returned output up to this size is checked value by value
BUGS = ("crash", "timeout", "wrong")


@dataclass(frozen=True)
class Extreme:
    """One call: which argument had which value, and what came of it: ``refused`` (raised),
    ``right`` (returned the right tensor), ``accepted`` (returned a tensor for a value
    F.conv2d refuses: below 1, or 0 for padding, or past int64), or a bug: ``crash``,
    ``timeout``, ``wrong`` (a wrong tensor, or one for a problem with no output)."""

    implementation: str
    argument: str
    value: IntOrPair
    verdict: str
    detail: str = ""

    @property
    def bug(self) -> bool:
        return self.verdict in BUGS

    def __str__(self) -> str:
        return f"{self.verdict.upper()} {self.implementation} {self.argument}={self.value!r}: {self.detail}"


def cases() -> Iterator[tuple[str, IntOrPair, Case]]:
    """Each argument at each extreme value, as an int, then in the height, then in the width."""
    for argument in ARGUMENTS:
        usual: int = getattr(BASE, argument)
        for value in VALUES:
            forms: tuple[IntOrPair, ...] = (value, (value, usual), (usual, value))
            for form in forms:
                changed: dict[str, Any] = {argument: form}
                yield argument, form, replace(BASE, **changed)


def check(implementation: Implementation, seconds: float = SECONDS) -> list[Extreme]:
    """Every extreme call of ``implementation``, each in its child process (restarted after a
    crash or a hang), under ``seconds``."""
    child = Child(implementation)
    found = []
    try:
        for argument, value, case in cases():
            outcome = child.call(case, make_inputs(case), seconds)
            verdict, detail = judged(case, outcome)
            found.append(Extreme(implementation.name, argument, value, verdict, detail))
    finally:
        child.close()
    return found


def in_range(case: Case) -> bool:
    """Whether every stride and dilation is in [1, 2**63 - 1], every padding in [0, 2**63 - 1]."""
    return all(
        low <= value <= MAX_DIMENSION
        for name, low in (("stride", 1), ("padding", 0), ("dilation", 1))
        for value in pair(getattr(case, name))
    )


def judged(case: Case, outcome: Outcome) -> tuple[str, str]:
    """The verdict on one call, and what it says."""
    said = one_line(clipped(outcome.error_message))
    if outcome.abnormal in ("crash", "timeout"):
        return outcome.abnormal, said
    if outcome.result is None:  # raised (a memory error too: an error, not a crash), or returned no tensor
        raised = f"{outcome.error_type}: {said}" if outcome.error_type else said or f"returned {outcome.returned}"
        return ("refused", raised) if outcome.error_type or outcome.abnormal else ("wrong", raised)
    if not in_range(case):  # F.conv2d refuses it: a library may read it otherwise (negative padding crops)
        return "accepted", f"returned a tensor of shape {tuple(outcome.result.shape)}"
    invalid = case.problems()
    if invalid:
        return "wrong", f"returned a tensor of shape {tuple(outcome.result.shape)}, where there is none: {invalid[0]}"
    if tuple(outcome.result.shape) != case.output_shape:
        return "wrong", f"shape {tuple(outcome.result.shape)}, expected {case.output_shape}"
    elements = int(np.prod(case.output_shape, dtype=object))
    if elements <= JUDGED_ELEMENTS and not np.array_equal(
        outcome.result.double().numpy(), reference(case, make_inputs(case))
    ):
        return "wrong", "wrong values (integer data: the sums are exact)"
    return "right", f"shape {case.output_shape}"
