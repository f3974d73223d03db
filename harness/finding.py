"""A failure found: the one record of it that the campaign, the corpus, reports, replay and
repro scripts all use, and the one key that says which bug it is.

A `Finding` is plain data: which implementation, the (minimal) case, the verdict, the
features the failure needs, whether it was shrunk and did fail again, the other ways the
same bug was seen, and where and when it was found. It is turned into JSON only at the
edges: a corpus file (`harness.corpus`) and a report (`harness.report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.case import Case
from harness.features import describe, features
from harness.verdict import Verdict, core_signature


def identity(name: str) -> str:
    """The name an implementation goes by across runs and machines (in a corpus, say):
    a FILE.py:FUNCTION is its file's name and the function, however the path was spelled
    (absolute, ./x.py, from another folder) and wherever the file lives; any other name is
    itself. (Two different files both called conv.py defining conv2d are one name.)"""
    target, colon, attribute = name.rpartition(":")
    if colon and target.endswith(".py"):
        return f"{Path(target).name}:{attribute}"
    return name


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

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """Which bug this is, the same everywhere: the implementation (its `identity`),
        how it fails, and what it needs; whatever case shows it."""
        return identity(self.implementation), self.verdict.signature, tuple(sorted(self.needs))

    @property
    def diagnosis(self) -> str:
        if not self.reproducible:
            # Nothing can be attributed to a failure that does not happen again.
            return (f"{self.verdict.message}; failed once, then passed when its case was re-run: "
                    "flaky, or it depends on earlier calls")
        return f"{self.verdict.message}; {describe(self.needs)}"

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
