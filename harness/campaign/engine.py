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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from harness.campaign.bugs import KnownBugs, attributed, one_report_each
from harness.campaign.check import check_prepared
from harness.campaign.crosscheck import REFERENCE
from harness.campaign.seeds import derive_seed as derive_seed  # exported: the backends' seeds too
from harness.campaign.tallies import GroupTally
from harness.campaign.tallies import Tally as Tally  # exported: a campaign result holds them
from harness.execute.capture import holding
from harness.execute.process_state import one_thread, reference_untrusted
from harness.execute.runner import time_limits, user_interrupts
from harness.execute.supervisor import QUARANTINE_AFTER, Supervisor
from harness.generate.strategies import cases, steady_draws
from harness.generate.support import full_domain, runnable
from harness.generate.tensors import Inputs, keeps_values, make_inputs
from harness.judge.oracle import Expected, expect
from harness.model.capabilities import Capabilities, widenings
from harness.model.case import DATA_KINDS, Case
from harness.model.features import features
from harness.model.finding import BugTag, Finding
from harness.model.registry import Implementation
from harness.model.verdict import SKIPPED, Verdict

# Shrinking and attributing one bug stops after this long: a hang costs a time limit per
# step, and a case that is not minimal is better than a campaign that never ends.
SHRINK_SECONDS = 30.0
# A second call and a backward pass cost more than a check: made on one variant in this many
# draws while exploring (measured, benchmarks/throughput.py: on one variant of every draw
# they took 15% of the campaign's time).
THOROUGH_EVERY = 3
# An implementation that declares less than everything gets this much less again, just
# outside its declaration (`capabilities.widenings`), to show it raises or is right there.
BEYOND_SHARE = 4
# A bug seen on a draw where another was shrunk gets a run of its own, of at most this many
# draws, to be found again and shrunk.
TARGETED_DRAWS = 200


