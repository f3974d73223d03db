"""A campaign's shards on a Dask cluster: the engine beyond one machine.

``fuzz --scheduler tcp://HOST:PORT`` runs the campaign's fixed shard plan
(`harness.parallel`), so ``--seed S`` draws the same cases as ``--workers N`` or
``--shard i/n`` would; each shard is one Dask task that runs `parallel.run_shard` on a
worker and sends back the shard's `CampaignResult`. Workers share no filesystem with this
process, so a task saves nothing: this process saves each shard's findings to its own
corpus as the shard ends, and merges the results as `parallel.merge` does. The workers
need the project and the implementations installed (Dask ships the task, not the code).
``--scheduler local:N`` starts a `LocalCluster` of N worker processes here, for a try.

Each worker is handed a shard to run and the next to wait behind it (`QUEUED_PER_WORKER`),
so that it does not idle for a round trip to this process between shards; at the deadline,
no shard left waiting starts. ``--max-seconds`` reaches a task as a deadline on the wall
clock (machines' monotonic clocks are not comparable; their wall clocks agree to within
what NTP keeps them), so a shard that waited runs for what is left, not for what was.
A worker process runs one shard at a time whatever its thread count: the checks read and
put back process-wide state (torch's switches, the working directory, ...), which two
shards in one process would mix up.

A worker can die (an implementation segfaults, the OOM killer, a node is lost). Dask then
runs its task again on another worker, up to the scheduler's ``allowed-failures`` (3 by
default), and after that gives up on it (KilledWorker). Each run of a task counts itself
in the scheduler's metadata for the task's key (gone with the task), and a run that is not
the first runs every implementation isolated in a child process: there a crash is a
`crash` finding of the implementation that crashed, and costs that case only. Dask blames
a death on every task the worker held, those only waiting there too, so a shard Dask gave
up on gets one more task, isolated from the start, before it is given up. A shard's result
is counted once, when its task ends (a run cut short by a death sent nothing); a shard not
run to its end is said to be incomplete, so the campaign exits 1, never "ok".

Calls made in a worker's own process have no time limit: Dask runs tasks in a thread, and
the harness's limit is SIGALRM, which only a main thread gets. Implementations that may
hang are fuzzed with ``--isolate`` (every child process keeps its limit).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis.errors import HypothesisDeprecationWarning

from harness.campaign import CampaignResult, Progress, planned_cases
from harness.compare import ABNORMAL
from harness.corpus import save_findings
from harness.parallel import INTERRUPT_GRACE, PROGRESS_SECONDS, Tracker, merge, run_shard, shard_plan
from harness.provenance import provenance
from harness.registry import Implementation, SpecError, discover
from harness.text import clipped, message, one_line

if TYPE_CHECKING:
    from distributed import Client, Future, as_completed

INSTALL = "pip install 'im2col-harness[dask]'"
CONNECT_SECONDS = 10.0  # to reach a running scheduler
POLL_SECONDS = 0.1  # how long this process waits for news before looking at the clock again
QUEUED_PER_WORKER = 2  # shards handed to each worker at a time: the one it runs, and its next
WORKERS_SECONDS = 2.0  # how often to ask how many workers there are, while shards wait
# A Dask worker samples its tasks' stacks every 10 ms for its dashboard's profile: with
# Hypothesis's deep stacks, 12% of a 2-worker campaign's checks on 2 cores (benchmarks/scaling.py).
# Set for the workers started here; the README says how to set it for a cluster's
# (DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False).
PROFILE_OFF = {"distributed.worker.profile.enabled": False}

_one_shard_at_a_time = threading.Lock()  # per worker process: see the module's docstring
_stopping: set[str] = set()  # campaigns whose driver was interrupted (by their progress topic)


class ClusterError(Exception):
    """The cluster cannot be used (Dask not installed, no scheduler there): one line."""


class ShardError(Exception):
    """A shard that a worker cannot run: an implementation does not load there."""


@dataclass(frozen=True)
class Scheduler:
    """Where the shards run: a running scheduler, by address, or ``local`` worker
    processes started here."""

    address: str = ""
    local: int = 0

    def __str__(self) -> str:
        return self.address or f"local:{self.local}"


def parse_scheduler(text: str) -> Scheduler:
    """'tcp://10.0.0.5:8786' -> that scheduler; 'local:2' -> two worker processes here."""
    kind, colon, count = text.partition(":")
    if kind == "local" and colon:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"expected local:N with N at least 1, got {text!r}")
        return Scheduler(local=int(count))
    protocol, separator, where = text.partition("://")
    if not separator or not protocol.isalpha() or not where:
        raise ValueError(f"expected a Dask scheduler's address (tcp://HOST:PORT) or local:N "
                         f"(N worker processes here), got {text!r}")
    return Scheduler(address=text)


def require() -> None:
    """Dask's ``distributed`` is an optional dependency: say how to get it."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError(f"--scheduler needs Dask's distributed, which is not installed here: {INSTALL}") from None


