"""A campaign's shards over worker processes here (``--workers N``), whose death costs at
most the case they were running.

A worker process can die: an implementation run in it segfaults, aborts or exits, or
something outside kills it. Its shard then has told nothing (a shard reports and saves
only when it ends), so the shard is run again from its start, with the implementation
the worker's journal says was running isolated from then on; the crash, if it was one,
shows again there and is reported like any other failure. A shard whose worker keeps
dying is given up after `MAX_ATTEMPTS`, and the campaign says it is incomplete: "ok"
always means checked. Ctrl-C reaches the workers through this process (they have process
groups of their own), so each ends its shard cleanly and what it found is kept.

Workers are not forks of this process, which has run torch (an OpenMP pool forked without
its threads hangs the worker's first parallel region): they start where isolated children
do (`isolation.context`), draw the cases this process would (a seed draws the same cases
in any process: `strategies.steady_draws`), and die with this process, however it dies
(`isolation.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.backends.base import (
    INTERRUPT_GRACE,
    POLL_SECONDS,
    PROGRESS_SECONDS,
    BugTags,
    Ledger,
    Options,
    every,
    run_shard,
)
from harness.backends.plan import Shard
from harness.execute.isolation import context, die_with_parent
from harness.execute.journal import read
from harness.execute.runner import stop_if_interrupted, user_interrupts

MAX_ATTEMPTS = 3  # runs of one shard before it is given up


def _serve_shards(connection: Connection, options: Options) -> None:
    """A worker process: says it is ready, then runs the shards it is sent, one after another
    (its caches stay warm: Hypothesis's strategies, torch's first calls), saving each one's
    findings (so that they survive whatever happens to the others) and sending its result
    back, until it is sent None. ``options``: the campaign's, `Options.portable`."""
    os.setpgid(0, 0)  # Ctrl-C at the terminal goes to the parent, which passes it on once
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a campaign listens for it; between them, no one
    die_with_parent()
    connection.send(("ready",))
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        shard, isolate, deadline = job
        max_seconds = None if deadline is None else max(deadline - time.monotonic(), 0.0)

        def progress(done: int, planned: int, bugs: BugTags, shard: Shard = shard) -> None:
            connection.send(("progress", shard, done, bugs))

        result = run_shard(options, shard, isolate, max_seconds, every(PROGRESS_SECONDS, progress))
        connection.send(("done", (result, options.save(result.findings))))


