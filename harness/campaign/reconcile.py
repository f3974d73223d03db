"""Bugs found by separate shards, told apart as one campaign would have told them.

Each shard of a campaign (a worker's, a cluster's) tells its own bugs apart
(`harness.campaign.bugs.KnownBugs`), but never sees another shard's: two shards may each
report one failure of one cause, another way each (a wrong shape where the stride misses
the rows' count, wrong values where it does not). Merging their results makes one report
of the very same failure (`harness.backends.base.one_per_bug`); a failure another way needs
the check one campaign makes, which calls the implementation: does it go away once the
other bug's features are set back? Made here, at the end, in a child process per
implementation (one that crashes must not take the campaign's report with it), and only
between bugs that could be one: of one implementation, one needing features, none that
the other does not.
"""

from __future__ import annotations

from harness.campaign.bugs import KnownBugs, one_report_each
from harness.campaign.tallies import Tally
from harness.execute.supervisor import Supervisor
from harness.model.finding import Finding, size
from harness.model.registry import Implementation


def could_be_one(findings: list[Finding]) -> bool:
    """Whether two of ``findings`` (settled: reproducible, and not kept from an interrupted
    run, whose features were not checked) could be one bug: one needs some features and no
    feature the other does not. (A bug needing nothing cannot be checked that way: set
    back, nothing changes.)"""
    settled = [f for f in findings if f.settled]
    return any(one is not other and one.needs and one.needs <= other.needs for one in settled for other in settled)


def reconciled(findings: list[Finding], implementations: dict[str, Implementation]) -> list[Finding]:
    """``findings`` of separate shards with each failure that goes away once another bug's
    features are set back listed under that bug, as `KnownBugs.record` lists one found
    later in one campaign (the bugs needing least recorded first). Only the settled
    findings of an implementation with two that `could_be_one` are checked; the others
    stay as they are. Each implementation's bugs stay where its first one was."""
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding.implementation, []).append(finding)
    checked = [name for name, group in groups.items() if name in implementations and could_be_one(group)]
    if not checked:
        return findings
    supervisor = Supervisor(isolate=True)
    try:
        bugs = KnownBugs(implementations, [], {name: Tally() for name in checked}, supervisor, beyond=False)
        for name in checked:
            settled = sorted((f for f in groups[name] if f.settled), key=lambda f: (len(f.needs), size(f.case)))
            for finding in settled:
                bugs.record(finding)
            groups[name] = [f for f in bugs.findings if f.implementation == name]
            groups[name] += [f for f in findings if f.implementation == name and not f.settled]
    finally:
        supervisor.close()
    return one_report_each([finding for group in groups.values() for finding in group])
