"""Ctrl-C (or a kill) for a test once the run has got somewhere, whatever the machine's load.

A test that sleeps a fixed time before pressing Ctrl-C tests the machine's speed: on a
busy one the run may not have started fuzzing yet. `wait_for` waits for the event
instead; `ctrl_c` runs ``python -m harness fuzz`` with its standard error on a terminal
(so its progress line comes several times a second) and sends SIGINT to its process
group, as Ctrl-C at a terminal does, once the test says it got where it should (a bug
found, say).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# Seconds to wait for the run to get there (start-up included), and then to stop: generous,
# as they only end a test whose run hangs; a test asserts on how long stopping took.
GETTING_THERE = 300.0
STOPPING = 120.0
# Seconds from Ctrl-C to exit that a test accepts as prompt: several times what stopping
# takes on an idle machine (a call and the report), far less than the run left alone.
PROMPTLY = 30.0


@dataclass
class Interrupted:
    status: int
    out: str
    err: str  # what it wrote on its terminal, lines ended as written there ("\r", "\r\n")
    stopped: float  # seconds from Ctrl-C to its exit
    seen: Any  # what ``ready`` said


T = TypeVar("T")


def wait_for(look: Callable[[], T], done: Callable[[T], object], seconds: float = GETTING_THERE) -> T:
    """What ``look()`` says once ``done`` with it, or after ``seconds`` (generous: the machine
    may be busy; a test asserts on what it got)."""
    deadline = time.monotonic() + seconds
    seen = look()
    while not done(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = look()
    return seen


def found_a_bug(err: str) -> bool:
    """Whether the progress line said a bug was found: "fuzzing: 12/900 cases, 1 bug(s), ..."."""
    return re.search(r" [1-9][0-9]* bug\(s\)", err) is not None


def read_until(descriptor: int, pattern: bytes, seconds: float) -> bytes:
    """What ``descriptor`` gives until ``pattern`` shows in it, it closes, or ``seconds`` pass."""
    seen, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and not re.search(pattern, seen):
        ready, _, _ = select.select([descriptor], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(descriptor, 4096)
            except OSError:  # the other end closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _drain(descriptor: int, seconds: float) -> bytes:
    return read_until(descriptor, rb"(?!)", seconds)  # a pattern that never matches


def ctrl_c(arguments: list[str], cwd: Path, ready: Callable[[int, str], Any]) -> Interrupted:
    """``python -m harness fuzz *arguments`` in a process group of its own, sent SIGINT once
    ``ready(its pid, what it wrote on standard error so far)`` is true."""
    terminal, progress = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "fuzz", *arguments],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=progress,
        start_new_session=True,
    )
    os.close(progress)
    seen, said, deadline = b"", None, time.monotonic() + GETTING_THERE
    try:
        while not said and process.poll() is None and time.monotonic() < deadline:
            seen += _drain(terminal, 0.1)  # read on, so that it never blocks writing
            said = ready(process.pid, seen.decode(errors="replace"))
        assert said, f"it did not get there; it wrote: {seen[-2000:]!r}"
        assert process.poll() is None, "it ended before Ctrl-C"
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        while process.poll() is None and time.monotonic() - sent < STOPPING:
            seen += _drain(terminal, 0.2)
        stopped = time.monotonic() - sent
    finally:
        if process.poll() is None:  # it did not stop: what it wrote is read once it is killed
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        seen += _drain(terminal, 0.2)
        os.close(terminal)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    return Interrupted(process.returncode, out, seen.decode(errors="replace"), stopped, said)