def versions() -> tuple[str, ...]:
    """What a finding's behaviour may depend on, besides the implementation."""
    found = provenance()
    return f"torch {found['torch']}", f"Python {found['python']}", f"harness {found['harness']}"


# -- on a worker --------------------------------------------------------------------------

@dataclass
class ShardDone:
    """What a shard's task sends back."""

    result: CampaignResult
    attempt: int  # 1; more when Dask ran the task again after a worker running it died
    worker: str
    versions: tuple[str, ...]


def _run_shard_task(topic: str, modules: list[str], specs: list[str], max_examples: int, seed: int,
                    shard: tuple[int, int], isolate: bool | set[str], deadline: float | None) -> ShardDone:
    """One shard on a Dask worker, with no corpus, until ``deadline`` (`time.time`); progress
    said on ``topic``; ``modules`` are the harness's modules the driver has imported."""
    from distributed import get_client, get_worker

    # Hypothesis draws some values from the constants in the source of the local modules
    # the process has imported (hypothesis.internal.conjecture.providers), so a worker
    # draws the cases the driver does only with the driver's modules imported.
    for name in modules:
        importlib.import_module(name)

    with _one_shard_at_a_time:
        worker = get_worker()
        key = worker.get_current_task()
        client = get_client()
        attempt = client.get_metadata(key, 0) + 1
        client.set_metadata(key, attempt)
        try:
            registry = discover(specs)
        except SpecError as error:
            raise ShardError(f"on {worker.address}: {error}") from None
        if registry.errors:
            failed = registry.errors[0]
            raise ShardError(f"on {worker.address}: {failed.name} did not load: {failed.reason} "
                             "(are the project and the implementations installed on every worker?)")
        # An isolated implementation runs in a child of this process, and Dask's nanny
        # starts workers as daemons (distributed.worker.daemon), which multiprocessing
        # forbids children. Flagged here, in this process only: the nanny still treats it
        # as the daemon it started.
        multiprocessing.current_process().daemon = False
        worker.log_event(topic, [*shard, attempt, 0, []])  # started
        left = None if deadline is None else max(deadline - time.time(), 0.0)
        with warnings.catch_warnings():
            # Hypothesis warns when the global `random` moved while it drew a case, as if a
            # strategy had used it; here the worker's own threads (Dask's) use it meanwhile.
            warnings.filterwarnings("ignore", "Do not use the `random` module inside strategies",
                                    HypothesisDeprecationWarning)
            result, _ = run_shard(specs, max_examples, seed, shard, True if attempt > 1 else isolate, left, None,
                                  None, _progress(worker, topic, shard, attempt))
    return ShardDone(result, attempt, worker.address, versions())


def _progress(worker: Any, topic: str, shard: tuple[int, int], attempt: int) -> Progress:
    """Say how far the shard got on ``topic`` (at most every `PROGRESS_SECONDS`), and end it,
    keeping what it found, once its driver was interrupted (`_stop`)."""
    said = [time.monotonic()]

    def progress(done: int, planned: int, bugs: frozenset[tuple[str, str, tuple[str, ...]]]) -> None:
        if topic in _stopping:
            raise KeyboardInterrupt  # what `fuzz` ends a campaign on, with what it found so far
        now = time.monotonic()
        if now - said[0] >= PROGRESS_SECONDS:
            said[0] = now
            worker.log_event(topic, [*shard, attempt, done, [[name, how, list(needs)] for name, how, needs in bugs]])
    return progress


def _stop(topic: str) -> None:
    """Run on every worker when the driver is interrupted: its shards end at their next draw."""
    _stopping.add(topic)


# -- here -----------------------------------------------------------------------------------

@dataclass
class ClusterRun:
    result: CampaignResult
    saved: list[str]  # what was saved to the corpus, one line per file
    notes: list[str]  # shards run again, workers with other versions
    workers: int  # the most workers the cluster had while the campaign ran


def run_campaign(scheduler: Scheduler, specs: list[str], implementations: list[Implementation], max_examples: int,
                 seed: int, shards: list[tuple[int, int]], isolate: bool | set[str], max_seconds: float | None,
                 corpus: Path | None, show: Callable[[int, int, int], None] | None = None) -> ClusterRun:
    """Run ``shards`` of the campaign on the cluster; ``implementations`` (those ``specs``
    name, loaded here) only say how many cases are planned, for ``show``."""
    require()
    examples = shard_plan(max_examples, seed, shards[0])[0]
    tracker = Tracker(planned_cases(implementations, examples), len(shards), show)
    with _client(scheduler) as client:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        driver = _Driver(client, specs, max_examples, seed, shards, isolate, deadline, corpus, tracker)
        finished = driver.run()
    merged = merge([driver.results[shard] for shard in shards if shard in driver.results], seed)
    merged.interrupted = merged.interrupted or not finished
    merged.incomplete += driver.incomplete
    return ClusterRun(merged, driver.saved, driver.notes, driver.most_workers)


