"""A campaign as a fixed set of shards, run by whatever runs them, and workers whose death
costs at most the case they were running.

A campaign of N cases per implementation is n shards of N/n cases, n fixed by N
(`shard_count`, or ``--shards``), shard i drawing from a seed derived from (seed, i, n) the
same way everywhere. So the same ``--seed`` draws the same cases whether this process runs
every shard (``--workers 1``), N worker processes share them (``--workers N``), or n
commands each run one (``--shard i/n``); results merge by keeping, for each bug, the
smallest case any shard found (what ``corpus merge`` does for corpora).

A worker process can die: an implementation run in it segfaults, aborts or exits, or
something outside kills it. Its shard then has told nothing (a shard reports and saves
only when it ends), so the shard is run again from its start, with the implementation
the worker's journal says was running isolated from then on; the crash, if it was one,
shows again there and is reported like any other failure. A shard whose worker keeps
dying is given up after `MAX_ATTEMPTS`, and the campaign says it is incomplete: "ok"
always means checked. Ctrl-C reaches the workers through this process (they have process
groups of their own), so each ends its shard cleanly and what it found is kept.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal

from harness.campaign import CampaignResult, Progress, Tally, derive_seed, fuzz, planned_cases
from harness.corpus import save_findings
from harness.finding import Finding, size
from harness.journal import Journal, read
from harness.registry import Implementation, discover
from harness.runner import prepare_autograd
from harness.supervisor import Supervisor

# Shards enough to share among workers (shards differ in cost, and a worker that finishes
# early takes the next one instead of waiting for the slowest), each worth starting: a
# shard re-finds and re-shrinks the bugs the others find too.
CASES_PER_SHARD = 250
MAX_SHARDS = 64
MAX_ATTEMPTS = 3  # runs of one shard before it is given up
INTERRUPT_GRACE = 10.0  # seconds workers get after Ctrl-C to save and report what they found
PROGRESS_SECONDS = 0.5  # a worker says how far it got at most this often


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); shards count from 1 so that 'i/n' reads as 'i of n'."""
    index, slash, count = text.partition("/")
    if not slash or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise ValueError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return int(index), int(count)


