"""A failure found: the one record of it that the campaign, the corpus, reports, replay and
repro scripts all use, and the one key that says which bug it is.

A `Finding` is plain data: which implementation, the (minimal) case, the verdict, the
features the failure needs, whether it was shrunk and did fail again, the other ways the
same bug was seen, and where and when it was found. It is turned into JSON only at the
edges: a corpus file (`harness.store.corpus`) and a report (`harness.reporting.report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from harness.model.case import Case
from harness.model.features import SIMPLEST, describe, features
from harness.model.verdict import Verdict, core_signature


def identity(name: str) -> str:
    """The name an implementation goes by across runs and machines (in a corpus, say):
    a FILE.py:FUNCTION is its file's name and the function, however the path was spelled
    (absolute, ./x.py, from another folder) and wherever the file lives; any other name is
    itself. (Two different files both called conv.py defining conv2d are one name.)"""
    target, colon, attribute = name.rpartition(":")
    if colon and target.endswith(".py"):
        return f"{Path(target).name}:{attribute}"
    return name


class BugKey(NamedTuple):
    """Which bug a finding is, the same everywhere: the implementation (its `identity`),
    how it fails (the verdict's signature), and the features it needs, sorted; whatever case
    shows it. A tuple: it travels between processes as one, and as JSON it is the list a
    corpus file's name is a hash of (`harness.store.corpus`)."""

    implementation: str
    signature: str
    needs: tuple[str, ...]


class BugTag(NamedTuple):
    """What a campaign's progress tells of a bug found so far, enough to count bugs across
    shards as the final table does (`harness.backends.base.one_per_bug`): its `key`, how it
    failed (`Verdict.failure`), its case's `size`, and whether it is settled (reproducible,
    and not kept as it stood when its run was interrupted)."""

    key: BugKey
    failure: str
    size: tuple[int, ...]
    settled: bool


@dataclass(frozen=True)
class Finding:
    """A failure: which implementation, the (minimal) case, the verdict, what it needs."""

    implementation: str
    case: Case
    verdict: Verdict
    shrunk: bool = True
    needs: frozenset[str] = frozenset()
    reproducible: bool = True  # failed again when its case was re-run on its own
    # Other failures with the same cause: each on a case that passes once this bug's
    # features are set back (a values bug's NaN pattern, its shape failure elsewhere...).
    symptoms: tuple[Finding, ...] = ()
    # Where and when it was found (torch, Python and harness versions, date, campaign seed),
    # where anyone said: what a corpus file keeps beside the failure.
    found: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The features it could not be tried without (`features.needed`): whether it needs them
    # is not known. All of the case's, for a failure kept as it was seen when a run was
    # interrupted, before anything was checked.
    untried: frozenset[str] = frozenset()

    @property
    def key(self) -> BugKey:
        """Which bug this is, the same everywhere, whatever case shows it."""
        return BugKey(identity(self.implementation), self.verdict.signature, tuple(sorted(self.needs)))

    @cached_property
    def tag(self) -> BugTag:
        """Made once per finding (a finding never changes; `replace` makes a new one): the
        campaign says its bugs' tags after every case it draws."""
        return BugTag(self.key, self.verdict.failure, size(self.case), self.settled)

    @property
    def settled(self) -> bool:
        """Reproducible, and not kept as it stood when its run was interrupted: what it needs
        was checked."""
        return self.reproducible and not self.interrupted

    @property
    def diagnosis(self) -> str:
        if not self.reproducible:
            # Nothing can be attributed to a failure that does not happen again.
            return (
                f"{self.verdict.message}; failed once, then passed when its case was re-run: "
                "flaky, or it depends on earlier calls"
            )
        if self.interrupted:
            shrunk = "shrunk, then interrupted" if self.shrunk else "not shrunk, interrupted"
            return f"{self.verdict.message}; {shrunk}: what it needs was not checked"
        said = describe(self.needs, self.untried, self.also_without)
        if not self.shrunk and said == SIMPLEST:
            return f"{self.verdict.message}; not shrunk, and no feature found that it needs"
        return f"{self.verdict.message}; {said}"

    @property
    def also_without(self) -> frozenset[str]:
        """Features its minimal case needs that a case listed under it lacks, failing the same
        way all the same: needed here, but not its only trigger (an "A or B" cause, such as a
        shape mismatch that a kernel or the groups can each bring about)."""
        return frozenset().union(*(self.needs - features(symptom.case) for symptom in self.symptoms))

    @property
    def interrupted(self) -> bool:
        """Kept as it stood when its run was interrupted, nothing about what it needs checked:
        not shrunk, or shrunk and then stopped while being attributed. A later run that finds
        it whole takes its place (`harness.store.corpus`)."""
        return bool(self.untried) and self.untried == features(self.case)

    @property
    def ways(self) -> frozenset[str]:
        """How this bug fails: its own signature and its symptoms', wherever they happened."""
        return frozenset(core_signature(f.verdict.signature) for f in (self, *self.symptoms))

    def explains(self, verdict: Verdict, case: Case) -> bool:
        """Could ``verdict`` on ``case`` be this bug, failing the way it (or one of its known
        symptoms) does? Not if the case lacks what it needs."""
        return core_signature(verdict.signature) in self.ways and self.needs <= features(case)


def size(case: Case) -> tuple[int, ...]:
    """Order cases by how much there is to read: elements first, then the id's length."""
    numel = 1
    for dim in case.input_shape:
        numel *= dim
    weight = 1
    for dim in case.weight_shape:
        weight *= dim
    return (numel + weight, len(case.id), case.seed)
