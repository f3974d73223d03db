"""Run an implementation in a child process, so that the campaign survives whatever it does.

One child per implementation, forked from a forkserver that has already imported torch
(so a restart costs milliseconds, not an import), with SIGINT ignored (Ctrl-C is the
parent's business), an address-space cap (so an unbounded allocation fails in the
child instead of taking the machine) and a process group of its own (so that stopping it
stops whatever processes the implementation started too), which dies with the parent
(`die_with_parent`): a child hung in C outlives no campaign. The parent waits at most the
case's time limit: a child that does not answer is killed and the call is a "timeout";
one that dies is a "crash", with the signal that killed it. The next call starts a fresh
child. What crosses the pipe is plain data (`runner.Outcome`, a plain tensor): a result
that cannot be sent or received is a failure of that call, never of the campaign.

A child's standard output and error are scratch files its parent holds too
(`harness.execute.capture`): what a call writes comes back with its outcome, what a child wrote
before it crashed or hung is read by the parent and reported with the crash or timeout,
and none of it reaches the terminal. (What loading the implementation prints again in the
child, the parent's own import of it has already printed.)
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import pickle
import resource
import signal
import sys
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

import torch

from harness.execute.capture import Capture, last_words, scratch
from harness.execute.process_state import Guard, one_thread
from harness.execute.runner import call, prepare_autograd
from harness.generate.tensors import Inputs
from harness.model.case import Case
from harness.model.noise import Noise
from harness.model.outcome import Outcome
from harness.model.registry import Implementation
from harness.model.text import clipped

MEMORY_HEADROOM = 4 * 2**30  # bytes of address space a child may add to what torch maps
START_SECONDS = 120.0


def virtual_memory() -> int:
    """This process's address space in bytes (VmSize): a child's memory limit is set above it,
    since what torch alone maps varies by build (a CUDA build maps several GB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class _Handed:
    """A file descriptor of this process, handed to a child process as a copy of its own
    (the way multiprocessing hands over the ends of a pipe)."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor

    def __reduce__(self) -> tuple[Any, ...]:
        return (_received, (reduction.DupFd(self.descriptor),))


def _received(copy: Any) -> int:
    return int(copy.detach())


def _serve(connection: Connection, pickled: bytes, headroom: int | None, out: int, err: int) -> None:
    """The child: call the implementation on each case received, send back the outcome.
    ``out`` and ``err``: the scratch files its standard output and error are, from the start."""
    os.dup2(out, 1)
    os.dup2(err, 2)
    for stream in (sys.stdout, sys.stderr):  # a line written before a crash is in the file
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if headroom:
        limit = virtual_memory() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    implementation: Implementation = pickle.loads(pickled)  # its module is imported here, quietly
    one_thread()
    prepare_autograd()  # start-up, not a case, pays for it
    guard = Guard()
    capture = Capture((out, err))
    last_words((out, err))  # what starting printed is no call's
    connection.send("ready")
    while True:
        try:
            case, inputs, upstream = connection.recv()
        except EOFError:
            return
        outcome = call(implementation, case, inputs, inputs.clone(), upstream=upstream, guard=guard, capture=capture)
        try:
            connection.send(outcome)
        except Exception as error:  # plain data should always pickle; say so if it does not
            connection.send(Outcome(returned=outcome.returned, error_message=_unsendable(error), noise=outcome.noise))


def _unsendable(error: Exception) -> str:
    return f"a result that could not be passed between processes ({type(error).__name__}: {str(error)[:200]})"


def context(preload: tuple[str, ...] = ()) -> Any:
    """Where the harness's processes start (an isolated child here, a campaign's worker in
    `harness.backends.processes`): forked from a server that has imported torch, not from this
    process. torch's first import is paid once, and a child inherits no thread, lock or
    OpenMP pool this process used: forked from a process whose OpenMP pool has run, a
    child's first parallel region waits for ever for pool threads that were not forked.
    ``preload``: modules the server imports too, if this call starts it (one per process)."""
    forkserver = multiprocessing.get_context("forkserver")
    # The server imports these once, for every child it forks: torch (through this module),
    # and the module autograd.grad imports on first use (`runner.prepare_autograd`).
    forkserver.set_forkserver_preload(["harness.execute.isolation", "torch.fx.experimental.symbolic_shapes", *preload])
    return forkserver


def die_with_parent() -> None:
    """Have the kernel kill this process, and its process group if it leads one, when the
    process that started it dies, however that dies (kill -9 included): nothing else
    would stop a process that is hung, or busy for hours, once its parent is gone.

    Started from `context`, a process's parent is the forkserver, which stays up while any
    process it started lives: prctl's parent-death signal would never fire. What ends with
    the process that asked for this one is the pipe multiprocessing gives it as its
    parent's sentinel (the other end is the parent's alone): its last writer closing sends
    the pipe's owner the signal chosen with F_SETSIG. SIGKILL, sent by the kernel, needs
    no thread and no GIL here, so a process stuck in C dies too."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel
    killed = -os.getpid() if os.getpgrp() == os.getpid() else os.getpid()  # negative: the group
    fcntl.fcntl(sentinel, fcntl.F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(sentinel, fcntl.F_SETOWN, killed)
    fcntl.fcntl(sentinel, fcntl.F_SETFL, fcntl.fcntl(sentinel, fcntl.F_GETFL) | os.O_ASYNC)
    if not parent.is_alive():  # it died before the pipe was listened to
        os.kill(killed, signal.SIGKILL)


class Child:
    """A child process that runs one implementation; replaced after a crash or a timeout."""

    def __init__(self, implementation: Implementation, headroom: int | None = MEMORY_HEADROOM) -> None:
        self.implementation, self.headroom = implementation, headroom
        self.process: Any = None
        self.connection: Connection | None = None
        self.files: tuple[int, int] | None = None  # the child's stdout and stderr: scratch files

    def _start(self) -> None:
        if self.files is None:
            self.files = scratch(), scratch()
        parent_end, child_end = multiprocessing.Pipe()
        self.process = context().Process(
            target=_serve,
            args=(child_end, pickle.dumps(self.implementation), self.headroom, *map(_Handed, self.files)),
            daemon=True,
            name=f"im2col-harness {self.implementation.name}",
        )
        self.process.start()
        child_end.close()
        self.connection = parent_end
        # Start-up (the forkserver's first torch import) is not charged to any case.
        try:
            started = parent_end.poll(START_SECONDS) and parent_end.recv() == "ready"
        except (EOFError, OSError):
            started = False
        if not started:
            said = last_words(self.files)
            self.stop()
            raise RuntimeError(
                f"the child process for {self.implementation.name} did not start"
                + (f"; it wrote: {clipped(said.stderr or said.stdout)}" if said else "")
            )

    def call(self, case: Case, inputs: Inputs, seconds: float, upstream: torch.Tensor | None = None) -> Outcome:
        if self.process is None or not self.process.is_alive():
            self._start()
        assert self.connection is not None
        try:
            self.connection.send((case, inputs, upstream))
            answered = self.connection.poll(seconds)
            if answered:
                outcome: Outcome = self.connection.recv()
                return outcome
        except (EOFError, OSError):
            answered = True  # the pipe closed: the child died mid-call
        except Exception as error:  # what came back does not unpickle here
            self.stop()
            return Outcome(returned="something", error_message=_unsendable(error))
        if not answered:
            self.stop()
            return Outcome(
                abnormal="timeout",
                error_message=f"no result after {seconds:.1f}s (child killed)",
                noise=self._last_words(),
            )
        self.process.join(timeout=START_SECONDS)
        code = self.process.exitcode
        self.stop()
        how = f"was killed by {signal.Signals(-code).name}" if code and code < 0 else f"exited with status {code}"
        return Outcome(abnormal="crash", error_message=f"the child process running it {how}", noise=self._last_words())

    def _last_words(self) -> Noise | None:
        """What the child wrote in the call it died in (it did not live to send it)."""
        return None if self.files is None else last_words(self.files)

    def stop(self) -> None:
        if self.process is not None:
            # The child leads its own group: take every process it started with it (unless it
            # is gone already, or was killed before it made its group).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
        self.process = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def close(self) -> None:
        """Stop the child for good: its scratch files go too."""
        self.stop()
        for descriptor in self.files or ():
            os.close(descriptor)
        self.files = None
