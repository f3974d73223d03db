"""Spread a campaign over processes: shards with their own seed streams, and workers whose
death costs at most the case they were running.

A campaign of N cases per implementation split into n shards is n campaigns of N/n cases,
shard i drawing from a seed derived from (seed, i, n) the same way everywhere; results
merge by keeping, for each bug, the smallest case any shard found (what ``corpus merge``
does for corpora). ``fuzz --shard i/n`` runs one shard; ``fuzz --workers N`` runs
`SHARDS_PER_WORKER` * N shards, N at a time, each in a process of its own.

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

import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.campaign import CampaignResult, Finding, Progress, Tally, derive_seed, fuzz
from harness.corpus import save_findings, size
from harness.journal import Journal, read
from harness.registry import discover
from harness.supervisor import Supervisor

# More shards than workers: shards differ in cost (cases differ in size), and a worker that
# finishes early takes the next shard instead of waiting for the slowest.
SHARDS_PER_WORKER = 4
MAX_ATTEMPTS = 3  # runs of one shard before it is given up
INTERRUPT_GRACE = 10.0  # seconds workers get after Ctrl-C to save and report what they found


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); shards count from 1 so that 'i/n' reads as 'i of n'."""
    index, slash, count = text.partition("/")
    if not slash or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise ValueError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return int(index), int(count)


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
    smallest: dict[tuple[str, str], Finding] = {}
    for result in results:
        for name, tally in result.tallies.items():
            total = merged.tallies.setdefault(name, Tally())
            total.examples += tally.examples
            total.statuses.update(tally.statuses)
            total.coverage.update(tally.coverage)
        for finding in result.findings:
            key = (finding.implementation, finding.signature)
            if key not in smallest or size(finding.case) < size(smallest[key].case):
                smallest[key] = finding
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
    saved = save_findings(result, corpus) if corpus is not None else []
    return replace(result, seed=seed), saved


def _run_in_worker(results: Connection, specs: list[str], max_examples: int, seed: int, shard: tuple[int, int],
                   isolate: bool | set[str], deadline: float | None, corpus: Path | None, journals: Path) -> None:
    """A worker process: one shard, its result sent back through ``results``."""
    os.setpgid(0, 0)  # Ctrl-C at the terminal goes to the parent, which passes it on once
    max_seconds = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    try:
        outcome: Any = run_shard(specs, max_examples, seed, shard, isolate, max_seconds, corpus, journals)
    except KeyboardInterrupt:  # before the campaign began: it found nothing
        outcome = None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what was found goes back, whatever happens now
    results.send(outcome)


@dataclass
class _Worker:
    process: Any
    results: Connection
    shard: tuple[int, int]


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class _Workers:
    """Shards run N at a time, each in a forked process (torch is imported once, here)."""

    def __init__(self, specs: list[str], max_examples: int, seed: int, workers: int, isolate: bool | set[str],
                 max_seconds: float | None, corpus: Path | None, journals: Path) -> None:
        self.specs, self.max_examples, self.seed, self.workers = specs, max_examples, seed, workers
        self.isolate, self.corpus, self.journals = isolate, corpus, journals
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        shards = SHARDS_PER_WORKER * workers
        self.pending = deque((index, shards) for index in range(1, shards + 1))
        self.running: list[_Worker] = []
        self.attempts: Counter[tuple[int, int]] = Counter()
        self.results: list[CampaignResult] = []
        self.saved: list[str] = []
        self.notes: list[str] = []
        self.incomplete: list[str] = []
        self.context = multiprocessing.get_context("fork")

    def run(self) -> bool:
        """Run every shard; False when Ctrl-C stopped it."""
        try:
            while self.pending or self.running:
                self._start_what_fits()
                if self.running:
                    self._collect(wait([worker.process.sentinel for worker in self.running]
                                       + [worker.results for worker in self.running]))
        except KeyboardInterrupt:
            self._stop_on_interrupt()
            return False
        return True

    def _start_what_fits(self) -> None:
        while self.pending and len(self.running) < self.workers:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.pending.clear()  # out of time: these shards are not owed
                return
            shard = self.pending.popleft()
            receive, send = self.context.Pipe(duplex=False)
            isolate = self.isolate if self.isolate is True else set(self.isolate)
            process = self.context.Process(
                target=_run_in_worker, name=f"im2col-harness shard {shard[0]}/{shard[1]}",
                args=(send, self.specs, self.max_examples, self.seed, shard, isolate, self.deadline,
                      self.corpus, self.journals))
            process.start()
            send.close()
            self.running.append(_Worker(process, receive, shard))

    def _collect(self, ready: list[Any]) -> None:
        for worker in list(self.running):
            if worker.results not in ready and worker.process.sentinel not in ready:
                continue
            outcome = None
            try:
                if worker.results.poll():
                    outcome = worker.results.recv()
            except (EOFError, OSError):
                pass
            if outcome is None and worker.process.is_alive():
                continue  # the sentinel fired first: the result is on its way
            worker.process.join()
            self.running.remove(worker)
            worker.results.close()
            if outcome is None:
                self._died(worker)
            else:
                result, saved = outcome
                self.results.append(result)
                self.saved += saved

    def _died(self, worker: _Worker) -> None:
        """A shard's worker died: re-run the shard, isolating whatever it was running."""
        index, count = worker.shard
        how = _how(worker.process.exitcode)
        journal = self.journals / f"{worker.process.pid}.json"
        parsed = read(journal)
        journal.unlink(missing_ok=True)  # the shard is re-run: that call is checked again there
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
        """Pass Ctrl-C on to every worker once, keep what they report within the grace
        period, then stop the rest (their journals go: an outside kill blames no one)."""
        self.pending.clear()
        for worker in self.running:
            os.kill(worker.process.pid, signal.SIGINT)
        end = time.monotonic() + INTERRUPT_GRACE
        try:
            while self.running and time.monotonic() < end:
                ready = wait([w.process.sentinel for w in self.running] + [w.results for w in self.running],
                             timeout=end - time.monotonic())
                before = len(self.running)
                self._collect(ready)
                self.incomplete.clear()  # an interrupted campaign is reported as such
                if len(self.running) == before and not ready:
                    break
        finally:
            for worker in self.running:
                try:
                    os.killpg(worker.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                worker.process.join()
                (self.journals / f"{worker.process.pid}.json").unlink(missing_ok=True)
            self.running.clear()
            self.pending.clear()


def fuzz_in_workers(specs: list[str], max_examples: int, seed: int, workers: int, isolate: bool | set[str],
                    max_seconds: float | None, corpus: Path | None, journals: Path
                    ) -> tuple[CampaignResult, list[str], list[str]]:
    """The campaign as ``SHARDS_PER_WORKER * workers`` shards over ``workers`` processes,
    merged; also the lines saying what was saved, and what happened to workers that died."""
    pool = _Workers(specs, max_examples, seed, workers, isolate, max_seconds, corpus, journals)
    finished = pool.run()
    merged = merge(pool.results, seed)
    merged.interrupted = merged.interrupted or not finished
    merged.incomplete += pool.incomplete
    return merged, pool.saved, pool.notes
