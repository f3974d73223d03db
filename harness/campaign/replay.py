"""Replay saved cases against implementations and say whether each result is as expected.

Every case is run against every implementation replayed: a corpus case is a plain conv2d
problem, whoever it was found with. Expectations: an implementation that claims
correctness passes every case (or declares it unsupported); a known-buggy one may fail.
A case recorded against the implementation (by `registry.identity`, however its path is
spelled now) is "still failing" if it fails the same way, "fixed" once it does not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.campaign.check import check_case
from harness.execute.journal import Journal
from harness.execute.process_state import one_thread
from harness.execute.runner import time_limits
from harness.execute.supervisor import Supervisor
from harness.model.case import Case
from harness.model.finding import Finding, identity
from harness.model.registry import Implementation
from harness.model.text import clipped
from harness.model.verdict import EXPECTED, Verdict
from harness.store.corpus import Corpus, ShapeSet

STILL_FAILING, FIXED = "still failing", "fixed"


@dataclass(frozen=True)
class Target:
    """One case to replay, where it came from, and the failure recorded with it, if any."""

    source: str
    case: Case
    entry: Finding | None = None


@dataclass(frozen=True)
class Row:
    target: Target
    implementation: str
    verdict: Verdict
    outcome: str
    expected: bool


def targets_from(corpus: Corpus, batch: int = 1) -> list[Target]:
    """Failures as recorded; shape sets at batch ``batch``, as benchdnn replays its batch files."""
    targets = [Target(str(path), entry.case, entry) for path, entry in corpus.entries]
    for path, shape_set in corpus.shape_sets:
        targets += shape_targets(str(path), shape_set, batch)
    return targets


def shape_targets(source: str, shape_set: ShapeSet, batch: int = 1) -> list[Target]:
    """A shape set's layers as cases to replay, at batch ``batch``."""
    return [Target(f"{source} ({shape_set.name})", replace(case, batch=batch)) for case in shape_set.cases]


def judge_row(target: Target, implementation: Implementation, verdict: Verdict) -> Row:
    entry = target.entry
    recorded = entry is not None and identity(entry.implementation) == identity(implementation.name)
    if verdict.status == EXPECTED:  # declared since it was recorded, or never recorded
        return Row(target, implementation.name, verdict, EXPECTED, True)
    if recorded and not verdict.failed:
        return Row(target, implementation.name, verdict, FIXED, True)
    if recorded and entry is not None and verdict.signature == entry.verdict.signature:
        outcome = STILL_FAILING
    elif verdict.failed:
        outcome = f"failed ({verdict.kind})"
    else:
        outcome = verdict.status
    return Row(target, implementation.name, verdict, outcome, implementation.known_buggy or not verdict.failed)


def check_target(
    target: Target, implementations: list[Implementation], supervisor: Supervisor | None = None
) -> dict[str, Verdict]:
    """Outside a declaration the rule is raise or be right, in replay as in the campaign."""
    return check_case(target.case, implementations, supervisor=supervisor, beyond=True)


def replay(
    targets: Iterable[Target],
    implementations: list[Implementation],
    journals: Path | None = None,
    isolate: bool = False,
) -> list[Row]:
    """Each target against each implementation, every call under its time limit, as in
    the campaign; with ``journals``, each call is journalled there (`harness.execute.journal`);
    with ``isolate``, each implementation is called in a child process (--isolate)."""
    one_thread()
    rows = []
    supervisor = Supervisor(isolate, journal=None if journals is None else Journal(journals))
    try:
        with time_limits():
            for target in targets:
                verdicts = check_target(target, implementations, supervisor)
                rows += [judge_row(target, i, verdicts[i.name]) for i in implementations]
    finally:
        supervisor.close()
    return rows


def absent(corpus: Corpus, implementations: list[Implementation]) -> list[str]:
    """A note for each implementation the corpus has cases of that this replay does not
    run: its cases are run against the others all the same."""
    replayed = {identity(implementation.name) for implementation in implementations}
    recorded = Counter(identity(entry.implementation) for _, entry in corpus.entries)
    return [
        f"{count} case(s) recorded against {clipped(name)!r}, which this replay does not run; "
        "they are run against the others"
        for name, count in sorted(recorded.items())
        if name not in replayed
    ]