@dataclass
class _Worker:
    process: Any
    connection: Connection
    shard: Shard | None = None  # the one it is running


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class Processes:
    """Shards over N worker processes started from a forkserver that has imported torch
    (`isolation.context`), each taking the next shard when it finishes one; a worker that
    dies is replaced, and its shard run again with what its journal says was running isolated."""

    place = ""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.deadline: float | None = None  # set once the workers have started
        self.pending: deque[Shard] = deque()
        self.running: list[_Worker] = []
        self.attempts: Counter[Shard] = Counter()

    def run(self, ledger: Ledger) -> bool:
        """Run every shard; False when Ctrl-C stopped it. Ctrl-C is noted and acted on here,
        between waits (`runner.user_interrupts`), never raised in the middle of taking a
        result in or of stopping the workers. Without the options' journals, the workers
        journal in a folder of their own, gone afterwards."""
        with tempfile.TemporaryDirectory(prefix="im2col-harness-journals-") as scratch:
            self.ledger, self.pending = ledger, deque(ledger.options.shards)
            self.journals = ledger.options.journals or Path(scratch)
            self.options = replace(ledger.options.portable(), journals=self.journals)
            self.context = context(preload=("harness.backends.processes",))  # what a worker runs, imported once
            return self._run()

    def _run(self) -> bool:
        with user_interrupts():
            try:
                self._start_workers()
                while True:
                    stop_if_interrupted()
                    self._assign()
                    busy = [worker for worker in self.running if worker.shard is not None]
                    if not busy:
                        break
                    self._collect(
                        wait([w.process.sentinel for w in busy] + [w.connection for w in busy], timeout=POLL_SECONDS)
                    )
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
            idle = next((w for w in self.running if w.shard is None), None)
            if idle is None and len(self.running) < self.workers:
                idle = self._start()
            if idle is None:
                return
            idle.shard = self.pending.popleft()
            idle.connection.send((idle.shard, self.ledger.isolating(), self.deadline))

    def _start_workers(self) -> None:
        """Start the workers, and wait until each is ready (or dead) before the clock starts:
        starting them (the forkserver's import of torch, first) is not the campaign's time.
        One that died starting is left to be replaced when a shard needs it."""
        for _ in range(min(self.workers, len(self.pending))):
            self._start()
        starting = list(self.running)
        while starting:
            stop_if_interrupted()
            ready = wait([worker.connection for worker in starting], timeout=POLL_SECONDS)
            for worker in [w for w in starting if w.connection in ready]:
                starting.remove(worker)
                try:
                    worker.connection.recv()  # ("ready",)
                except (EOFError, OSError):
                    worker.process.join()
                    worker.connection.close()
                    self.running.remove(worker)
        if self.options.max_seconds is not None:
            self.deadline = time.monotonic() + self.options.max_seconds

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve_shards, name="im2col-harness worker", args=(theirs, self.options))
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self.running.append(worker)
        return worker

    def _collect(self, ready: list[Any]) -> None:
        for worker in [w for w in self.running if w.shard is not None]:
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
        if message[0] == "ready":
            return  # a worker started since `_start_workers`, its shard sent with it
        if message[0] == "progress":
            _, shard, done, bugs = message
            self.ledger.said(shard, done, bugs)
            return
        result, saved = message[1]
        self.ledger.finished(worker.shard, result, saved)
        worker.shard = None

    def _died(self, worker: _Worker) -> None:
        """A worker died: run its shard again, isolating whatever it was running."""
        assert worker.shard is not None
        worker.process.join()
        worker.connection.close()
        self.running.remove(worker)
        how = _how(worker.process.exitcode)
        journal = self.journals / f"{worker.process.pid}.json"
        parsed = read(journal)
        journal.unlink(missing_ok=True)  # the shard is run again: that call is checked again there
        orphan = None if parsed is None else parsed[1]
        if orphan is not None and orphan.case is not None:
            doing = f"while running {orphan.implementation} on {orphan.case.id}"
            self.ledger.isolate_from_now_on(orphan.implementation)
        else:
            doing = "outside any implementation call"
        self.attempts[worker.shard] += 1
        if self.attempts[worker.shard] < MAX_ATTEMPTS:
            self.pending.appendleft(worker.shard)
            isolated = f" with {orphan.implementation} isolated" if orphan and orphan.case else ""
            self.ledger.notes.append(
                f"workers: the worker running shard {worker.shard} died ({how}) {doing}; the shard runs again{isolated}"
            )
        else:
            self.ledger.not_checked(worker.shard, f"its worker died {MAX_ATTEMPTS} times (last {how} {doing})")

    def _stop_on_interrupt(self) -> None:
        """Pass Ctrl-C on to every busy worker once and keep what they report within the
        grace period, or until Ctrl-C again (the rest are stopped by `_stop`)."""
        self.pending.clear()
        busy = [worker for worker in self.running if worker.shard is not None]
        for worker in busy:
            os.kill(worker.process.pid, signal.SIGINT)
        end = time.monotonic() + INTERRUPT_GRACE
        try:
            with user_interrupts():  # from now on
                while busy and time.monotonic() < end:
                    stop_if_interrupted()
                    self._collect(
                        wait(
                            [w.process.sentinel for w in busy] + [w.connection for w in busy],
                            timeout=min(POLL_SECONDS, end - time.monotonic()),
                        )
                    )
                    busy = [worker for worker in self.running if worker.shard is not None]
        except KeyboardInterrupt:
            pass

    def _stop(self) -> None:
        """Tell idle workers to finish; kill those still busy (their journals go: an outside
        kill blames no one)."""
        for worker in self.running:
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
        self.running.clear()