def shard_count(max_examples: int) -> int:
    """How many shards a campaign of ``max_examples`` cases per implementation is."""
    return max(1, min(MAX_SHARDS, max_examples // CASES_PER_SHARD))


def shard_plan(max_examples: int, seed: int, shard: tuple[int, int]) -> tuple[int, int]:
    """(cases per implementation, seed) for one shard of a campaign."""
    index, count = shard
    if count == 1:
        return max_examples, seed
    return -(-max_examples // count), derive_seed(seed, "shard", index, count)


def merge(results: list[CampaignResult], seed: int) -> CampaignResult:
    """One result from the shards': tallies added up, the smallest case kept for each bug."""
    merged = CampaignResult(seed=seed, interrupted=any(r.interrupted for r in results),
                            incomplete=[reason for r in results for reason in r.incomplete])
    smallest: dict[tuple[str, str, tuple[str, ...]], Finding] = {}
    for result in results:
        for name, tally in result.tallies.items():
            total = merged.tallies.setdefault(name, Tally())
            total.examples += tally.examples
            total.statuses.update(tally.statuses)
            total.coverage.update(tally.coverage)
            total.heard.update(tally.heard)
            total.expectations.update(tally.expectations)
            total.disagreed = {**tally.disagreed, **total.disagreed}
        for finding in result.findings:
            if finding.key not in smallest or size(finding.case) < size(smallest[finding.key].case):
                smallest[finding.key] = finding
    merged.findings = list(smallest.values())
    return merged


def run_shard(specs: list[str], max_examples: int, seed: int, shard: tuple[int, int], isolate: bool | set[str],
              max_seconds: float | None, corpus: Path | None, journals: Path | None = None,
              progress: Progress | None = None) -> tuple[CampaignResult, list[str]]:
    """One shard, start to finish: load the implementations here (functions travel badly
    between processes), fuzz, and save what was found before returning, so that a
    worker's findings survive whatever happens to the others. With ``journals``, each
    in-process call is journalled there (`harness.journal`)."""
    registry = discover(specs)
    examples, shard_seed = shard_plan(max_examples, seed, shard)
    # Only a campaign isolating everything has no in-process call to journal.
    supervisor = Supervisor(isolate=isolate, journal=None if isolate is True or journals is None else Journal(journals))
    try:
        result = fuzz(registry.implementations.values(), examples, shard_seed, progress, supervisor, max_seconds)
    finally:
        supervisor.close()
    saved = save_findings(result.findings, seed, corpus) if corpus is not None else []
    return replace(result, seed=seed), saved


def _serve_shards(connection: Connection, specs: list[str], max_examples: int, seed: int,
                  deadline: float | None, corpus: Path | None, journals: Path) -> None:
    """A worker process: runs the shards it is sent, one after another (its caches stay
    warm: Hypothesis's strategies, torch's first calls), sending each one's result back,
    until it is sent None."""
    os.setpgid(0, 0)  # Ctrl-C at the terminal goes to the parent, which passes it on once
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a campaign listens for it; between them, no one
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        shard, isolate = job
        max_seconds = None if deadline is None else max(deadline - time.monotonic(), 0.0)

        def progress(done: int, planned: int, bugs: frozenset[Any], shard: tuple[int, int] = shard) -> None:
            connection.send(("progress", shard, done, bugs))

        connection.send(("done", run_shard(specs, max_examples, seed, shard, isolate, max_seconds, corpus,
                                           journals, _every(PROGRESS_SECONDS, progress))))


@dataclass
class _Worker:
    process: Any
    connection: Connection
    shard: tuple[int, int] | None = None  # the one it is running


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class Tracker:
    """How far a campaign of several shards has got: what each shard said, added up, and
    shown through ``show(cases done, cases planned, distinct bugs found)``."""

    def __init__(self, planned: int, shards: int, show: Callable[[int, int, int], None] | None) -> None:
        self.planned, self.total, self.show = planned, planned * shards, show
        self.done: dict[tuple[int, int], int] = {}
        self.bugs: set[Any] = set()

    def update(self, shard: tuple[int, int], done: int, bugs: frozenset[Any]) -> None:
        self.done[shard] = min(done, self.planned)
        self.bugs |= bugs
        if self.show is not None:
            self.show(sum(self.done.values()), self.total, len(self.bugs))

    def progress(self, shard: tuple[int, int]) -> Progress:
        """What one shard's campaign reports its progress to."""
        return lambda done, planned, bugs: self.update(shard, done, bugs)

    def finished(self, shard: tuple[int, int], result: CampaignResult) -> None:
        self.update(shard, self.planned, frozenset(finding.key for finding in result.findings))


def _every(seconds: float, progress: Progress) -> Progress:
    """``progress``, said at most once every ``seconds``."""
    last = [0.0]

    def throttled(done: int, planned: int, bugs: frozenset[Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            progress(done, planned, bugs)
    return throttled


class _Workers:
    """Shards over N worker processes forked from this one (torch is imported once, here),
    each taking the next shard when it finishes one; a worker that dies is replaced."""

    def __init__(self, specs: list[str], max_examples: int, seed: int, shards: list[tuple[int, int]], workers: int,
                 isolate: bool | set[str], deadline: float | None, corpus: Path | None, journals: Path,
                 tracker: Tracker) -> None:
        self.specs, self.max_examples, self.seed, self.count = specs, max_examples, seed, workers
        self.isolate: Literal[True] | set[str] = True if isolate is True else set(isolate or ())
        self.deadline, self.corpus, self.journals = deadline, corpus, journals
        self.tracker = tracker
        self.pending = deque(shards)
        self.workers: list[_Worker] = []
        self.attempts: Counter[tuple[int, int]] = Counter()
        self.results: list[CampaignResult] = []
        self.saved: list[str] = []
        self.notes: list[str] = []
        self.incomplete: list[str] = []
        self.context = multiprocessing.get_context("fork")

    def run(self) -> bool:
        """Run every shard; False when Ctrl-C stopped it."""
        try:
            while True:
                self._assign()
                busy = [worker for worker in self.workers if worker.shard is not None]
                if not busy:
                    break
                self._collect(wait([w.process.sentinel for w in busy] + [w.connection for w in busy]))
        except KeyboardInterrupt:
            self._stop_on_interrupt()
            return False
        finally:
            self._stop()
        return True

    def _assign(self) -> None:
        """Give each idle worker the next shard, starting workers as needed, while time lasts."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.pending.clear()  # out of time: these shards are not owed
        while self.pending:
            idle = next((w for w in self.workers if w.shard is None), None)
            if idle is None and len(self.workers) < self.count:
                idle = self._start()
            if idle is None:
                return
            idle.shard = self.pending.popleft()
            isolate = self.isolate if self.isolate is True else set(self.isolate)  # a copy: it grows
            idle.connection.send((idle.shard, isolate))

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_serve_shards, name="im2col-harness worker",
            args=(theirs, self.specs, self.max_examples, self.seed, self.deadline, self.corpus, self.journals))
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def _collect(self, ready: list[Any]) -> None:
        for worker in [w for w in self.workers if w.shard is not None]:
            if worker.connection not in ready and worker.process.sentinel not in ready:
                continue
            try:
                while worker.shard is not None and worker.connection.poll():
                    self._received(worker, worker.connection.recv())
            except (EOFError, OSError):
                pass
            if worker.shard is not None and not worker.process.is_alive():
                self._died(worker)
            # else: still at it, or the sentinel fired first and the result is on its way

    def _received(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        assert worker.shard is not None
        if message[0] == "progress":
            _, shard, done, bugs = message
            self.tracker.update(shard, done, bugs)
            return
        result, saved = message[1]
        self.tracker.finished(worker.shard, result)
        self.results.append(result)
        self.saved += saved
        worker.shard = None

    def _died(self, worker: _Worker) -> None:
        """A worker died: run its shard again, isolating whatever it was running."""
        assert worker.shard is not None
        worker.process.join()
        worker.connection.close()
        self.workers.remove(worker)
        index, count = worker.shard
        how = _how(worker.process.exitcode)
        journal = self.journals / f"{worker.process.pid}.json"
        parsed = read(journal)
        journal.unlink(missing_ok=True)  # the shard is run again: that call is checked again there
        orphan = None if parsed is None else parsed[1]
        if orphan is not None and orphan.case is not None:
            doing = f"while running {orphan.implementation} on {orphan.case.id}"
            if self.isolate is not True:
                self.isolate.add(orphan.implementation)
        else:
            doing = "outside any implementation call"
        self.attempts[worker.shard] += 1
        if self.attempts[worker.shard] < MAX_ATTEMPTS:
            self.pending.appendleft(worker.shard)
            isolated = f" with {orphan.implementation} isolated" if orphan and orphan.case else ""
            self.notes.append(f"workers: the worker running shard {index}/{count} died ({how}) {doing}; "
                              f"the shard runs again{isolated}")
        else:
            self.incomplete.append(f"shard {index}/{count} was not checked: its worker died {MAX_ATTEMPTS} "
                                   f"times (last {how} {doing})")

    def _stop_on_interrupt(self) -> None:
        """Pass Ctrl-C on to every busy worker once and keep what they report within the
        grace period (the rest are stopped by `_stop`)."""
        self.pending.clear()
        busy = [worker for worker in self.workers if worker.shard is not None]
        for worker in busy:
            os.kill(worker.process.pid, signal.SIGINT)
        end = time.monotonic() + INTERRUPT_GRACE
        while busy and time.monotonic() < end:
            ready = wait([w.process.sentinel for w in busy] + [w.connection for w in busy],
                         timeout=end - time.monotonic())
            if not ready:
                break
            self._collect(ready)
            busy = [worker for worker in self.workers if worker.shard is not None]
        self.incomplete.clear()  # an interrupted campaign is reported as such

    def _stop(self) -> None:
        """Tell idle workers to finish; kill those still busy (their journals go: an outside
        kill blames no one)."""
        for worker in self.workers:
            if worker.shard is None:
                with contextlib.suppress(OSError):
                    worker.connection.send(None)
                worker.process.join(timeout=INTERRUPT_GRACE)
            if worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.join()
            (self.journals / f"{worker.process.pid}.json").unlink(missing_ok=True)
            worker.connection.close()
        self.workers.clear()


def run_campaign(specs: list[str], implementations: list[Implementation], max_examples: int, seed: int,
                 shards: list[tuple[int, int]], workers: int, isolate: bool | set[str], max_seconds: float | None,
                 corpus: Path | None, journals: Path | None, show: Callable[[int, int, int], None] | None = None
                 ) -> tuple[CampaignResult, list[str], list[str]]:
    """Run ``shards`` of the campaign here one after another (``workers`` 1), or over
    ``workers`` worker processes; the merged result, the lines saying what was saved, and
    what happened to workers that died. ``implementations`` (those ``specs`` name) only
    say how many cases are planned, for ``show``."""
    examples = shard_plan(max_examples, seed, shards[0])[0]
    tracker = Tracker(planned_cases(implementations, examples), len(shards), show)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    if workers > 1:
        # What every worker would otherwise do for itself, done once here and inherited:
        # torch's autograd set-up imports sympy (most of a second), once per process.
        prepare_autograd()
        with tempfile.TemporaryDirectory(prefix="im2col-harness-journals-") as scratch:
            pool = _Workers(specs, max_examples, seed, shards, workers, isolate, deadline, corpus,
                            journals or Path(scratch), tracker)
            finished = pool.run()
        merged = merge(pool.results, seed)
        merged.interrupted = merged.interrupted or not finished
        merged.incomplete += pool.incomplete
        return merged, pool.saved, pool.notes
    results, saved = [], []
    for shard in shards:
        if deadline is not None and time.monotonic() >= deadline:
            break  # out of time: the shards left are not owed
        remaining = None if deadline is None else deadline - time.monotonic()
        result, lines = run_shard(specs, max_examples, seed, shard, isolate, remaining, corpus, journals,
                                  tracker.progress(shard))
        tracker.finished(shard, result)
        results.append(result)
        saved += lines
        if result.interrupted:
            break
    return merge(results, seed), saved, []