@contextmanager
def _client(scheduler: Scheduler) -> Iterator[Client]:
    """A client of the running scheduler, or of a `LocalCluster` started (and stopped) here."""
    import dask.config
    from distributed import Client, LocalCluster
    from distributed.comm.registry import get_backend

    if scheduler.local:
        # Ctrl-C at a terminal reaches the whole foreground process group, these workers
        # too: they ignore it (as do the workers their nannies restart: an ignored signal
        # stays ignored in a child), and this process asks their shards to stop.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            # The scheduler serves HTTP whatever the dashboard says: on a free port, not on
            # 8787, which another cluster may hold (Dask would warn). Workers' profiling is
            # off (`PROFILE_OFF`).
            with dask.config.set(PROFILE_OFF):
                cluster = LocalCluster(n_workers=scheduler.local, threads_per_worker=1, processes=True,
                                       silence_logs=logging.CRITICAL, dashboard_address=":0")
        except Exception as error:
            raise ClusterError(f"--scheduler {scheduler}: could not start a Dask cluster here: "
                               f"{one_line(message(error, 300))}") from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        get_backend(scheduler.address.partition("://")[0])
        client = Client(scheduler.address, timeout=CONNECT_SECONDS)
    except (OSError, ValueError) as error:
        raise ClusterError(f"--scheduler {one_line(clipped(scheduler.address, 200))}: no Dask scheduler to connect "
                           f"to there: {one_line(message(error, 300))}") from None
    with client:
        yield client


