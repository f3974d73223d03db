"""What every campaign backend shares: the campaign's options, one shard's run, and the
bookkeeping of what the shards told (`Ledger`), written once; a `Backend` only says how a
shard gets run and how a death is noticed.

A campaign of N cases per implementation is n shards of N/n cases, n fixed by N
(`plan.shard_count`, or ``--shards``), shard i drawing from a seed derived from (seed, i, n) the
same way everywhere (`shard_plan`). So the same seed draws the same cases whether this process
runs every shard (`harness.backends.serial`), worker processes share them
(`harness.backends.processes`), a Dask cluster runs them (`harness.backends.dask_cluster`), or n
commands each run one (``--shard i/n``); results merge by keeping, for each bug, the smallest
case any shard found (what ``corpus merge`` does for corpora).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import reduce
from pathlib import Path
from typing import Literal, Protocol

from harness.backends.plan import Shard
from harness.campaign.bugs import one_report_each, with_symptom
from harness.campaign.engine import CampaignResult, Progress, Tally, derive_seed, fuzz, planned_cases
from harness.execute.journal import Journal
from harness.execute.supervisor import Supervisor
from harness.model.finding import BugKey, BugTag, Finding
from harness.model.registry import Implementation, discover
from harness.store.corpus import save_findings

INTERRUPT_GRACE = 10.0  # seconds running shards get after Ctrl-C to save and report what they found
PROGRESS_SECONDS = 0.5  # a shard run elsewhere says how far it got at most this often
POLL_SECONDS = 0.1  # how long a backend waits for news before looking at Ctrl-C and the clock again

BugTags = frozenset[BugTag]  # the bugs found so far, by their `Finding.tag`


@dataclass(frozen=True)
class Options:
    """One campaign, whoever asked for it (the command line, `harness.api`): what to fuzz,
    how much, with which seed and shards, and where what it finds goes."""

    specs: tuple[str, ...]  # how a process elsewhere loads the implementations (registered names, FILE.py:FN...)
    max_examples: int  # cases per implementation, over all of the campaign's shards
    seed: int
    shards: tuple[Shard, ...]  # those this run runs: all of the campaign's, or one
    implementations: tuple[Implementation, ...] = field(default=(), compare=False)  # loaded here; never sent
    isolate: bool | frozenset[str] = False  # every implementation in a child process, or those named
    max_seconds: float | None = None
    corpus: Path | None = None  # where findings are saved, and earlier runs' journals looked for
    journals: Path | None = None  # where in-process calls are journalled (`harness.execute.journal`)
    progress: Progress | None = field(default=None, compare=False)  # the whole campaign's, said here

    def portable(self) -> Options:
        """These options without what stays in this process (functions travel badly)."""
        return replace(self, implementations=(), progress=None)

    def loaded(self) -> tuple[Implementation, ...]:
        """The implementations: those loaded here, or loaded from `specs` (in a worker)."""
        return self.implementations or tuple(discover(self.specs).implementations.values())

    def save(self, findings: list[Finding]) -> list[str]:
        """Save ``findings`` to the corpus, if any; a line for each."""
        return save_findings(findings, self.seed, self.corpus) if self.corpus is not None else []


def shard_plan(max_examples: int, seed: int, shard: Shard) -> tuple[int, int]:
    """(cases per implementation, seed) for one shard of a campaign."""
    if shard.count == 1:
        return max_examples, seed
    return -(-max_examples // shard.count), derive_seed(seed, "shard", shard.index, shard.count)


def run_shard(
    options: Options,
    shard: Shard,
    isolate: bool | frozenset[str] | None = None,
    max_seconds: float | None = None,
    progress: Progress | None = None,
) -> CampaignResult:
    """One shard, start to finish, wherever it runs: fuzz the implementations (``isolate``
    those, by default the options'), each in-process call journalled where the options say.
    Saves nothing: where it ran decides (`Ledger.finished`)."""
    isolate = options.isolate if isolate is None else isolate
    examples, shard_seed = shard_plan(options.max_examples, options.seed, shard)
    # Only a campaign isolating everything has no in-process call to journal.
    journal = None if isolate is True or options.journals is None else Journal(options.journals)
    supervisor = Supervisor(isolate=isolate, journal=journal)
    try:
        result = fuzz(options.loaded(), examples, shard_seed, progress, supervisor, max_seconds)
    finally:
        supervisor.close()
    return replace(result, seed=options.seed)


def one_per_bug(tags: Iterable[BugTag]) -> dict[BugTag, list[BugTag]]:
    """The bugs among ``tags`` (separate shards' findings) as the final table has them: of one
    `BugKey`, the smallest case; of one failure of one implementation (`Verdict.failure`:
    one raise site with one message template, say), one bug, with the others as its
    symptoms, as one campaign meeting a failure it knows on another case makes them
    (`KnownBugs.is_new`). That bug is the settled one needing least, then the smallest.
    Each bug's tag, in the order first seen, and the tags of its symptoms."""
    smallest: dict[BugKey, BugTag] = {}
    for tag in tags:
        if tag.key not in smallest or tag.size < smallest[tag.key].size:
            smallest[tag.key] = tag
    failures: dict[tuple[str, str], list[BugTag]] = {}
    for tag in smallest.values():
        failures.setdefault((tag.key.implementation, tag.failure), []).append(tag)

    def rank(tag: BugTag) -> tuple[bool, int, tuple[int, ...]]:
        return not tag.settled, len(tag.key.needs), tag.size

    return {bug: symptoms for bug, *symptoms in (sorted(same, key=rank) for same in failures.values())}


def merge(results: list[CampaignResult], seed: int) -> CampaignResult:
    """One result from the shards': tallies added up, one report per bug (`one_per_bug`),
    and a failure one shard reported as a bug not listed under another's as its symptom."""
    merged = CampaignResult(
        seed=seed,
        interrupted=any(r.interrupted for r in results),
        incomplete=[reason for r in results for reason in r.incomplete],
    )
    found: dict[BugTag, Finding] = {}
    for result in results:
        for name, tally in result.tallies.items():
            total = merged.tallies.setdefault(name, Tally())
            total.examples += tally.examples
            total.statuses.update(tally.statuses)
            total.coverage.update(tally.coverage)
            total.heard.update(tally.heard)
            total.expectations.update(tally.expectations)
            total.disagreed = {**tally.disagreed, **total.disagreed}
            total.slow += tally.slow
        for finding in result.findings:
            found.setdefault(finding.tag, finding)
    bugs = one_per_bug(found)
    merged.findings = one_report_each(
        [reduce(with_symptom, (found[tag] for tag in symptoms), found[bug]) for bug, symptoms in bugs.items()]
    )
    return merged


def every(seconds: float, progress: Progress) -> Progress:
    """``progress``, said at most once every ``seconds``."""
    last = [0.0]

    def throttled(done: int, planned: int, bugs: BugTags) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            progress(done, planned, bugs)

    return throttled


class Ledger:
    """What a campaign's shards have told, whatever ran them: each one's result, the lines
    saying what was saved, notes on what happened (shards run again), why a shard was not
    checked, the implementations to isolate from now on (in the shards handed out after a
    death), and the campaign's progress, added up from its shards' and said through the
    options' ``progress(cases done, cases planned, bugs found)``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.isolate: Literal[True] | set[str] = True if options.isolate is True else set(options.isolate or ())
        self.results: dict[Shard, CampaignResult] = {}
        self.saved: list[str] = []
        self.notes: list[str] = []
        self.incomplete: list[str] = []
        examples = shard_plan(options.max_examples, options.seed, options.shards[0])[0]
        self.per_shard = planned_cases(options.loaded(), examples)
        self.planned = self.per_shard * len(options.shards)
        self.done: dict[Shard, int] = {}
        # Each shard's bugs as it last said them: a bug it has since found to be another's
        # symptom is gone from them, as it is from the final table.
        self.bugs: dict[Shard, BugTags] = {}

    def isolating(self) -> bool | frozenset[str]:
        """What a shard handed out now isolates (a copy: the set grows)."""
        return True if self.isolate is True else frozenset(self.isolate)

    def isolate_from_now_on(self, name: str) -> bool:
        """Isolate ``name`` in the shards handed out from now on; whether that is news."""
        if self.isolate is True or name in self.isolate:
            return False
        self.isolate.add(name)
        return True

    def said(self, shard: Shard, done: int, bugs: BugTags) -> None:
        """A running shard's progress; the campaign's bugs counted as the final table will
        count them (`one_per_bug`)."""
        self.done[shard] = min(done, self.per_shard)
        self.bugs[shard] = bugs
        if self.options.progress is not None:
            found = one_per_bug(frozenset().union(*self.bugs.values()))
            self.options.progress(sum(self.done.values()), self.planned, frozenset(found))

    def recount(self, findings: list[Finding]) -> None:
        """The campaign's bugs as its final table has them, said once more when that is not
        what the shards last said (`harness.campaign.reconcile` found one another's symptom)."""
        said = frozenset(one_per_bug(frozenset().union(*self.bugs.values())))
        final = frozenset(finding.tag for finding in findings)
        if self.options.progress is not None and len(final) != len(said):
            self.options.progress(sum(self.done.values()), self.planned, final)

    def progress(self, shard: Shard) -> Progress:
        """What one shard's campaign, run here, reports its progress to."""
        return lambda done, planned, bugs: self.said(shard, done, bugs)

    def finished(self, shard: Shard, result: CampaignResult, saved: list[str] | None = None) -> None:
        """A shard's result, counted once; ``saved``: the lines of a shard that saved its own
        findings where it ran (a worker, beside the corpus), else they are saved here."""
        assert shard not in self.results, f"shard {shard} counted twice"
        self.saved += self.options.save(result.findings) if saved is None else saved
        self.results[shard] = result
        self.said(shard, self.per_shard, frozenset(finding.tag for finding in result.findings))

    def not_checked(self, shard: Shard, why: str) -> None:
        self.incomplete.append(f"shard {shard} was not checked: {why}")

    def merged(self, finished: bool) -> CampaignResult:
        """The campaign's result, its shards' merged in their order; an interrupted campaign
        (not ``finished``) is reported as such, not as incomplete."""
        merged = merge(
            [self.results[shard] for shard in self.options.shards if shard in self.results], self.options.seed
        )
        merged.interrupted = merged.interrupted or not finished
        merged.incomplete += self.incomplete if finished else []
        return merged


class Backend(Protocol):
    """What runs a campaign's shards: here (`serial.Serial`), in worker processes
    (`processes.Processes`) or on a Dask cluster (`dask_cluster.Dask`). Each runs every shard
    of ``ledger.options``, telling the ledger each shard's progress and result, and what
    became of a shard whose runner died."""

    workers: int  # how many ran the shards (the most a cluster had while they ran)
    place: str  # where, if not on this machine: "on Dask (tcp://10.0.0.5:8786)"

    def run(self, ledger: Ledger) -> bool:
        """Run the shards; False when Ctrl-C stopped it (what was found so far is in the ledger)."""
        ...
