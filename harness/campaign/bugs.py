"""Which failures are bugs, and which bug: a failure a campaign sees is a new bug, the same
bug as one it knows (reached another way, or one of its symptoms), or not worth more
fuzzing; a bug found is attributed the features it needs, and one whose failure goes away
once another's features are set back is that other bug's symptom, not a bug of its own.

A bug's identity across runs and processes is its `Finding.key` (`BugKey`).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from harness.campaign.check import check_case
from harness.campaign.seeds import derive_seed
from harness.campaign.tallies import Tally
from harness.execute.supervisor import Supervisor
from harness.model.capabilities import refusal
from harness.model.case import Case
from harness.model.features import features, needed, without
from harness.model.finding import Finding
from harness.model.registry import Implementation
from harness.model.verdict import UNSUPPORTED, Verdict, core_signature

MAX_BUGS_PER_IMPLEMENTATION = 8  # past this, an implementation is broken enough to read
NONDETERMINISTIC_TRIES = 5
# With special data, where NaN and inf land depends on the shape: a feature set back moves
# them. So a failure on special data must pass without a feature on this many data seeds
# before that feature is named as needed (or before a known bug is said to explain it).
DATA_SEEDS = 4


def attributed(
    finding: Finding,
    implementation: Implementation,
    supervisor: Supervisor,
    beyond: bool = False,
    deadline: float = math.inf,
) -> Finding:
    """``finding`` with the features it needs, each found by re-checking its case without
    one of them (`features.needed`); or, when its own case passes when re-checked, marked
    as not reproducible and attributed to nothing. A case without a feature that is outside
    what the implementation declares is checked just outside it, where raising is right:
    there, a right answer shows the feature needed, and raising tells nothing. A feature
    it could not be tried without (it raised there; past ``deadline``, no time left) is
    kept as untried: whether it is needed is not known, and the report says so."""

    way = core_signature(finding.verdict.signature)

    def fails(case: Case) -> bool | None:
        if time.monotonic() > deadline:
            return None  # no time left to find out
        outside = beyond or refusal(implementation.capabilities, case) is not None
        # A nondeterministic call may give the same bits twice by chance: one pass
        # does not show that the feature is needed.
        tries = NONDETERMINISTIC_TRIES if finding.verdict.kind == "nondeterministic" else 1
        for _ in range(tries):
            verdict = check_case(case, [implementation], supervisor=supervisor, beyond=outside)[implementation.name]
            if verdict.status == UNSUPPORTED:
                return None  # it refused the case, as it may outside its declaration
            if verdict.failed and core_signature(verdict.signature) == way:
                return True
        return False

    def on_any_data(case: Case) -> bool | None:
        seen = [fails(other) for other in on_other_data(case)]
        return True if True in seen else None if None in seen else False

    if fails(finding.case) is False:
        return replace(finding, shrunk=False, reproducible=False)
    found = needed(finding.case, on_any_data)
    return replace(finding, needs=found.needs, untried=found.untried)


def on_other_data(case: Case) -> list[Case]:
    """``case``, and for special data the same problem on `DATA_SEEDS` - 1 other seeds."""
    if case.data != "special":
        return [case]
    return [case, *(replace(case, seed=derive_seed(case.seed, "data", i)) for i in range(1, DATA_SEEDS))]


def one_report_each(findings: list[Finding]) -> list[Finding]:
    """``findings`` with no failure both a bug of its own and another's symptom: a symptom
    that is the very same failure as another reported bug (`Verdict.failure`) is that bug's,
    and is left out of the other's "also seen as"."""

    def elsewhere(symptom: Finding, owner: Finding) -> bool:
        return any(
            other is not owner
            and other.implementation == owner.implementation
            and symptom.verdict.failure == other.verdict.failure
            for other in findings
        )

    return [
        replace(finding, symptoms=tuple(s for s in finding.symptoms if not elsewhere(s, finding)))
        for finding in findings
    ]


def with_symptom(cause: Finding, effect: Finding) -> Finding:
    """``cause``, with ``effect`` (and its own symptoms) among its symptoms."""
    return replace(cause, symptoms=(*cause.symptoms, replace(effect, symptoms=()), *effect.symptoms))


