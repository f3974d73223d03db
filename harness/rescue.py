"""Calls an earlier run died in, checked before anything is blamed on them.

A journal left behind (`harness.journal`) says what was running when a process died. That
is a lead, not a verdict: an outside kill (SIGKILL, the OOM killer, a CI timeout) leaves
the same journal as a segfault, and is no evidence against the code that happened to be
running. So each such call is made again, isolated in a child process: if it fails there
(a crash, or anything else), that failure is a finding like any other, attributed in
isolation; if it passes, the earlier death was not its doing and nothing is saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.campaign import SHRINK_SECONDS, attributed
from harness.check import check_case
from harness.finding import Finding, identity
from harness.journal import Orphan
from harness.registry import Implementation
from harness.supervisor import Supervisor


@dataclass
class Rescue:
    """What the re-checks found, and a line for each journal saying what became of it."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def suspects(orphans: list[Orphan], implementations: dict[str, Implementation]) -> tuple[set[str], list[str]]:
    """The implementations of this run that an earlier run died in (to be isolated until
    they are re-checked), and a line for each journal saying what will happen to it."""
    names, notes = set(), []
    for orphan in orphans:
        if orphan.case is None:
            continue
        implementation = _named(orphan, implementations)
        if implementation is not None:
            names.add(implementation.name)
            notes.append(f"journal: an earlier run died while running {orphan.implementation} on {orphan.case.id}; "
                         f"{implementation.name} runs isolated this time, and that case is re-checked at the end")
        else:
            notes.append(f"journal: an earlier run died while running {orphan.implementation} on {orphan.case.id}; "
                         "it is not part of this run, so the journal is kept for a run that includes it")
    return names, notes


def rescue(orphans: list[Orphan], implementations: dict[str, Implementation]) -> Rescue:
    """Re-check, isolated, each call an earlier run died in, and forget its journal (a
    journal naming an implementation this run does not have is kept for one that does)."""
    found = Rescue()
    supervisor = Supervisor(isolate=True)
    try:
        for orphan in orphans:
            implementation = _named(orphan, implementations)
            if orphan.case is not None and implementation is None:
                continue
            if implementation is not None:
                _recheck(orphan, implementation, supervisor, found)
            orphan.path.unlink(missing_ok=True)  # died outside any call: nothing to check
    finally:
        supervisor.close()
    return found


def _named(orphan: Orphan, implementations: dict[str, Implementation]) -> Implementation | None:
    """The implementation of this run the journal names, however its path was spelled."""
    wanted = identity(orphan.implementation)
    return next((i for i in implementations.values() if orphan.case and identity(i.name) == wanted), None)


def _recheck(orphan: Orphan, implementation: Implementation, supervisor: Supervisor, found: Rescue) -> None:
    assert orphan.case is not None
    name, case = implementation.name, orphan.case
    verdict = check_case(case, [implementation], supervisor=supervisor, beyond=True)[name]
    if not verdict.failed:
        found.notes.append(f"journal: an earlier run was killed while running {name} on {case.id}; "
                           "it passes in isolation, so nothing is saved (killed from outside?)")
        return
    finding = attributed(Finding(name, case, verdict, shrunk=False), implementation, supervisor, beyond=True,
                         deadline=time.monotonic() + SHRINK_SECONDS)
    found.findings.append(finding)
    found.notes.append(f"journal: an earlier run died while running {name} on {case.id}; "
                       f"re-checked in isolation, it fails there too [{verdict.kind}]")
