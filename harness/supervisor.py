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
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

from harness.case import Case
from harness.isolation import Child
from harness.journal import Journal
from harness.outcome import Outcome
from harness.process_state import Guard
from harness.registry import Implementation
from harness.runner import call, stop_if_interrupted, time_limit
from harness.tensors import Inputs

QUARANTINE_AFTER = 3
BACKWARD_FACTOR = 3  # a forward and a backward pass get this many forward time limits

T = TypeVar("T")


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
            if self.journal is not None:
                self.journal.running(implementation.name, case)
            outcome = call(implementation, case, inputs, pristine, seconds, upstream, self._guard())
            if self.journal is not None:
                self.journal.idle()
        if outcome.abnormal:
            self.abnormal[implementation.name] += 1
        return outcome

    def _guard(self) -> Guard:
        """Made at the first use in this process: the state as the campaign found it is
        what gets put back. The shared tier is checked once for several calls
        (`shared_state_changed`), unless an implementation runs isolated: its child
        process is the harness's, and must not count as one a call left running."""
        if self.guard is None:
            self.guard = Guard(each_call=bool(self.isolate))
        return self.guard

    def watching(self) -> tuple[bytes, int]:
        """How things are as the calls about to be made begin: see `shared_state_changed`."""
        return self._guard().before()

    def shared_state_changed(self, since: tuple[bytes, int]) -> bool:
        """Whether a call made in this process since `watching` said ``since`` changed the
        shared state (torch's switches, the working directory, a function of
        ``torch.nn.functional`` or ``torch.Tensor``, a process left running...); put back
        if one did. Who did is not known: `watched` makes the calls again, with
        `each_call_checked` on, to find out."""
        guard = self._guard()
        if guard.each_call or not guard.shared_changed(since):
            return False
        guard.put_back_shared(since)
        return True

    def watched(self, calls: Callable[[], T]) -> T:
        """``calls()``, with the shared state checked once for all the calls it makes; if
        one changed it (put back now), the calls after it ran with the change, so all are
        made again, each checked on its own, which tells who, and judges the others on
        what they do."""
        since = self.watching()
        made = calls()
        if self.shared_state_changed(since):
            with self.each_call_checked():
                made = calls()
        return made

    @contextmanager
    def each_call_checked(self) -> Iterator[None]:
        """Check the shared state around every call for a while."""
        guard = self._guard()
        if guard.each_call:
            yield
            return
        guard.each_call = True
        try:
            yield
        finally:
            guard.each_call = False

    def close(self) -> None:
        for child in self.children.values():
            child.close()
        if self.journal is not None:
            self.journal.close()