@dataclass
class CampaignResult:
    seed: int
    tallies: dict[str, Tally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C: the findings so far are all here
    incomplete: list[str] = field(default_factory=list)  # why some promised cases were never checked


# (cases checked so far, cases planned, the bugs found so far by their `Finding.tag`)
Progress = Callable[[int, int, frozenset[BugTag]], None]


# Torch's reference, seen wrong while the campaign running checked other implementations
# (`harness.campaign.crosscheck`): where, and on which case. Set by `fuzz`; after its passes,
# the reference gets one of its own (`_wrong_reference`).
_WRONG_REFERENCES: ContextVar[list[tuple[Capabilities, Finding]] | None] = ContextVar("wrong_references", default=None)

SKIPPED_VERDICT = Verdict(
    SKIPPED,
    message=f"quarantined: it crashed, hung or ran out of memory {QUARANTINE_AFTER} "
    "times on cases of this kind (those of one `isolate` condition it declares, or the rest), so it "
    "was not called again on them while exploring",
)


def check_variants(
    case: Case,
    domain: Capabilities,
    implementations: Iterable[Implementation],
    supervisor: Supervisor,
    exploring: bool = False,
    beyond: bool = False,
    deadline: float | None = None,
) -> Iterator[tuple[Case, dict[str, Verdict], bool]]:
    """The drawn case with every data kind in every memory layout of the domain, simplest
    first, then (a batched case) with an empty batch.

    Checking them all costs no Hypothesis draws, and the data and the reference are made
    once per data kind for all the layouts that keep the values: this is what amortises
    Hypothesis's per-example overhead. A failing variant shrinks along with the drawn
    case, and the first one to fail is the simplest. While ``exploring``, the second call
    and gradient check (`check_prepared`'s ``thorough``) are made on one variant of one
    draw in `THOROUGH_EVERY`, a call that runs past its time limit is made again before it
    counts (`check_prepared`'s ``retry``), and an implementation quarantined for crashing
    or hanging is reported as skipped from the next call on. Yields each variant, its
    verdicts, and whether they were thorough. Where torch's reference is wrong, and it is
    not among ``implementations``, the variant's verdicts are withheld and its failure is
    kept for the campaign's pass of its own (`_wrong_reference`). Past ``deadline``
    (``--max-seconds``) no further variant is checked: a draw's variants cost as many checks
    as there are, and a slow implementation's as many of its time limits.
    """
    implementations = list(implementations)
    # Chosen by a hash of the whole case: Hypothesis's simplest draws (seed 0, no bias, ...)
    # come often, and a choice by the seed alone would pick them. With uniform data: special
    # values get no gradient check, and integer sums come out the same in any order.
    pick = derive_seed(case.id)
    thorough = (
        ("uniform", domain.layouts[pick // THOROUGH_EVERY % len(domain.layouts)])
        if pick % THOROUGH_EVERY == 0
        else None
    )

    def check(variant: Case, own: Inputs, reference: Expected, deep: bool) -> tuple[Case, dict[str, Verdict], bool]:
        quarantined = {i.name for i in implementations if exploring and supervisor.quarantined(i, variant)}
        active = [i for i in implementations if i.name not in quarantined]
        verdicts = check_prepared(
            variant,
            active,
            lambda: own.in_layout(variant.layout, variant.weight_layout),
            own,
            reference,
            supervisor,
            thorough=deep,
            beyond=beyond,
            watched=not exploring,
            retry=exploring,
        )
        seen = _WRONG_REFERENCES.get()
        if REFERENCE not in active and REFERENCE.name in verdicts and seen is not None:
            seen.append((domain, Finding(REFERENCE.name, variant, verdicts.pop(REFERENCE.name), shrunk=False)))
        return variant, {**verdicts, **dict.fromkeys(quarantined, SKIPPED_VERDICT)}, deep

    def variants() -> Iterator[tuple[Case, dict[str, Verdict], bool]]:
        for data in DATA_KINDS:
            base = replace(case, data=data, layout="contiguous", weight_layout="same")
            pristine = make_inputs(base)
            expected = expect(base, pristine)
            for layout in domain.layouts:
                if deadline is not None and time.monotonic() > deadline:
                    return
                variant = replace(base, layout=layout, weight_layout=case.weight_layout)
                laid = pristine.in_layout(layout, case.weight_layout)
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


def explained(finding: Finding, others: Iterable[Finding]) -> bool:
    """Whether another finding of the same implementation is the same bug as ``finding``."""
    return any(
        other is not finding
        and other.implementation == finding.implementation
        and other.explains(finding.verdict, finding.case)
        for other in others
    )


class _Reproduced(Exception):
    """Raised inside the Hypothesis test when the targeted bug shows; never escapes."""


def group_by_domain(implementations: Iterable[Implementation]) -> dict[Capabilities, list[Implementation]]:
    """Implementations that claim the same cases, whatever else they declare: each is still
    judged its own way (autograd, and the rounding bound of its algorithm)."""
    groups: dict[Capabilities, list[Implementation]] = {}
    for implementation in implementations:
        groups.setdefault(implementation.capabilities.domain(), []).append(implementation)
    return groups


def fuzz(
    implementations: Iterable[Implementation],
    max_examples: int,
    seed: int | None = None,
    progress: Progress | None = None,
    supervisor: Supervisor | None = None,
    max_seconds: float | None = None,
) -> CampaignResult:
    """Fuzz every implementation inside its declared domain with ``max_examples`` cases each,
    then one that declares less than everything with a further ``max_examples //
    BEYOND_SHARE`` cases just outside it (one declared limit lifted at a time), where it
    must raise or be right.

    With ``max_seconds`` exploring stops when the time is up (each pass gets an equal share
    of what is left), and so do shrinking and attributing: a bug whose shrinking the time cut
    short is kept as its smallest case so far, said to be not shrunk. Past the time, a
    campaign goes on for at most the check under way (its calls' time limits). Ctrl-C stops
    the campaign cleanly: the result then holds everything found so far and says it was
    interrupted.
    """
    if supervisor is None:  # one of its own (quarantines are per campaign), its children ended with it
        supervisor = Supervisor()
        try:
            return fuzz(implementations, max_examples, seed, progress, supervisor, max_seconds)
        finally:
            supervisor.close()
    one_thread()
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
            progress(min(before + examples, planned), planned, frozenset(f.tag for f in result.findings))

    slow = Counter(supervisor.slow)
    wrong_references: list[tuple[Capabilities, Finding]] = []
    watching = _WRONG_REFERENCES.set(wrong_references)
    try:
        with user_interrupts(), time_limits(), holding():
            for index, (group, domains, beyond, budget) in enumerate(passes):
                share = None if end is None else time.monotonic() + (end - time.monotonic()) / (len(passes) - index)
                _Group(group, domains, result, budget, progressed, supervisor, share, beyond, end).run()
                before += budget
                progressed(0)
            if wrong_references:
                _wrong_reference(
                    wrong_references, result, max(1, max_examples // BEYOND_SHARE), progressed, supervisor, end
                )
    except KeyboardInterrupt:
        result.interrupted = True
        _unexplained(wrong_references, result, lambda finding: finding)
    finally:
        _WRONG_REFERENCES.reset(watching)
    result.findings = one_report_each(result.findings)
    for name, calls in (supervisor.slow - slow).items():  # this campaign's, of a supervisor that may be older
        result.tallies[name].slow += calls
    if reference_untrusted():
        result.incomplete.append(
            f"the reference could not be trusted ({reference_untrusted()}): the checks after that were not judged"
        )
    return result


def _wrong_reference(
    seen: list[tuple[Capabilities, Finding]],
    result: CampaignResult,
    budget: int,
    progress: Callable[[int], None],
    supervisor: Supervisor,
    deadline: float | None,
) -> None:
    """Torch's reference, seen wrong while other implementations were checked, gets a pass of
    its own, `REFERENCE` the only member, in the domain where it was first seen: Hypothesis
    finds it again and shrinks it like any bug. A failure seen that no finding of that pass
    explains (not found again in ``budget`` cases) is kept as it was seen, attributed."""
    result.tallies[REFERENCE.name] = Tally()
    _Group([REFERENCE], [seen[0][0]], result, budget, progress, supervisor, deadline, end=deadline).run()
    until = _shrink_until(deadline)
    _unexplained(seen, result, lambda finding: attributed(finding, REFERENCE, supervisor, deadline=until))


def _unexplained(
    seen: list[tuple[Capabilities, Finding]], result: CampaignResult, kept: Callable[[Finding], Finding]
) -> None:
    """Add to ``result`` each wrong reference ``seen`` that no reference finding explains, as
    ``kept`` makes it (a campaign interrupted keeps them as they were seen)."""
    found = [finding for finding in result.findings if finding.implementation == REFERENCE.name]
    for _, finding in seen:
        if not any(bug.explains(finding.verdict, finding.case) for bug in found):
            found.append(kept(finding))
            result.findings.append(found[-1])


def planned_cases(implementations: Iterable[Implementation], max_examples: int) -> int:
    """How many cases `fuzz` plans to draw for these implementations: one figure for all the
    implementations of a group, which are checked on the same cases."""
    return sum(budget for *_, budget in _passes(implementations, max_examples))


def _passes(
    implementations: Iterable[Implementation], max_examples: int
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


def _shrink_until(end: float | None) -> float:
    """When shrinking and attributing a bug found now must stop: after `SHRINK_SECONDS`, and
    no later than the campaign's ``end`` (``--max-seconds``)."""
    until = time.monotonic() + SHRINK_SECONDS
    return until if end is None else min(until, end)


class _Group:
    """Implementations fuzzed together, run after run until the budget is spent: in their
    declared domain, or (``beyond``) just outside it, where they must raise or be right.
    This drives Hypothesis; which failures are bugs is `bugs.KnownBugs`'s to say, and what
    exploring counted, `tallies.GroupTally`'s."""

    def __init__(
        self,
        members: list[Implementation],
        domains: list[Capabilities],
        result: CampaignResult,
        budget: int,
        progress: Callable[[int], None],
        supervisor: Supervisor,
        deadline: float | None = None,
        beyond: bool = False,
        end: float | None = None,
    ) -> None:
        # ``deadline``: exploring stops (this pass's share of the time); ``end``: the
        # campaign's, which shrinking and attributing do not pass either.
        self.supervisor, self.deadline, self.beyond, self.end = supervisor, deadline, beyond, end
        self.members = {m.name: m for m in members}
        self.domains = domains  # each draw picks one, then a case in it
        self.seed, self.budget, self.progress = result.seed, budget, progress
        self.known = KnownBugs(self.members, result.findings, result.tallies, supervisor, beyond)
        self.tally = GroupTally(self.members, result.tallies)
        self.incidental: dict[tuple[str, str], Finding] = {}  # seen while shrinking another
        self.target: _Target | None = None  # the bug being shrunk
        self.attributing: Finding | None = None  # the bug being attributed, shrunk
        self.shrink_deadline = 0.0

    def run(self) -> None:
        try:
            self._explore()
        except KeyboardInterrupt:
            # Keep everything as it stands: the bug being attributed (shrunk, what it needs
            # not checked), the one being shrunk, and those seen meanwhile that no bug found
            # since explains, these two as not shrunk, interrupted, to be merged into its
            # report by a run that finds it again (`corpus.save`).
            if self.attributing is not None and not explained(self.attributing, self.known.bugs):
                self.known.add(replace(self.attributing, untried=features(self.attributing.case)))
            for finding in [*([self.target.smallest] if self.target else []), *self.incidental.values()]:
                if not explained(finding, self.known.bugs):
                    self.known.add(replace(finding, shrunk=False, untried=features(finding.case)))
            raise

    def _explore(self) -> None:
        attempt = 0
        while self.tally.examples < self.budget:
            # Seeded by what is drawn, not by who is checked: the same command draws the
            # same cases on any machine, whatever the paths of plugin files there.
            found = self._one_run(derive_seed(self.seed, repr(self.domains), attempt))
            if found is None:
                break
            self._attribute(found)
            attempt += 1
        # Bugs seen beside another, and not found again since: each gets a run of its own
        # to be found again and shrunk (or, not found again, is kept as it was seen).
        for key, finding in list(self.incidental.items()):
            if not self.known.is_new(finding.implementation, finding.verdict, finding.case):
                continue
            # Seeded by the case and how it failed, not by who failed: see `_explore`.
            again = self._one_run(
                derive_seed(self.seed, repr(self.domains), "again", finding.case.id, finding.verdict.signature), key
            )
            self.shrink_deadline = _shrink_until(self.end)
            self._attribute(again or finding)

    def _attribute(self, found: Finding) -> None:
        """Record ``found`` with what it needs (`KnownBugs.attributed`), held meanwhile in
        `attributing` for a Ctrl-C to keep."""
        self.attributing = found
        self.known.record(self.known.attributed(found, self.shrink_deadline))
        self.attributing = None

    def _draws(self) -> st.SearchStrategy[tuple[int, Case]]:
        """A domain (by index, shrinking towards the first) and a case in it; its data kinds
        and layouts are enumerated by `check_variants`, so the case is drawn in the first."""
        return st.one_of(
            [
                cases(replace(domain, layouts=domain.layouts[:1]), DATA_KINDS[:1]).map(functools.partial(_numbered, i))
                for i, domain in enumerate(self.domains)
            ]
        )

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
        draws = TARGETED_DRAWS if wanted else math.ceil((self.budget - self.tally.examples) / per_draw)
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
            with steady_draws():
                runner()
        except _OutOfTime:
            self.budget = self.tally.examples  # no new run either
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
        members = self.members.values() if wanted is None else [self.members[wanted[0]]]
        checked: dict[str, dict[tuple[object, str], bool]] = {name: {} for name in self.members}
        for variant, verdicts, thorough in check_variants(
            case, domain, members, self.supervisor, exploring=True, beyond=self.beyond, deadline=self.deadline
        ):
            if wanted is None:
                self.tally.checked(case, variant, verdicts, thorough)
            for name, verdict in verdicts.items():
                if wanted not in (None, (name, verdict.signature)):
                    continue
                if self.known.is_new(name, verdict, variant, checked[name]):
                    new.setdefault((name, verdict.signature), Finding(name, variant, verdict))
        if wanted is None:
            self.progress(self.tally.examples)
        if not new:
            return False
        first, *others = new.values()
        for other in others:
            self.incidental.setdefault((other.implementation, other.verdict.signature), replace(other, shrunk=False))
        self.target = _Target(first, first)
        self.shrink_deadline = _shrink_until(self.end)
        return True

    def _shrink_step(self, case: Case, domain: Capabilities) -> bool:
        """Whether a smaller case Hypothesis tries still shows the target bug (then it is the
        smallest so far); new bugs seen meanwhile are kept for later."""
        assert self.target is not None
        if time.monotonic() > self.shrink_deadline:
            if self.end is not None and time.monotonic() > self.end:  # the campaign's time, not shrinking's own
                self.target.smallest = replace(self.target.smallest, shrunk=False)
            return False  # out of time: the smallest case so far stands
        name, signature = self.target.bug.implementation, self.target.bug.verdict.signature
        checked: dict[tuple[object, str], bool] = {}
        for variant, verdicts, _ in check_variants(
            case, domain, [self.members[name]], self.supervisor, beyond=self.beyond
        ):
            verdict = verdicts[name]
            if not self.known.is_new(name, verdict, variant, checked):
                continue
            if verdict.signature == signature:
                self.target.smallest = Finding(name, variant, verdict)
                return True
            self.incidental.setdefault((name, verdict.signature), Finding(name, variant, verdict, shrunk=False))
        return False
