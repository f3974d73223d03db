"""A campaign's shards on a Dask cluster: the engine beyond one machine.

``fuzz --scheduler tcp://HOST:PORT`` runs the campaign's fixed shard plan
(`harness.backends.base`), so ``--seed S`` draws the same cases as ``--workers N`` or
``--shard i/n`` would; each shard is one Dask task that runs `base.run_shard` on a
worker and sends back the shard's `CampaignResult`. Workers share no filesystem with this
process, so a task saves nothing: this process saves each shard's findings to its own
corpus as the shard ends (`base.Ledger`), and merges the results as every backend does. The workers
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

Ctrl-C here is noted (`runner.user_interrupts`) and acted on where the driver looks for
news: the shards not started are cancelled, the running ones asked to stop and their
results kept for `base.INTERRUPT_GRACE` (a second Ctrl-C stops the wait). Raised
wherever Python happened to be, a KeyboardInterrupt could land inside Dask's closing of
the client or the cluster, and leave them half closed (Client.__del__ then printed "IOLoop
is closed").

Calls made in a worker's own process have no time limit: Dask runs tasks in a thread, and
the harness's limit is SIGALRM, which only a main thread gets. Implementations that may
hang are fuzzed with ``--isolate`` (every child process keeps its limit).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hypothesis.errors import HypothesisDeprecationWarning

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
from harness.backends.plan import INSTALL, Scheduler, Shard
from harness.campaign.engine import CampaignResult, Progress
from harness.execute.runner import interrupt, stop_if_interrupted, user_interrupts
from harness.judge.compare import ABNORMAL
from harness.model.finding import BugKey, BugTag
from harness.model.provenance import provenance
from harness.model.registry import SpecError, discover
from harness.model.text import clipped, message, one_line

if TYPE_CHECKING:
    from distributed import Client, Future, as_completed

CONNECT_SECONDS = 10.0  # to reach a running scheduler
QUEUED_PER_WORKER = 2  # shards handed to each worker at a time: the one it runs, and its next
WORKERS_SECONDS = 2.0  # how often to ask how many workers there are, while shards wait
# A Dask worker samples its tasks' stacks every 10 ms for its dashboard's profile: with
# Hypothesis's deep stacks, 12% of a 2-worker campaign's checks on 2 cores (benchmarks/scaling.py).
# Set for the workers started here; the README says how to set it for a cluster's
# (DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False).
PROFILE_OFF = {"distributed.worker.profile.enabled": False}

_one_shard_at_a_time = threading.Lock()  # per worker process: see the module's docstring
_stopping: set[str] = set()  # campaigns whose driver was interrupted (by their progress topic)
_running: list[str | None] = [None]  # the campaign whose shard this worker process runs now


class ClusterError(Exception):
    """The cluster cannot be used (Dask not installed, no scheduler there): one line."""


class ShardError(Exception):
    """A shard that a worker cannot run: an implementation does not load there."""


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


def _run_shard_task(
    topic: str,
    options: Options,
    shard: Shard,
    isolate: bool | frozenset[str],
    deadline: float | None,
) -> ShardDone:
    """One shard on a Dask worker, until ``deadline`` (`time.time`); progress said on
    ``topic``; ``options`` the campaign's, `Options.portable`."""
    from distributed import get_client, get_worker

    with _one_shard_at_a_time:
        worker = get_worker()
        key = worker.get_current_task()
        client = get_client()
        attempt = client.get_metadata(key, 0) + 1
        client.set_metadata(key, attempt)
        try:
            registry = discover(options.specs)
        except SpecError as error:
            raise ShardError(f"on {worker.address}: {error}") from None
        if registry.errors:
            failed = registry.errors[0]
            raise ShardError(
                f"on {worker.address}: {failed.name} did not load: {failed.reason} "
                "(are the project and the implementations installed on every worker?)"
            )
        # An isolated implementation runs in a child of this process, and Dask's nanny
        # starts workers as daemons (distributed.worker.daemon), which multiprocessing
        # forbids children. Flagged here, in this process only: the nanny still treats it
        # as the daemon it started.
        multiprocessing.current_process().daemon = False
        worker.log_event(topic, [shard.index, shard.count, attempt, 0, []])  # started
        left = None if deadline is None else max(deadline - time.time(), 0.0)
        _running[0] = topic
        try:
            with warnings.catch_warnings():
                # Hypothesis warns when the global `random` moved while it drew a case, as if a
                # strategy had used it; here the worker's own threads (Dask's) use it meanwhile.
                warnings.filterwarnings(
                    "ignore", "Do not use the `random` module inside strategies", HypothesisDeprecationWarning
                )
                loaded = replace(options, implementations=tuple(registry.implementations.values()))
                result = run_shard(
                    loaded, shard, True if attempt > 1 else isolate, left, _progress(worker, topic, shard, attempt)
                )
        finally:
            _running[0] = None
    return ShardDone(result, attempt, worker.address, versions())


