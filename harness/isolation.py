"""Run an implementation in a child process, so that the campaign survives whatever it does.

One child per implementation, forked from a forkserver that has already imported torch
(so a restart costs milliseconds, not an import), with SIGINT ignored (Ctrl-C is the
parent's business) and an address-space cap (so an unbounded allocation fails in the
child instead of taking the machine). The parent waits at most the case's time limit: a
child that does not answer is killed and the call is a "timeout"; one that dies is a
"crash", with the signal that killed it. The next call starts a fresh child.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from multiprocessing.connection import Connection
from typing import Any

import torch

from harness.case import Case
from harness.registry import Implementation
from harness.runner import Outcome, call, prepare_autograd
from harness.tensors import Inputs

MEMORY_HEADROOM = 4 * 2**30  # bytes of address space a child may add to what torch maps
START_SECONDS = 120.0


def _virtual_memory() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(connection: Connection, implementation: Implementation, headroom: int | None) -> None:
    """The child: call the implementation on each case received, send back the outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if headroom:
        limit = _virtual_memory() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from harness.check import one_thread

    one_thread()
    prepare_autograd()  # start-up, not a case, pays for it
    connection.send("ready")
    while True:
        try:
            case, inputs, upstream = connection.recv()
        except EOFError:
            return
        outcome = call(implementation, case, inputs, inputs.clone(), upstream=upstream)
        connection.send(outcome)


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    # The server imports these once, for every child it forks: torch (through this module),
    # and the module autograd.grad imports on first use (`runner.prepare_autograd`).
    context.set_forkserver_preload(["harness.isolation", "torch.fx.experimental.symbolic_shapes"])
    return context


class Child:
    """A child process that runs one implementation; replaced after a crash or a timeout."""

    def __init__(self, implementation: Implementation, headroom: int | None = MEMORY_HEADROOM) -> None:
        self.implementation, self.headroom = implementation, headroom
        self.process: Any = None
        self.connection: Connection | None = None

    def _start(self) -> None:
        parent_end, child_end = multiprocessing.Pipe()
        self.process = _context().Process(target=_serve, args=(child_end, self.implementation, self.headroom),
                                          daemon=True, name=f"im2col-harness {self.implementation.name}")
        self.process.start()
        child_end.close()
        self.connection = parent_end
        # Start-up (the forkserver's first torch import) is not charged to any case.
        if not parent_end.poll(START_SECONDS) or parent_end.recv() != "ready":
            raise RuntimeError(f"the child process for {self.implementation.name} did not start")

    def call(self, case: Case, inputs: Inputs, seconds: float, upstream: torch.Tensor | None = None) -> Outcome:
        if self.process is None or not self.process.is_alive():
            self._start()
        assert self.connection is not None
        try:
            self.connection.send((case, inputs, upstream))
            answered = self.connection.poll(seconds)
            if answered:
                return self.connection.recv()
        except (EOFError, OSError):
            answered = True  # the pipe closed: the child died mid-call
        if not answered:
            self.stop()
            return Outcome(abnormal="timeout", error_message=f"no result after {seconds:.1f}s (child killed)")
        self.process.join(timeout=START_SECONDS)
        code = self.process.exitcode
        self.stop()
        how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exited with status {code}"
        return Outcome(abnormal="crash", error_message=f"the child process running it {how}")

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.process = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None
