"""The fuzz campaign: explore with Hypothesis, shrink each distinct bug, keep going.

Implementations that declare the same capabilities are fuzzed together: each case
Hypothesis draws is checked against all of them, so the per-example overhead and the
reference are paid once per case, not once per check.

A campaign over one group is a series of Hypothesis runs. A run explores until some
implementation fails with a signature not seen before; from then on the run's test fails
only for that (implementation, signature), so Hypothesis shrinks that bug and no other.
The next run starts where the budget left off, with that signature known, so one bug does
not hide the next and distinct bugs of one implementation are each shrunk and reported.

A group that declares less than everything then gets a shorter campaign just outside its
declaration, one declared limit lifted at a time: there each implementation must raise or
be right, and the bugs already found inside count as known.
"""

from __future__ import annotations

import functools
import math
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from harness.capabilities import Capabilities, refusal, widenings
from harness.capture import holding
from harness.case import DATA_KINDS, Case
from harness.check import check_case, check_prepared
from harness.conditions import met
from harness.features import features, needed, without
from harness.finding import Finding
from harness.noise import Heard
from harness.oracle import Expected, expect
from harness.process_state import one_thread
from harness.registry import Implementation
from harness.runner import time_limits, user_interrupts
from harness.strategies import cases
from harness.supervisor import Supervisor
from harness.support import full_domain, runnable
from harness.tensors import Inputs, keeps_values, make_inputs
from harness.verdict import EXPECTED, PASSED, SKIPPED, Verdict, core_signature

MAX_BUGS_PER_IMPLEMENTATION = 8  # past this, an implementation is broken enough to read
# Shrinking and attributing one bug stops after this long: a hang costs a time limit per
# step, and a case that is not minimal is better than a campaign that never ends.
SHRINK_SECONDS = 30.0
NONDETERMINISTIC_TRIES = 5
# A second call and a backward pass cost more than a check: made on one variant in this many
# draws while exploring (measured, benchmarks/throughput.py: on one variant of every draw
# they took 15% of the campaign's time).
THOROUGH_EVERY = 3
# An implementation that declares less than everything gets this much less again, just
# outside its declaration (`capabilities.widenings`), to show it raises or is right there.
BEYOND_SHARE = 4
# With special data, where NaN and inf land depends on the shape: a feature set back moves
# them. So a failure on special data must pass without a feature on this many data seeds
# before that feature is named as needed (or before a known bug is said to explain it).
DATA_SEEDS = 4
# A bug seen on a draw where another was shrunk gets a run of its own, of at most this many
# draws, to be found again and shrunk.
TARGETED_DRAWS = 200


@dataclass
class Tally:
    """How many cases were checked against one implementation, by status, and how often
    each dimension of the domain was reached (`coverage`: the features, each dtype, layout,
    data kind and device, and "thorough" for the variants chosen for a second call and a
    gradient check, made where the first call passed); and how many checks warned or wrote
    to stderr or stdout, with the first things said (`heard`)."""

    examples: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    coverage: Counter[str] = field(default_factory=Counter)
    heard: Heard = field(default_factory=Heard)
    # For each declared known disagreement (by its index): the checks inside the declaration
    # that met its ``when`` ("reached"), those that disagreed as declared ("happened"), and
    # the first case that did.
    expectations: Counter[tuple[int, str]] = field(default_factory=Counter)
    disagreed: dict[int, str] = field(default_factory=dict)


