"""How each implementation is called: in this process or isolated, journalled, quarantined.

In process is fastest, and right for code that only raises or returns. Isolation (a child
process per implementation) survives crashes, C-level hangs and memory blow-ups, at the
cost of shipping tensors through a pipe. An implementation that crashes, hangs or runs
out of memory `QUARANTINE_AFTER` times is not called again in this campaign: it has been
reported, and each further call would cost a time limit or a restart. (Shrinking and
attributing a bug it has found still call it.)
"""

from __future__ import annotations

from collections import Counter
from typing import Collection

import torch

from harness.case import Case
from harness.isolation import Child
from harness.journal import Journal
from harness.process_state import Guard
from harness.registry import Implementation
from harness.runner import Outcome, call, stop_if_interrupted, time_limit
from harness.tensors import Inputs

QUARANTINE_AFTER = 3
BACKWARD_FACTOR = 3  # a forward and a backward pass get this many forward time limits


class Supervisor:
    def __init__(self, isolate: bool | Collection[str] = False, journal: Journal | None = None) -> None:
        self.isolate, self.journal = isolate, journal
        self.children: dict[str, Child] = {}
        self.abnormal: Counter[str] = Counter()
        self.guard: Guard | None = None  # made at the first call in this process

    def isolated(self, name: str) -> bool:
        return self.isolate if isinstance(self.isolate, bool) else name in self.isolate

    def quarantined(self, name: str) -> bool:
        """Whether exploring should stop calling ``name`` (shrinking still may)."""
        return self.abnormal[name] >= QUARANTINE_AFTER

    def call(self, implementation: Implementation, case: Case, inputs: Inputs, pristine: Inputs,
             upstream: torch.Tensor | None = None) -> Outcome:
        """`runner.call`, here or in the implementation's child; ``upstream``: see there."""
        stop_if_interrupted()
        seconds = time_limit(case) * (1 if upstream is None else BACKWARD_FACTOR)
        if self.isolated(implementation.name):
            child = self.children.setdefault(implementation.name, Child(implementation))
            outcome = child.call(case, inputs, seconds, upstream)
        else:
            if self.guard is None:
                self.guard = Guard()  # the state as the campaign found it is what gets put back
            if self.journal is not None:
                self.journal.running(implementation.name, case)
            outcome = call(implementation, case, inputs, pristine, seconds, upstream, self.guard)
            if self.journal is not None:
                self.journal.idle()
        if outcome.abnormal:
            self.abnormal[implementation.name] += 1
        return outcome

    def close(self) -> None:
        for child in self.children.values():
            child.stop()
        if self.journal is not None:
            self.journal.close()