def _progress(worker: Any, topic: str, shard: Shard, attempt: int) -> Progress:
    """Say how far the shard got on ``topic`` (at most every `PROGRESS_SECONDS`), and end it,
    keeping what it found, once its driver was interrupted (`_stop`)."""

    def said(done: int, planned: int, bugs: BugTags) -> None:
        worker.log_event(
            topic,
            [
                shard.index,
                shard.count,
                attempt,
                done,
                [
                    [key.implementation, key.signature, list(key.needs), failure, list(size), settled]
                    for key, failure, size, settled in bugs
                ],
            ],
        )

    throttled = every(PROGRESS_SECONDS, said)

    def progress(done: int, planned: int, bugs: BugTags) -> None:
        if topic in _stopping:
            raise KeyboardInterrupt  # what `fuzz` ends a campaign on, with what it found so far
        throttled(done, planned, bugs)

    return progress


def _stop(topic: str) -> None:
    """Run on every worker when the driver is interrupted: its shard running here ends at its
    next call (one shrinking a bug too), as one in a process of its own ends at Ctrl-C; one
    that starts later ends at its first draw."""
    _stopping.add(topic)
    if _running[0] == topic:
        interrupt()


# -- here -----------------------------------------------------------------------------------


class Dask:
    """The shards as tasks on a Dask cluster: a running scheduler's, or a `LocalCluster`'s
    started here (``local:N``)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler, self.place = scheduler, f"on Dask ({scheduler})"
        self.workers = 0  # the most the cluster had while the shards ran

    def run(self, ledger: Ledger) -> bool:
        require()
        with user_interrupts(), _client(self.scheduler) as client:
            options = ledger.options
            deadline = None if options.max_seconds is None else time.monotonic() + options.max_seconds
            driver = _Driver(client, ledger, deadline)
            try:
                return driver.run()
            finally:
                self.workers = driver.most_workers


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
                cluster = LocalCluster(
                    n_workers=scheduler.local,
                    threads_per_worker=1,
                    processes=True,
                    silence_logs=logging.CRITICAL,
                    dashboard_address=":0",
                )
        except Exception as error:
            raise ClusterError(
                f"--scheduler {scheduler}: could not start a Dask cluster here: {one_line(message(error, 300))}"
            ) from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        with cluster, Client(cluster) as client:  # Ctrl-C meanwhile is noted: see the module's docstring
            yield client
        return
    try:
        get_backend(scheduler.address.partition("://")[0])
        client = Client(scheduler.address, timeout=CONNECT_SECONDS)
    except (OSError, ValueError) as error:
        raise ClusterError(
            f"--scheduler {one_line(clipped(scheduler.address, 200))}: no Dask scheduler to connect "
            f"to there: {one_line(message(error, 300))}"
        ) from None
    with client:
        yield client


class _Driver:
    """Hands the shards out to the cluster's workers and takes their results back as each
    ends: saved, counted, and shown in the progress line."""

    def __init__(self, client: Client, ledger: Ledger, deadline: float | None) -> None:
        from distributed import as_completed

        self.client, self.ledger, self.deadline = client, ledger, deadline
        self.options = ledger.options.portable()
        self.topic = f"im2col-harness-{uuid.uuid4().hex}"  # this campaign's progress, and its name on workers
        self.pending = deque(ledger.options.shards)
        self.running: dict[Future[ShardDone], Shard] = {}
        self.started: set[Shard] = set()
        self.attempts: dict[Shard, int] = {}  # the latest run of each shard's task that spoke
        self.killed: dict[Shard, str] = {}  # shards Dask gave up a task of, and how
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
                stop_if_interrupted()
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
            for shard in sorted([*self.running.values(), *self.pending]):
                self.ledger.not_checked(shard, why)
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
            isolate = True if shard in self.killed else self.ledger.isolating()
            future = self.client.submit(_run_shard_task, self.topic, self.options, shard, isolate, left, pure=False)
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
        try:
            done = future.result()
        except KilledWorker as error:
            # Dask blames a death on the tasks waiting on the worker too: "holding", not "running".
            why = f"Dask gave up on its task after {error.allowed_failures + 1} workers holding it died (KilledWorker)"
            if shard in self.killed:
                self.ledger.not_checked(
                    shard,
                    f"{why}, twice; the scheduler's distributed.scheduler.allowed-failures "
                    "says how many deaths a task may cost",
                )
            else:
                self.killed[shard] = why
                self.pending.appendleft(shard)
            return
        except Exception as error:
            self.ledger.not_checked(shard, one_line(f"{type(error).__name__}: {message(error, 400)}"))
            return
        self.ledger.finished(shard, done.result)
        if shard in self.killed or done.attempt > 1:
            why = self.killed.get(shard, "a worker running it was lost (it died, or left the cluster)")
            self.ledger.notes.append(
                f"cluster: shard {shard} ran again on {done.worker}, with every implementation isolated: {why}"
            )
            self._isolate_from_now_on(done.result)
        if done.versions != versions():
            self.ledger.notes.append(
                f"cluster: worker {done.worker} runs {', '.join(done.versions)}, this process "
                f"{', '.join(versions())}: the corpus records this process's"
            )

    def _isolate_from_now_on(self, isolated_run: CampaignResult) -> None:
        """As with local workers: an implementation found crashing (by a run that isolated
        it) runs isolated in every shard handed out from now on, and kills no more workers.
        (Shards already handed out may still lose a worker to it; their runs again isolate.)"""
        crashed = {f.implementation for f in isolated_run.findings if f.verdict.kind in ABNORMAL}
        for name in sorted(crashed):
            if self.ledger.isolate_from_now_on(name):
                self.ledger.notes.append(
                    f"cluster: {name} crashed a worker's process; it runs isolated in the shards handed out from now on"
                )

    def _said(self, timeout: float) -> None:
        """Take in what the running shards said about their progress, waiting at most ``timeout``."""
        try:
            said = self.events.get(timeout=timeout)
            while True:
                index, count, attempt, done, bugs = said
                shard = Shard(index, count)
                # A run's word counts until its shard ends or a later run of it starts.
                if shard not in self.ledger.results and attempt >= self.attempts.get(shard, 0):
                    self.attempts[shard] = attempt
                    self.started.add(shard)
                    tags = frozenset(
                        BugTag(BugKey(name, how, tuple(needs)), failure, tuple(size), settled)
                        for name, how, needs, failure, size, settled in bugs
                    )
                    self.ledger.said(shard, done, tags)
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
        send back within `base.INTERRUPT_GRACE` (a second Ctrl-C stops the wait)."""
        self.pending.clear()
        try:
            with user_interrupts():  # from now on
                waiting = [future for future, shard in self.running.items() if shard not in self.started]
                for future in waiting:
                    del self.running[future]
                self.client.cancel(waiting)
                self.client.run(_stop, self.topic, on_error="ignore")  # a worker lost meanwhile has no shard to stop
                end = time.monotonic() + INTERRUPT_GRACE
                while self.running and time.monotonic() < end:
                    stop_if_interrupted()
                    for future in self.completed.next_batch(block=False):
                        self._ended(future)
                    self._said(POLL_SECONDS)
        except KeyboardInterrupt:
            pass