@dataclass
class CampaignResult:
    seed: int
    tallies: dict[str, Tally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C: the findings so far are all here
    incomplete: list[str] = field(default_factory=list)  # why some promised cases were never checked


# (cases checked so far, cases planned, the bugs found so far by their `Finding.key`)
Progress = Callable[[int, int, frozenset[tuple[str, str, tuple[str, ...]]]], None]


SKIPPED_VERDICT = Verdict(SKIPPED, message="quarantined: it crashed, hung or ran out of memory repeatedly")


def check_variants(case: Case, domain: Capabilities, implementations: Iterable[Implementation],
                   supervisor: Supervisor, exploring: bool = False, beyond: bool = False
                   ) -> Iterator[tuple[Case, dict[str, Verdict], bool]]:
    """The drawn case with every data kind in every memory layout of the domain, simplest
    first, then (a batched case) with an empty batch.

    Checking them all costs no Hypothesis draws, and the data and the reference are made
    once per data kind for all the layouts that keep the values: this is what amortises
    Hypothesis's per-example overhead. A failing variant shrinks along with the drawn
    case, and the first one to fail is the simplest. While ``exploring``, the second call
    and gradient check (`check_prepared`'s ``thorough``) are made on one variant of one
    draw in `THOROUGH_EVERY`, and an implementation quarantined for crashing or hanging is
    reported as skipped from the next call on. Yields each variant, its verdicts, and
    whether they were thorough.
    """
    implementations = list(implementations)
    # Chosen by a hash of the whole case: Hypothesis's simplest draws (seed 0, no bias, ...)
    # come often, and a choice by the seed alone would pick them. With uniform data: special
    # values get no gradient check, and integer sums come out the same in any order.
    pick = derive_seed(case.id)
    thorough = ("uniform", domain.layouts[pick // THOROUGH_EVERY % len(domain.layouts)]) \
        if pick % THOROUGH_EVERY == 0 else None

    def check(variant: Case, own: Inputs, reference: Expected, deep: bool) -> tuple[Case, dict[str, Verdict], bool]:
        quarantined = {i.name for i in implementations if exploring and supervisor.quarantined(i.name)}
        active = [i for i in implementations if i.name not in quarantined]
        verdicts = check_prepared(variant, active, lambda: own.in_layout(variant.layout), own, reference,
                                  supervisor, thorough=deep, beyond=beyond, watched=not exploring)
        return variant, {**verdicts, **dict.fromkeys(quarantined, SKIPPED_VERDICT)}, deep

    def variants() -> Iterator[tuple[Case, dict[str, Verdict], bool]]:
        for data in DATA_KINDS:
            base = replace(case, data=data, layout="contiguous")
            pristine = make_inputs(base)
            expected = expect(base, pristine)
            for layout in domain.layouts:
                variant = replace(base, layout=layout)
                laid = pristine.in_layout(layout)
                own, reference = (pristine, expected) if keeps_values(layout) else (laid, expect(variant, laid))
                yield check(variant, own, reference, not exploring or (data, layout) == thorough)
        if case.batch:
            # The same problem with an empty batch costs next to nothing, and drawing batch 0
            # often would spend draws on cases with nothing else to see: it is a variant.
            empty = replace(case, batch=0, data="uniform", layout=domain.layouts[0])
            pristine = make_inputs(empty)
            yield check(empty, pristine, expect(empty, pristine), False)

    if not exploring:  # shrinking stops at the first variant that fails its way
        yield from variants()
        return
    # Exploring takes every variant: the shared state is checked once for all of them, and
    # if a call changed it, every variant is checked again, call by call (`Supervisor.watched`).
    yield from supervisor.watched(lambda: list(variants()))


def attributed(finding: Finding, implementation: Implementation, supervisor: Supervisor,
               beyond: bool = False, deadline: float = math.inf) -> Finding:
    """``finding`` with the features it needs, each found by re-checking its case without
    one of them (`features.needed`); or, when its own case passes when re-checked, marked
    as not reproducible and attributed to nothing. Past ``deadline`` a feature is assumed
    not needed: no time left to find out."""
    def fails(case: Case) -> bool:
        if time.monotonic() > deadline:
            return True  # no time left to find out: assume the feature is not needed
        # A nondeterministic call may give the same bits twice by chance: one pass
        # does not show that the feature is needed.
        tries = NONDETERMINISTIC_TRIES if finding.verdict.kind == "nondeterministic" else 1
        for _ in range(tries):
            verdict = check_case(case, [implementation], supervisor=supervisor, beyond=beyond)[implementation.name]
            if verdict.failed and verdict.signature == finding.verdict.signature:
                return True
        return False

    def allowed(case: Case) -> bool:
        return beyond or refusal(implementation.capabilities, case) is None

    if not fails(finding.case):
        return replace(finding, shrunk=False, reproducible=False)
    return replace(finding, needs=needed(finding.case, lambda case: any(map(fails, on_other_data(case))), allowed))


def on_other_data(case: Case) -> list[Case]:
    """``case``, and for special data the same problem on `DATA_SEEDS` - 1 other seeds."""
    if case.data != "special":
        return [case]
    return [case, *(replace(case, seed=derive_seed(case.seed, "data", i)) for i in range(1, DATA_SEEDS))]


def reached(declared: Capabilities, case: Case) -> list[int]:
    """The known disagreements ``declared`` (by index) whose ``when`` ``case`` meets, where
    the case is inside the declaration and has an output to disagree on (not an empty
    batch): those it could show, or show gone."""
    if not declared.expected or refusal(declared, case) is not None or 0 in case.output_shape:
        return []
    return [index for index, entry in enumerate(declared.expected) if met(case, entry.when)]


def explained(finding: Finding, others: Iterable[Finding]) -> bool:
    """Whether another finding of the same implementation is the same bug as ``finding``."""
    return any(other is not finding and other.implementation == finding.implementation
               and other.explains(finding.verdict, finding.case) for other in others)


def coverage(case: Case) -> set[str]:
    """The dimensions ``case`` exercises, for the campaign's coverage summary: its features,
    and its dtype, layout, data kind and device even where they are the simplest."""
    return {*features(case), f"dtype={case.dtype}", f"layout={case.layout}", f"data={case.data}",
            f"device={case.device}"}


class _Reproduced(Exception):
    """Raised inside the Hypothesis test when the targeted bug shows; never escapes."""


def group_by_domain(implementations: Iterable[Implementation]) -> dict[Capabilities, list[Implementation]]:
    """Implementations that claim the same cases, whatever else they declare: each is still
    judged its own way (autograd, and the rounding bound of its algorithm)."""
    groups: dict[Capabilities, list[Implementation]] = {}
    for implementation in implementations:
        groups.setdefault(implementation.capabilities.domain(), []).append(implementation)
    return groups


def derive_seed(*parts: object) -> int:
    """A stable seed for a sub-run: crc32, the same in every process (unlike hash())."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def fuzz(implementations: Iterable[Implementation], max_examples: int, seed: int | None = None,
         progress: Progress | None = None, supervisor: Supervisor | None = None,
         max_seconds: float | None = None) -> CampaignResult:
    """Fuzz every implementation inside its declared domain with ``max_examples`` cases each,
    then one that declares less than everything with a further ``max_examples //
    BEYOND_SHARE`` cases just outside it (one declared limit lifted at a time), where it
    must raise or be right.

    With ``max_seconds`` exploring stops when the time is up (each pass gets an equal share
    of what is left); the bug being shrunk then is still finished, within
    `SHRINK_SECONDS`. Ctrl-C stops the campaign cleanly: the result then holds everything
    found so far and says it was interrupted.
    """
    one_thread()
    supervisor = Supervisor() if supervisor is None else supervisor  # quarantines are per campaign
    result = CampaignResult(seed=random.getrandbits(32) if seed is None else seed)
    end = None if max_seconds is None else time.monotonic() + max_seconds
    passes = _passes(implementations, max_examples)
    planned, before = sum(budget for *_, budget in passes), 0
    for group, *_ in passes:
        shared: Counter[str] = Counter()  # every member of a group sees every case
        for member in group:
            result.tallies.setdefault(member.name, Tally(coverage=shared))

    def progressed(examples: int) -> None:
        if progress is not None:
            progress(min(before + examples, planned), planned, frozenset(f.key for f in result.findings))

    try:
        with user_interrupts(), time_limits(), holding():
            for index, (group, domains, beyond, budget) in enumerate(passes):
                share = None if end is None else time.monotonic() + (end - time.monotonic()) / (len(passes) - index)
                _Group(group, domains, result, budget, progressed, supervisor, share, beyond).run()
                before += budget
                progressed(0)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def planned_cases(implementations: Iterable[Implementation], max_examples: int) -> int:
    """How many cases `fuzz` plans to draw for these implementations: one figure for all the
    implementations of a group, which are checked on the same cases."""
    return sum(budget for *_, budget in _passes(implementations, max_examples))


def _passes(implementations: Iterable[Implementation], max_examples: int
            ) -> list[tuple[list[Implementation], list[Capabilities], bool, int]]:
    """The campaign's passes: for each group of implementations that claim the same cases,
    its domain with ``max_examples`` cases, then, where it declares less than everything,
    just outside it with fewer."""
    everything = full_domain()
    passes: list[tuple[list[Implementation], list[Capabilities], bool, int]] = []
    for domain, group in group_by_domain(implementations).items():
        here = runnable(domain)
        if here is not None:
            passes.append((group, [here], False, max_examples))
        outside = widenings(here or domain, everything)
        if outside:
            passes.append((group, outside, True, max(1, max_examples // BEYOND_SHARE)))
    return passes


def _numbered(index: int, case: Case) -> tuple[int, Case]:
    return index, case


@dataclass
class _Target:
    """The bug a run is shrinking: as it was first seen, and its smallest case so far."""

    bug: Finding
    smallest: Finding


class _OutOfTime(Exception):
    """Raised inside the Hypothesis test when the group's time is up; never escapes."""


class _Group:
    """Implementations fuzzed together, run after run until the budget is spent: in their
    declared domain, or (``beyond``) just outside it, where they must raise or be right."""

    def __init__(self, members: list[Implementation], domains: list[Capabilities], result: CampaignResult,
                 budget: int, progress: Callable[[int], None], supervisor: Supervisor,
                 deadline: float | None = None, beyond: bool = False) -> None:
        self.supervisor, self.deadline, self.beyond = supervisor, deadline, beyond
        self.members = {m.name: m for m in members}
        self.domains = domains  # each draw picks one, then a case in it
        self.result, self.budget, self.progress = result, budget, progress
        self.examples = 0
        # Shrunk and attributed: those found in an earlier pass over the same members too.
        self.bugs = [f for f in result.findings if f.implementation in self.members]
        self.incidental: dict[tuple[str, str], Finding] = {}  # seen while shrinking another
        self.target: _Target | None = None  # the bug being shrunk
        self.shrink_deadline = 0.0
        self.coverage = result.tallies[members[0].name].coverage

    def run(self) -> None:
        attempt = 0
        try:
            while self.examples < self.budget:
                # Seeded by what is drawn, not by who is checked: the same command draws the
                # same cases on any machine, whatever the paths of plugin files there.
                found = self._one_run(derive_seed(self.result.seed, repr(self.domains), attempt))
                if found is None:
                    break
                self._record(self._attributed(found))
                attempt += 1
        except KeyboardInterrupt:
            # Keep everything as it stands: the bug being shrunk, and those seen meanwhile.
            for finding in [*([self.target.smallest] if self.target else []), *self.incidental.values()]:
                self._add(replace(finding, shrunk=False))
            raise
        # Bugs seen beside another, and not found again since: each gets a run of its own
        # to be found again and shrunk (or, not found again, is kept as it was seen).
        for key, finding in list(self.incidental.items()):
            if not self._is_new(finding.implementation, finding.verdict, finding.case):
                continue
            # Seeded by the case and how it failed, not by who failed: see `run`.
            again = self._one_run(derive_seed(self.result.seed, repr(self.domains), "again", finding.case.id,
                                              finding.verdict.signature), key)
            self.shrink_deadline = time.monotonic() + SHRINK_SECONDS
            self._record(self._attributed(again or finding))

    def _add(self, finding: Finding) -> None:
        self.bugs.append(finding)
        self.result.findings.append(finding)

    def _record(self, finding: Finding) -> None:
        """Add a bug just found and attributed, unless it and known bugs are one: when one
        needs no feature the other does not, and the other's failure goes away once those
        features are set back, the one needing less is the cause (a minimal case may need
        more than its cause does), reported with the others as its symptoms."""
        mine = [bug for bug in self.bugs if bug.implementation == finding.implementation and bug.reproducible]
        if finding.reproducible:
            for bug in mine:
                if bug.needs <= finding.needs and self._gone_without(finding, bug.needs):
                    self._replace(bug, self._with_symptom(bug, finding))
                    return
            for bug in mine:
                if finding.needs < bug.needs and self._gone_without(bug, finding.needs):
                    finding = self._with_symptom(finding, bug)
                    for findings in (self.bugs, self.result.findings):
                        findings.remove(bug)
        self._add(finding)

    @staticmethod
    def _with_symptom(cause: Finding, effect: Finding) -> Finding:
        return replace(cause, symptoms=(*cause.symptoms, replace(effect, symptoms=()), *effect.symptoms))

    def _gone_without(self, finding: Finding, names: frozenset[str]) -> bool:
        """Whether ``finding``'s failure goes away once its case lacks the features ``names``
        (on every data seed tried, for special data)."""
        if not names <= features(finding.case):
            return False
        implementation = self.members[finding.implementation]
        simpler = without(finding.case, names)
        if simpler.problems() or (not self.beyond and refusal(implementation.capabilities, simpler)):
            return False
        way = core_signature(finding.verdict.signature)
        for other in on_other_data(simpler):
            verdict = check_case(other, [implementation], supervisor=self.supervisor, beyond=self.beyond)
            if core_signature(verdict[implementation.name].signature) == way:
                return False
        return True

    def _attributed(self, finding: Finding) -> Finding:
        return attributed(finding, self.members[finding.implementation], self.supervisor, self.beyond,
                          self.shrink_deadline)

    def _is_new(self, name: str, verdict: Verdict, case: Case,
                checked: dict[tuple[object, str], bool] | None = None) -> bool:
        """A failure no known bug of ``name`` explains, while ``name`` is still worth fuzzing.

        A known bug explains the very same failure (kind and message) wherever it happens.
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
            # The very same failure (an exception's type, place and message; a fixed-text
            # one) on a case lacking what the bug needs: the same bug reached another way,
            # listed once under it.
            if bug.verdict.kind == verdict.kind and bug.verdict.message == verdict.message:
                if not bug.needs <= features(case) and all(s.verdict.message != verdict.message for s in bug.symptoms):
                    self._replace(bug, self._with_symptom(bug, failure))
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
                    self._replace(bug, self._with_symptom(bug, failure))
                return False
        together = frozenset().union(*(bug.needs for bug in held))
        return len(held) < 2 or not gone_without("together", together)

    def _replace(self, old: Finding, new: Finding) -> None:
        for findings in (self.bugs, self.result.findings):
            findings[:] = [new if finding is old else finding for finding in findings]

    def _tally(self, verdicts: dict[str, Verdict], case: Case) -> None:
        for name, verdict in verdicts.items():
            tally = self.result.tallies[name]
            tally.examples += 1
            tally.statuses[verdict.status] += 1
            if verdict.noise is not None:
                tally.heard.add(verdict.noise)
            declared = self.members[name].capabilities
            # Only a check judged on its values can show a disagreement there or gone.
            for index in reached(declared, case) if verdict.status in (PASSED, EXPECTED) else ():
                tally.expectations[index, "reached"] += 1
                if verdict.signature == f"expected:{index}":
                    tally.expectations[index, "happened"] += 1
                    tally.disagreed.setdefault(index, case.id)

    def _draws(self) -> st.SearchStrategy[tuple[int, Case]]:
        """A domain (by index, shrinking towards the first) and a case in it; its data kinds
        and layouts are enumerated by `check_variants`, so the case is drawn in the first."""
        return st.one_of([cases(replace(domain, layouts=domain.layouts[:1]), DATA_KINDS[:1])
                          .map(functools.partial(_numbered, i)) for i, domain in enumerate(self.domains)])

    def _one_run(self, run_seed: int, wanted: tuple[str, str] | None = None) -> Finding | None:
        """Explore until a new bug shows, shrink it, return it; None when the budget ran out.

        With ``wanted`` (implementation, signature), only that bug counts, within
        `TARGETED_DRAWS` draws that are not counted as the campaign's cases (a bug seen
        beside another, looked for again so that it too is shrunk)."""
        self.target = None

        def test(drawn: tuple[int, Case]) -> None:
            # One raise site for exploring and shrinking: Hypothesis tells failures apart
            # by where they were raised, and shrinks only towards the same one.
            domain, case = self.domains[drawn[0]], drawn[1]
            if self._shrink_step(case, domain) if self.target else self._explore_step(case, domain, wanted):
                raise _Reproduced

        # At least this many variants per draw (a batched one has an empty-batch variant too).
        per_draw = len(DATA_KINDS) * sum(len(d.layouts) for d in self.domains) / len(self.domains)
        draws = TARGETED_DRAWS if wanted else math.ceil((self.budget - self.examples) / per_draw)
        runner = settings(
            max_examples=max(1, draws),
            database=None,
            deadline=None,
            phases=(Phase.generate, Phase.shrink),
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )(hypothesis_seed(run_seed)(given(self._draws())(test)))
        try:
            runner()
        except _OutOfTime:
            self.budget = self.examples  # no new run either
        except (_Reproduced, HypothesisException, ExceptionGroup):
            pass  # a flaky bug still leaves the smallest case it failed on in the target
        found = None if self.target is None else self.target.smallest
        self.target = None
        return found

    def _explore_step(self, case: Case, domain: Capabilities, wanted: tuple[str, str] | None) -> bool:
        """Check a drawn case's variants; True when a new bug showed (it becomes the target,
        and any other new one is kept for later)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime
        new: dict[tuple[str, str], Finding] = {}
        # Most variants differ in data kind and layout only: the rest is worked out once.
        shared = coverage(case) - {f"data={case.data}", f"layout={case.layout}"}
        members = self.members.values() if wanted is None else [self.members[wanted[0]]]
        checked: dict[str, dict[tuple[object, str], bool]] = {name: {} for name in self.members}
        for variant, verdicts, thorough in check_variants(case, domain, members, self.supervisor,
                                                          exploring=True, beyond=self.beyond):
            if wanted is None:
                self.examples += 1
                reached = (shared | {f"data={variant.data}", f"layout={variant.layout}"}
                           if variant.batch == case.batch else coverage(variant))
                self.coverage.update(reached | ({"thorough"} if thorough else set()))
                self._tally(verdicts, variant)
            for name, verdict in verdicts.items():
                if wanted not in (None, (name, verdict.signature)):
                    continue
                if self._is_new(name, verdict, variant, checked[name]):
                    new.setdefault((name, verdict.signature), Finding(name, variant, verdict))
        if wanted is None:
            self.progress(self.examples)
        if not new:
            return False
        first, *others = new.values()
        for other in others:
            self.incidental.setdefault((other.implementation, other.verdict.signature), replace(other, shrunk=False))
        self.target = _Target(first, first)
        self.shrink_deadline = time.monotonic() + SHRINK_SECONDS
        return True

    def _shrink_step(self, case: Case, domain: Capabilities) -> bool:
        """Whether a smaller case Hypothesis tries still shows the target bug (then it is the
        smallest so far); new bugs seen meanwhile are kept for later."""
        assert self.target is not None
        if time.monotonic() > self.shrink_deadline:
            return False  # out of time: the smallest case so far stands
        name, signature = self.target.bug.implementation, self.target.bug.verdict.signature
        checked: dict[tuple[object, str], bool] = {}
        for variant, verdicts, _ in check_variants(case, domain, [self.members[name]], self.supervisor,
                                                   beyond=self.beyond):
            verdict = verdicts[name]
            if not self._is_new(name, verdict, variant, checked):
                continue
            if verdict.signature == signature:
                self.target.smallest = Finding(name, variant, verdict)
                return True
            self.incidental.setdefault((name, verdict.signature), Finding(name, variant, verdict, shrunk=False))
        return False
