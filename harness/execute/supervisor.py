"""How each implementation is called: in this process or isolated, journalled, quarantined.

In process is fastest, and right for code that only raises or returns. Isolation (a child
process per implementation) survives crashes, C-level hangs and memory blow-ups, at the
cost of shipping tensors through a pipe. An implementation may declare which of its cases
run isolated (`Capabilities.isolate`: a library known to crash on some), and the others run
here; --isolate runs all of them isolated. An implementation that crashes, hangs or runs
out of memory `QUARANTINE_AFTER` times is not called again in this campaign: it has been
reported, and each further call would cost a time limit or a restart. (Shrinking and
attributing a bug it has found still call it.) Where it declares isolated cases, those of each
condition are quarantined apart (`scope`): a library known to crash on half-precision cases
is still explored everywhere else, where a crash of another kind may be waiting.

A time limit blown on a busy machine is no evidence against an implementation, so a
caller can have a call that timed out made again before it counts (`Supervisor.call`'s
``fresh``): only one that times out again, here and in a child process, is a timeout (and
counts towards the quarantine); one that returns is judged on what it returned, and
counted as `slow`. Those calls get `RETRY_FACTOR` times the limit: a library that compiles a
kernel for each new shape (a JIT) may need more than one limit to finish, and made again
with the same limit, in a child that has compiled nothing, it would never finish. An
implementation that declares ``compiles_per_shape`` gets `runner.COMPILE_SECONDS` more on
the first call on each shape, here and in its child; one that declares ``time_limit`` has
its seconds in place of the harness's base allowance (`runner.time_limit`).

The kernels the reference runs through are checked before the first call too: one
registered since the harness was imported, by an implementation's module as it was loaded
(as extension libraries register theirs), is removed and charged to that implementation
(the one loaded from the file that registered it) on every call it makes: a global-state
failure, as if each call had registered it. So is one that could not be removed (from C++),
whenever it was registered: it stays in force for every call after it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

import torch

from harness.execute.isolation import Child
from harness.execute.journal import Journal
from harness.execute.process_state import Guard, Registration, reference_untrusted, registered_since_import, unremovable
from harness.execute.runner import COMPILE_SECONDS, call, stop_if_interrupted, time_limit
from harness.generate.tensors import Inputs
from harness.model.case import Case
from harness.model.conditions import met
from harness.model.outcome import Change, Outcome
from harness.model.registry import Implementation

QUARANTINE_AFTER = 3
BACKWARD_FACTOR = 3  # a forward and a backward pass get this many forward time limits
RETRY_FACTOR = 3  # a call made again after a timeout gets this many time limits

T = TypeVar("T")


class Supervisor:
    def __init__(self, isolate: bool | Collection[str] = False, journal: Journal | None = None) -> None:
        self.isolate, self.journal = isolate, journal
        self.children: dict[str, Child] = {}
        self.abnormal: Counter[str] = Counter()  # crashes, hangs and memory failures, per implementation
        self.abnormal_in: Counter[tuple[str, int | None]] = Counter()  # the same by `scope`
        self.slow: Counter[str] = Counter()  # calls that ran past their time limit, and returned when made again
        self.guard: Guard | None = None  # made at the first call in this process
        self.since: tuple[bytes, int] | None = None  # how things were as the calls being `watched` began
        self.stale = False  # a call being watched changed the shared state, put back already (`_in_a_child`)
        self.registrations: list[Registration] = []  # kernels registered on loading (`_registered_on_loading`)
        self.charged: dict[tuple[str, int], tuple[Change, ...]] = {}  # those an implementation answers for
        self.compiled: set[tuple[str, bool, Case]] = set()  # (name, isolated, shape): called on it already

    def isolated(self, name: str) -> bool:
        """Whether every call of ``name`` runs in its child (--isolate, or a rescue)."""
        return self.isolate if isinstance(self.isolate, bool) else name in self.isolate

    def isolates(self, implementation: Implementation, case: Case) -> bool:
        """Whether the call of ``implementation`` on ``case`` runs in its child: all of them
        do (`isolated`), or the implementation declares that this one does."""
        return self.isolated(implementation.name) or implementation.capabilities.isolates(case)

    @staticmethod
    def scope(implementation: Implementation, case: Case) -> int | None:
        """Which of ``implementation``'s declared ``isolate`` conditions ``case`` meets first
        (None: none, the rest of its cases): where its crashes count towards a quarantine."""
        conditions = implementation.capabilities.isolate
        return next((i for i, condition in enumerate(conditions) if met(case, condition)), None)

    def quarantined(self, implementation: Implementation, case: Case) -> bool:
        """Whether exploring should stop calling ``implementation`` on cases like ``case``
        (in its `scope`); shrinking still may."""
        return self.abnormal_in[implementation.name, self.scope(implementation, case)] >= QUARANTINE_AFTER

    def call(
        self,
        implementation: Implementation,
        case: Case,
        inputs: Inputs,
        pristine: Inputs,
        upstream: torch.Tensor | None = None,
        fresh: Callable[[], Inputs] | None = None,
    ) -> Outcome:
        """`runner.call`, here or in the implementation's child; ``upstream``: see there.
        ``fresh``: where given, a call that runs past its time limit is made again with
        inputs from ``fresh()`` (`_again`) before it counts as a timeout."""
        stop_if_interrupted()
        self._guard()  # made, with the kernels registered on loading found, before the first call
        declared = implementation.capabilities.time_limit
        seconds = time_limit(case) if declared is None else time_limit(case, declared)
        seconds *= 1 if upstream is None else BACKWARD_FACTOR
        outcome = self._made(implementation, case, inputs, pristine, seconds, upstream)
        if outcome.abnormal == "timeout" and fresh is not None:
            outcome = self._again(implementation, case, fresh, pristine, seconds, upstream, outcome)
        charged = (
            [change for change in self._charged(implementation) if change not in outcome.changed]
            if self.registrations or reference_untrusted()
            else ()
        )
        if charged:
            outcome = replace(outcome, changed=(*charged, *outcome.changed))
        if outcome.abnormal:
            self.abnormal[implementation.name] += 1
            self.abnormal_in[implementation.name, self.scope(implementation, case)] += 1
        return outcome

    def _made(
        self,
        implementation: Implementation,
        case: Case,
        inputs: Inputs,
        pristine: Inputs,
        seconds: float,
        upstream: torch.Tensor | None,
        isolated: bool | None = None,
    ) -> Outcome:
        """One call: in the implementation's child where it runs isolated (or ``isolated``
        says so), else here. A case it declares isolated goes to its child from among
        calls made here: as `_in_a_child` does, less the stand-in timeout (its failure
        to start is raised, as under --isolate)."""
        if isolated is None:
            isolated = self.isolated(implementation.name)
            if not isolated and implementation.capabilities.isolates(case):
                with self._beside_the_watch():
                    return self._made(implementation, case, inputs, pristine, seconds, upstream, isolated=True)
        if implementation.capabilities.compiles_per_shape:
            shape = (implementation.name, isolated, replace(case, data="uniform", seed=0))
            if shape not in self.compiled:
                self.compiled.add(shape)
                seconds += COMPILE_SECONDS
        if isolated:
            child = self.children.setdefault(implementation.name, Child(implementation))
            return child.call(case, inputs, seconds, upstream)
        if self.journal is not None:
            self.journal.running(implementation.name, case)
        outcome = call(implementation, case, inputs, pristine, seconds, upstream, self._guard())
        if self.journal is not None:
            self.journal.idle()
        return outcome

    def _again(
        self,
        implementation: Implementation,
        case: Case,
        fresh: Callable[[], Inputs],
        pristine: Inputs,
        seconds: float,
        upstream: torch.Tensor | None,
        first: Outcome,
    ) -> Outcome:
        """A call that timed out (``first``), made again: on a busy machine a correct call can
        run past its limit. Once more where it ran, then, if it timed out twice in this
        process, in a child process (a clean start, timed from outside), each with
        `RETRY_FACTOR` times the limit. The first call
        that returns is the outcome (counted in `slow`, if it did not crash); if none does,
        the first timeout stands."""
        seconds *= RETRY_FACTOR
        outcome = self._made(implementation, case, fresh(), pristine, seconds, upstream)
        if outcome.abnormal == "timeout" and not self.isolates(implementation, case):
            outcome = self._in_a_child(implementation, case, fresh(), seconds, upstream)
        if outcome.abnormal == "timeout":
            return first
        if not outcome.abnormal:
            self.slow[implementation.name] += 1
        return outcome

    def _in_a_child(
        self, implementation: Implementation, case: Case, inputs: Inputs, seconds: float, upstream: torch.Tensor | None
    ) -> Outcome:
        """A call made in the implementation's child, for one that runs in this process.
        Starting a child process may start multiprocessing's fork server, a child of this
        process: the harness's, not one a call left running. So while calls are being
        `watched`, what they changed so far is put back first (and they are all made again,
        each checked, as ever), and the watch goes on from how things are once it started.
        One that cannot run in a child (a local function does not pickle) gets a timeout:
        the two here stand."""
        with self._beside_the_watch():
            try:
                return self._made(implementation, case, inputs, inputs, seconds, upstream, isolated=True)
            except Exception:  # it cannot be sent to a child, or the child did not start
                return Outcome(abnormal="timeout")

    @contextmanager
    def _beside_the_watch(self) -> Iterator[None]:
        """Around a call made in a child among calls made here (`_in_a_child`)."""
        if self.since is not None and self.shared_state_changed(self.since):
            self.stale = True
        try:
            yield
        finally:
            if self.since is not None:
                self.since = self.watching()

    def _guard(self) -> Guard:
        """Made at the first use in this process: the state as the campaign found it is
        what gets put back. The shared tier is checked once for several calls
        (`shared_state_changed`), unless an implementation runs isolated: its child
        process is the harness's, and must not count as one a call left running."""
        if self.guard is None:
            self._registered_on_loading()
            self.guard = Guard(each_call=bool(self.isolate))
        return self.guard

    def _registered_on_loading(self) -> None:
        """The reference's kernels registered since the harness was imported, before any
        call (by a module as it was loaded): removed, said in a warning, and kept to be
        charged to the implementation loaded from the file that registered them."""
        self.registrations = [
            Registration(Change(r.change.what, f"{r.change.detail}, as its module was loaded"), r.file)
            for r in registered_since_import()
        ]
        for registration in self.registrations:
            warnings.warn(
                f"{registration.change.what}: {registration.change.detail}, before any implementation "
                "was called; removed",
                RuntimeWarning,
                stacklevel=1,
            )

    def _charged(self, implementation: Implementation) -> tuple[Change, ...]:
        """The kernels still in force, or registered on loading, that the file
        ``implementation`` was loaded from registered (or, if none, any file of its package)."""
        registrations = (*self.registrations, *unremovable())
        key = (implementation.name, len(registrations))
        if key not in self.charged:
            own, folder = _origin(implementation)
            sites = [
                (registration, os.path.realpath(registration.file.rpartition(":")[0])) for registration in registrations
            ]
            self.charged[key] = tuple(registration.change for registration, file in sites if file == own) or tuple(
                registration.change for registration, file in sites if folder and file.startswith(folder)
            )
        return self.charged[key]

    def watching(self) -> tuple[bytes, int]:
        """How things are as the calls about to be made begin: see `shared_state_changed`."""
        return self._guard().before()

    def shared_state_changed(self, since: tuple[bytes, int]) -> bool:
        """Whether a call made in this process since `watching` said ``since`` changed the
        shared state (torch's switches, the working directory, a function of
        ``torch.nn.functional`` or ``torch.Tensor``, a process left running...); put back
        if one did. Who did is not known: `watched` makes the calls again, with
        `each_call_checked` on, to find out. A difference that putting back finds harmless
        (a submodule imported into its package, a child process that has ended) is no
        change: making the calls again for it would lose what they found."""
        guard = self._guard()
        if guard.each_call or not guard.shared_changed(since):
            return False
        return bool(guard.put_back_shared(since))

    def watched(self, calls: Callable[[], T]) -> T:
        """``calls()``, with the shared state checked once for all the calls it makes; if
        one changed it (put back now), the calls after it ran with the change, so all are
        made again, each checked on its own, which tells who, and judges the others on
        what they do."""
        outer = self.since, self.stale
        self.since, self.stale = self.watching(), False
        try:
            made = calls()
            if self.shared_state_changed(self.since) or self.stale:
                with self.each_call_checked():
                    made = calls()
        finally:
            self.since, self.stale = outer
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


def _origin(implementation: Implementation) -> tuple[str, str]:
    """The file an implementation's function was loaded from, and its package's folder
    ("" for a module outside a package)."""
    module = sys.modules.get(getattr(implementation.fn, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if module is None or not file:
        return "", ""
    package = sys.modules.get(module.__name__.partition(".")[0])
    folders = list(getattr(package, "__path__", None) or [])
    return os.path.realpath(file), os.path.join(os.path.realpath(folders[0]), "") if folders else ""