class _Driver:
    """Hands the shards out to the cluster's workers and takes their results back as each
    ends: saved, counted, and shown in the progress line."""

    def __init__(self, client: Client, specs: list[str], max_examples: int, seed: int, shards: list[tuple[int, int]],
                 isolate: bool | set[str], deadline: float | None, corpus: Path | None, tracker: Tracker) -> None:
        from distributed import as_completed

        self.client, self.specs, self.max_examples, self.seed = client, specs, max_examples, seed
        self.isolate, self.deadline, self.corpus, self.tracker = isolate, deadline, corpus, tracker
        self.topic = f"im2col-harness-{uuid.uuid4().hex}"  # this campaign's progress, and its name on workers
        self.modules = sorted(name for name in sys.modules if name.partition(".")[0] == "harness")
        self.pending = deque(shards)
        self.running: dict[Future[ShardDone], tuple[int, int]] = {}
        self.started: set[tuple[int, int]] = set()
        self.attempts: dict[tuple[int, int], int] = {}  # the latest run of each shard's task that spoke
        self.killed: dict[tuple[int, int], str] = {}  # shards Dask gave up a task of, and how
        self.results: dict[tuple[int, int], CampaignResult] = {}
        self.saved: list[str] = []
        self.notes: list[str] = []
        self.incomplete: list[str] = []
        self.events: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self.completed: as_completed = as_completed()
        self.workers = self.most_workers = 0
        self.look_again = 0.0  # when to ask the scheduler how many workers there are

    def run(self) -> bool:
        """Run every shard; False when Ctrl-C stopped it."""
        # Called on the client's event loop thread: only queued, for this one to act on.
        self.client.subscribe_topic(self.topic, lambda event: self.events.put(event[1]))
        try:
            while True:
                self._hand_out()
                if not self.running:
                    break
                for future in self.completed.next_batch(block=False):
                    self._ended(future)
                self._said(POLL_SECONDS)
                self._at_deadline()
        except KeyboardInterrupt:
            self._interrupted()
            return False
        except OSError as error:  # the scheduler is gone (distributed's CommClosedError is one)
            why = f"the connection to the Dask scheduler was lost ({one_line(message(error))})"
            self.incomplete += [f"shard {index}/{count} was not checked: {why}"
                                for index, count in sorted([*self.running.values(), *self.pending])]
            self.running.clear()
            self.pending.clear()
        finally:
            try:
                self.client.cancel(list(self.running))  # not waited for: given up, or interrupted
                self.client.unsubscribe_topic(self.topic)
            except OSError:
                pass  # no scheduler to tell
        return True

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _hand_out(self) -> None:
        """`QUEUED_PER_WORKER` shards per worker, with the deadline."""
        if self._out_of_time():
            self.pending.clear()  # these shards are not owed
        while self.pending and len(self.running) < QUEUED_PER_WORKER * self._workers():
            shard = self.pending.popleft()
            left = None if self.deadline is None else time.time() + (self.deadline - time.monotonic())
            isolate = True if shard in self.killed else self.isolate
            future = self.client.submit(_run_shard_task, self.topic, self.modules, self.specs, self.max_examples,
                                        self.seed, shard, isolate, left, pure=False)
            self.running[future] = shard
            self.completed.add(future)

    def _workers(self) -> int:
        """How many workers the cluster has (asked now and then: workers come and go); at
        least one, so that a shard waits for a worker to join a cluster that has none."""
        if time.monotonic() >= self.look_again:
            self.workers = len(self.client.nthreads())
            self.most_workers = max(self.most_workers, self.workers)
            self.look_again = time.monotonic() + WORKERS_SECONDS
        return max(1, self.workers)

    def _ended(self, future: Future[ShardDone]) -> None:
        from distributed import KilledWorker

        shard = self.running.pop(future, None)
        if shard is None:
            return  # cancelled here, at the deadline
        index, count = shard
        try:
            done = future.result()
        except KilledWorker as error:
            # Dask blames a death on the tasks waiting on the worker too: "holding", not "running".
            why = f"Dask gave up on its task after {error.allowed_failures + 1} workers holding it died (KilledWorker)"
            if shard in self.killed:
                self.incomplete.append(f"shard {index}/{count} was not checked: {why}, twice; the scheduler's "
                                       "distributed.scheduler.allowed-failures says how many deaths a task may cost")
            else:
                self.killed[shard] = why
                self.pending.appendleft(shard)
            return
        except Exception as error:
            why = one_line(f"{type(error).__name__}: {message(error, 400)}")
            self.incomplete.append(f"shard {index}/{count} was not checked: {why}")
            return
        assert shard not in self.results, f"shard {index}/{count} counted twice"
        if self.corpus is not None:
            self.saved += save_findings(done.result.findings, self.seed, self.corpus)
        self.results[shard] = done.result
        self.tracker.finished(shard, done.result)
        if shard in self.killed or done.attempt > 1:
            why = self.killed.get(shard, "a worker running it was lost (it died, or left the cluster)")
            self.notes.append(f"cluster: shard {index}/{count} ran again on {done.worker}, with every implementation "
                              f"isolated: {why}")
            self._isolate_from_now_on(done.result)
        if done.versions != versions():
            self.notes.append(f"cluster: worker {done.worker} runs {', '.join(done.versions)}, this process "
                              f"{', '.join(versions())}: the corpus records this process's")

    def _isolate_from_now_on(self, isolated_run: CampaignResult) -> None:
        """As with local workers: an implementation found crashing (by a run that isolated
        it) runs isolated in every shard handed out from now on, and kills no more workers.
        (Shards already handed out may still lose a worker to it; their runs again isolate.)"""
        if self.isolate is True:
            return
        isolated = set(self.isolate or ())
        crashed = {f.implementation for f in isolated_run.findings if f.verdict.kind in ABNORMAL} - isolated
        for name in sorted(crashed):
            self.notes.append(f"cluster: {name} crashed a worker's process; it runs isolated in the shards handed out "
                              "from now on")
        self.isolate = isolated | crashed

    def _said(self, timeout: float) -> None:
        """Take in what the running shards said about their progress, waiting at most ``timeout``."""
        try:
            said = self.events.get(timeout=timeout)
            while True:
                index, count, attempt, done, bugs = said
                shard = (index, count)
                # A run's word counts until its shard ends or a later run of it starts.
                if shard not in self.results and attempt >= self.attempts.get(shard, 0):
                    self.attempts[shard] = attempt
                    self.started.add(shard)
                    self.tracker.update(shard, done, frozenset((name, how, tuple(needs)) for name, how, needs in bugs))
                said = self.events.get_nowait()
        except queue.Empty:
            pass

    def _at_deadline(self) -> None:
        """Out of time: a shard whose task has not started is not owed either."""
        if not self._out_of_time():
            return
        waiting = [future for future, shard in self.running.items() if shard not in self.started]
        for future in waiting:
            del self.running[future]
        if waiting:
            self.client.cancel(waiting)

    def _interrupted(self) -> None:
        """Cancel the shards not started, ask the running ones to stop, and keep what they
        send back within `parallel.INTERRUPT_GRACE` (a second Ctrl-C stops the wait)."""
        self.pending.clear()
        try:
            waiting = [future for future, shard in self.running.items() if shard not in self.started]
            for future in waiting:
                del self.running[future]
            self.client.cancel(waiting)
            self.client.run(_stop, self.topic, on_error="ignore")  # a worker lost meanwhile has no shard to stop
            end = time.monotonic() + INTERRUPT_GRACE
            while self.running and time.monotonic() < end:
                for future in self.completed.next_batch(block=False):
                    self._ended(future)
                self._said(POLL_SECONDS)
        except KeyboardInterrupt:
            pass
        self.incomplete.clear()  # an interrupted campaign is reported as such