class KnownBugs:
    """The bugs of implementations fuzzed together, as the campaign finds them: each in
    ``findings`` (the campaign's, shared with other groups) and in `bugs` (this group's).
    Checks it makes to tell bugs apart go through ``supervisor``; ``beyond``: the cases are
    outside the implementations' declarations, where raising is right."""

    def __init__(
        self,
        members: dict[str, Implementation],
        findings: list[Finding],
        tallies: dict[str, Tally],
        supervisor: Supervisor,
        beyond: bool,
    ) -> None:
        self.members, self.findings, self.tallies = members, findings, tallies
        self.supervisor, self.beyond = supervisor, beyond
        # Shrunk and attributed: those found in an earlier pass over the same members too.
        self.bugs = [f for f in findings if f.implementation in members]

    def add(self, finding: Finding) -> None:
        self.bugs.append(finding)
        self.findings.append(finding)

    def attributed(self, finding: Finding, deadline: float) -> Finding:
        return attributed(finding, self.members[finding.implementation], self.supervisor, self.beyond, deadline)

    def record(self, finding: Finding) -> None:
        """Add a bug just found and attributed, unless it and known bugs are one: when one
        needs no feature the other does not, and the other's failure goes away once those
        features are set back, the one needing less is the cause (a minimal case may need
        more than its cause does), reported with the others as its symptoms. A timeout
        that did not happen again when its case was checked again is no bug: on a busy
        machine a correct call can run past its limit. It is counted as slow instead."""
        if finding.verdict.kind == "timeout" and not finding.reproducible:
            self.tallies[finding.implementation].slow += 1
            return
        mine = [bug for bug in self.bugs if bug.implementation == finding.implementation and bug.reproducible]
        if finding.reproducible:
            for bug in mine:
                if bug.needs <= finding.needs and self._gone_without(finding, bug.needs):
                    self._replace(bug, with_symptom(bug, finding))
                    return
            for bug in mine:
                if finding.needs < bug.needs and self._gone_without(bug, finding.needs):
                    finding = with_symptom(finding, bug)
                    for findings in (self.bugs, self.findings):
                        findings.remove(bug)
        self.add(finding)

    def is_new(
        self, name: str, verdict: Verdict, case: Case, checked: dict[tuple[object, str], bool] | None = None
    ) -> bool:
        """A failure no known bug of ``name`` explains, while ``name`` is still worth fuzzing.

        A known bug explains the very same failure (`Verdict.failure`) wherever it happens.
        Known bugs explain a failure on a case holding their features when it goes away
        without them (`_gone_without`): one bug's features (and a failure that one bug
        explains though it fails another way is recorded as that bug's symptom), or, for
        a case holding the features of several, all of theirs together. Only a bug that
        needs nothing cannot be checked that way: it explains what fails its way. Each
        check is made once per drawn case (``checked``: variants differ in data and
        layout only)."""
        if not verdict.failed:
            return False
        mine = [bug for bug in self.bugs if bug.implementation == name]
        if len(mine) >= MAX_BUGS_PER_IMPLEMENTATION:
            return False
        if any(not bug.needs and bug.explains(verdict, case) for bug in mine):
            return False
        failure = Finding(name, case, verdict, shrunk=False)
        for bug in mine:
            # The very same failure (an exception's type, place and message, its numbers and
            # shapes aside: `template`; a fixed-text one) on a case lacking what the bug
            # needs: the same bug reached another way, listed once under it.
            if bug.verdict.failure == verdict.failure:
                listed = any(s.verdict.failure == verdict.failure for s in bug.symptoms)
                if not bug.needs <= features(case) and not listed:
                    self._replace(bug, with_symptom(bug, failure))
                return False
        checked = {} if checked is None else checked
        way = core_signature(verdict.signature)

        def gone_without(key: object, names: frozenset[str]) -> bool:
            if (key, way) not in checked:
                checked[key, way] = self._gone_without(failure, names)
            return checked[key, way]

        held = [bug for bug in mine if bug.reproducible and bug.needs and bug.needs <= features(case)]
        for bug in held:
            if gone_without(id(bug), bug.needs):
                if way not in bug.ways:
                    self._replace(bug, with_symptom(bug, failure))
                return False
        together = frozenset().union(*(bug.needs for bug in held))
        return len(held) < 2 or not gone_without("together", together)

    def _gone_without(self, finding: Finding, names: frozenset[str]) -> bool:
        """Whether ``finding``'s failure goes away once its case lacks the features ``names``
        (on every data seed tried, for special data; just outside the declaration where
        that case is outside it, and the implementation does not refuse it)."""
        if not names <= features(finding.case):
            return False
        implementation = self.members[finding.implementation]
        simpler = without(finding.case, names)
        if simpler.problems():
            return False
        # Outside the declaration, checked just outside it: raising there tells nothing.
        outside = self.beyond or refusal(implementation.capabilities, simpler) is not None
        way = core_signature(finding.verdict.signature)
        for other in on_other_data(simpler):
            verdict = check_case(other, [implementation], supervisor=self.supervisor, beyond=outside)
            mine = verdict[implementation.name]
            if mine.status == UNSUPPORTED or core_signature(mine.signature) == way:
                return False
        return True

    def _replace(self, old: Finding, new: Finding) -> None:
        for findings in (self.bugs, self.findings):
            findings[:] = [new if finding is old else finding for finding in findings]
