"""Calls an earlier run died in, checked before anything is blamed on them.

A journal left behind (`harness.execute.journal`) says what was running when a process died. That
is a lead, not a verdict: an outside kill (SIGKILL, the OOM killer, a CI timeout) leaves
the same journal as a segfault, and is no evidence against the code that happened to be
running. So each such call is made again, isolated in a child process: if it fails there
(a crash, or anything else), that failure is a finding like any other, attributed in
isolation; if it passes, the earlier death was not its doing and nothing is saved.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from harness.campaign.bugs import attributed
from harness.campaign.check import check_case
from harness.campaign.engine import SHRINK_SECONDS
from harness.execute.journal import Orphan
from harness.execute.supervisor import Supervisor
from harness.model.finding import Finding, identity
from harness.model.registry import Implementation
from harness.model.text import clipped, one_line


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
        # The name as the journal has it: any text at all, kept on its line.
        named = one_line(clipped(orphan.implementation))
        died = f"journal: an earlier run died while running {named} on {orphan.case.id}"
        if implementation is not None:
            names.add(implementation.name)
            notes.append(
                f"{died}; {implementation.name} runs isolated this time, and that case is re-checked at the end"
            )
        else:
            notes.append(f"{died}; it is not part of this run, so the journal is kept for a run that includes it")
    return names, notes


def rescue(orphans: list[Orphan], implementations: dict[str, Implementation], deadline: float | None = None) -> Rescue:
    """Re-check, isolated, each call an earlier run died in, and forget its journal (a
    journal naming an implementation this run does not have is kept for one that does).
    Past ``deadline`` (the campaign's ``--max-seconds``) nothing more is re-checked: those
    journals are kept for the next run, a line said for each."""
    found = Rescue()
    supervisor = Supervisor(isolate=True)
    try:
        for orphan in orphans:
            implementation = _named(orphan, implementations)
            if orphan.case is not None and implementation is None:
                continue
            if implementation is not None:
                assert orphan.case is not None  # `_named` names one for a journal with a case only
                if deadline is not None and time.monotonic() >= deadline:
                    found.notes.append(
                        f"journal: no time left to re-check {implementation.name} on {orphan.case.id} "
                        "(--max-seconds); the journal is kept for the next run"
                    )
                    continue
                _recheck(orphan, implementation, supervisor, found, deadline)
            orphan.path.unlink(missing_ok=True)  # died outside any call: nothing to check
    finally:
        supervisor.close()
    return found


def _named(orphan: Orphan, implementations: dict[str, Implementation]) -> Implementation | None:
    """The implementation of this run the journal names, however its path was spelled."""
    wanted = identity(orphan.implementation)
    return next((i for i in implementations.values() if orphan.case and identity(i.name) == wanted), None)


def _recheck(
    orphan: Orphan, implementation: Implementation, supervisor: Supervisor, found: Rescue, deadline: float | None
) -> None:
    assert orphan.case is not None
    name, case = implementation.name, orphan.case
    verdict = check_case(case, [implementation], supervisor=supervisor, beyond=True)[name]
    if not verdict.failed:
        found.notes.append(
            f"journal: an earlier run was killed while running {name} on {case.id}; "
            "it passes in isolation, so nothing is saved (killed from outside?)"
        )
        return
    finding = attributed(
        Finding(name, case, verdict, shrunk=False),
        implementation,
        supervisor,
        beyond=True,
        deadline=min(time.monotonic() + SHRINK_SECONDS, math.inf if deadline is None else deadline),
    )
    found.findings.append(finding)
    found.notes.append(
        f"journal: an earlier run died while running {name} on {case.id}; "
        f"re-checked in isolation, it fails there too [{verdict.kind}]"
    )
