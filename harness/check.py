"""Check one case against several implementations, paying for the reference once.

This is the unit of work everywhere: the fuzz campaign, replay, and a single case on the
command line all come through `check_case`. Making the tensors and running the float64
reference cost as much as an implementation call, so one drawn case is checked against
every implementation that claims it.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from harness.capabilities import refusal
from harness.case import Case
from harness.compare import judge
from harness.oracle import Expected, expect
from harness.registry import Implementation
from harness.supervisor import IN_PROCESS, Supervisor
from harness.tensors import Inputs, make_inputs
from harness.verdict import UNSUPPORTED, Verdict


def one_thread() -> None:
    """Run torch single-threaded: the tensors here are small, and intra-op threads on a
    busy machine spin against each other and against other workers (measured here: a
    tiny conv2d went from 0.08 ms to 15 ms with two threads and the other core busy).
    Parallelism comes from processes instead (pytest-xdist, ``fuzz --workers``)."""
    torch.set_num_threads(1)


def check_case(case: Case, implementations: Iterable[Implementation], inputs: Inputs | None = None,
               supervisor: Supervisor = IN_PROCESS) -> dict[str, Verdict]:
    """Verdicts by implementation name; ``inputs`` overrides the case's generated data."""
    pristine = make_inputs(case) if inputs is None else inputs
    return check_prepared(case, implementations, pristine.clone, pristine, expect(case, pristine), supervisor)


def check_prepared(case: Case, implementations: Iterable[Implementation], fresh: Callable[[], Inputs],
                   pristine: Inputs, expected: Expected, supervisor: Supervisor) -> dict[str, Verdict]:
    """The loop itself, for callers that share the data and reference between cases.

    Each implementation gets ``fresh()`` inputs only after one has modified them: they are
    compared with ``pristine`` (never handed out) after every call.
    """
    inputs = fresh()
    verdicts = {}
    for implementation in implementations:
        reason = refusal(implementation.capabilities, case)
        if reason:
            verdicts[implementation.name] = Verdict(UNSUPPORTED, message=f"unimplemented: {reason}")
            continue
        outcome = supervisor.call(implementation, case, inputs, pristine)
        verdicts[implementation.name] = judge(case, expected, outcome)
        if outcome.modified:  # the next implementation gets the case as drawn
            inputs = fresh()
    return verdicts
