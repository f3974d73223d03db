"""Catch what an implementation says during a call: the warnings it issues, and what it
writes to standard output and standard error, from Python or from C.

The terminal is the harness's: its failures, summary and progress. What the code under test
says during a call (a NumPy RuntimeWarning, a C library's error line on file descriptor 2)
is caught here, call by call, and travels with the call's outcome as a `harness.model.noise.Noise`.

Around each call made in this process (`Capture`, one per process: `here`):

- Python's warnings are recorded instead of shown, under the filters in force (a warning
  they ignore is not caught; one they make an error is raised into the call, as without
  the harness); filters the call changed are left for the guard around it
  (`harness.execute.process_state`) to report and put back;
- ``sys.stdout`` and ``sys.stderr`` are streams that keep what is written (their
  ``fileno()`` is the real stream's, so that C code handed it writes where it would have);
- on the main thread, file descriptors 1 and 2 point at scratch files, so that what C code
  writes there (C's stderr is unbuffered; its stdout buffers are flushed before the call
  ends) is caught too. The harness writes nothing while a call runs, so all of it is the
  implementation's. (Off the main thread other threads may be writing: descriptors are
  process-wide, and left alone there.)

An isolated child (`harness.execute.isolation`) points descriptors 1 and 2 at scratch files for its
whole life, files its parent holds too: what a child wrote before it crashed or hung is
read by the parent and reported with the crash or timeout (`last_words`).

At most `KEPT_BYTES` of each stream and `WARNINGS_KEPT` distinct warnings are kept per call;
the rest is counted. A scratch file holds what one call writes, and is emptied after it.

It runs around every call, so the common case (nothing said) costs a few system calls:
pointing each descriptor at its file and back, and asking each file's size. A campaign
`holding` the descriptors keeps a copy of what they were for its whole length, instead of
making one at each call (about 1 µs a call). Measured in the campaign of
``benchmarks/throughput.py``: about 14 µs a call, 4% of the campaign's CPU time.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from harness.model.noise import WARNINGS_KEPT, Noise
from harness.model.text import message as first_line

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

KEPT_BYTES = 4096  # of each stream, per call: a flood is counted, not kept

_libc = ctypes.CDLL(None)
_forks = 0  # how many times this process is a forked copy: a capture made before is its parent's


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


def scratch() -> int:
    """A scratch file for one stream, unlinked at once (only this process and the children
    it is handed to can reach it), written only at its end (``O_APPEND``), so that once it is
    emptied the next write starts at its beginning again."""
    descriptor, path = tempfile.mkstemp(prefix="im2col-harness-output-")
    os.unlink(path)
    fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) | os.O_APPEND)
    return descriptor


def _text(*parts: tuple[bytes, int]) -> str:
    """What was written to one stream (from Python, then from C), at most `KEPT_BYTES` of it,
    saying how much more there was."""
    kept = b"".join(data for data, _ in parts)[:KEPT_BYTES]
    size = sum(written for _, written in parts)
    text = kept.decode("utf-8", "backslashreplace")
    return text if size <= len(kept) else f"{text}... ({size - len(kept)} more bytes)"


def _drained(file: int) -> tuple[bytes, int]:
    """The first `KEPT_BYTES` written to a scratch file and how many there were; emptied."""
    size = os.lseek(file, 0, os.SEEK_END)  # where writes go: the end, so the size
    if not size:
        return b"", 0
    kept = os.pread(file, KEPT_BYTES, 0)
    os.ftruncate(file, 0)
    return kept, size


def last_words(files: tuple[int, int]) -> Noise | None:
    """What an isolated child wrote to its (stdout, stderr) scratch files and did not read
    back itself: the output of a call it died in, or of a start that failed."""
    out, err = _text(_drained(files[0])), _text(_drained(files[1]))
    return Noise(stdout=out, stderr=err) if out or err else None


class _Kept(io.RawIOBase):
    """The bytes under a stand-in for sys.stdout or sys.stderr: keeps the first `KEPT_BYTES`
    written and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = bytearray()
        self.size = 0
        self.real: Any = None  # the stream stood in for

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        room = KEPT_BYTES - len(self.kept)
        if room > 0:
            self.kept += view[:room]
        self.size += len(view)
        return len(view)

    def fileno(self) -> int:
        """The real stream's: C code handed ``sys.stderr.fileno()`` writes where it would have."""
        return int(self.real.fileno())

    @property
    def name(self) -> Any:
        """The real stream's (``<stderr>``), as code that reads ``sys.stderr.name`` expects."""
        return getattr(self.real, "name", "")

    def taken(self) -> tuple[bytes, int]:
        written = bytes(self.kept), self.size
        self.kept.clear()
        self.size = 0
        return written


class _Channel:
    """One standard stream as a capture sees it: file descriptor 1 or 2 and its scratch file,
    and (in this process) the stand-in for sys.stdout or sys.stderr."""

    def __init__(self, descriptor: int, file: int | None) -> None:
        self.descriptor = descriptor
        self.file = scratch() if file is None else file
        self.held: int | None = None  # a copy of what the descriptor is, kept while `holding`
        self.saved: int | None = None  # what it was, while it points at the file
        self.stand_in()

    def stand_in(self) -> None:
        """A fresh stand-in (for one an implementation closed)."""
        self.kept = _Kept()
        # Write-through and lenient: a print() is never held back, nor raises where the
        # real stream would not.
        self.stream = io.TextIOWrapper(self.kept, encoding="utf-8", errors="backslashreplace", write_through=True)

    def point(self) -> None:
        """Point the descriptor at the scratch file (unless it is closed: then it stays so)."""
        saved = self.held
        if saved is None:
            try:
                saved = os.dup(self.descriptor)
            except OSError:
                return
        self.saved = saved
        os.dup2(self.file, self.descriptor)

    def put_back(self) -> None:
        if self.saved is not None:
            os.dup2(self.saved, self.descriptor)
            if self.saved != self.held:
                os.close(self.saved)
            self.saved = None

    def said(self) -> str:
        """What was written since it was last asked (to the stand-in, then to the descriptor),
        clipped; nothing kept after."""
        if not (os.lseek(self.file, 0, os.SEEK_END) or self.kept.size):  # the common case: nothing
            return ""
        return _text(self.kept.taken(), _drained(self.file))


class Capture:
    """Catches what is said between `start` and `stop`, call after call.

    ``files`` (stdout's, stderr's): scratch files that descriptors 1 and 2 already point at,
    in an isolated child; without them (in this process), Python's streams are stood in for
    and the descriptors pointed at scratch files of its own during each call.
    """

    def __init__(self, files: tuple[int, int] | None = None) -> None:
        self.forks, self.main = _forks, threading.main_thread().ident
        self.in_process = files is None
        self.out, self.err = _Channel(1, files and files[0]), _Channel(2, files and files[1])
        self.catcher = warnings.catch_warnings()
        self.pointed = False
        self.warned = 0
        self.warnings: list[str] = []

    def start(self) -> None:
        self.warned, self.warnings = 0, []
        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        warnings.showwarning = self._record
        if not self.in_process:
            return
        out, err = self.out, self.err
        if out.stream.closed or err.stream.closed:  # the implementation closed one: new ones
            out.stand_in()
            err.stand_in()
        out.kept.real, err.kept.real = sys.stdout, sys.stderr  # put back by `stop`
        sys.stdout, sys.stderr = out.stream, err.stream
        self.pointed = threading.get_ident() == self.main
        if self.pointed:
            out.point()
            err.point()

    def stop(self) -> Noise | None:
        """What was said since `start`, if anything; everything put back as it was."""
        if self.forks != _forks:
            return None  # a copy of this process forked by the implementation: the guard ends it
        left = warnings.filters
        self.catcher.__exit__(None, None, None)
        if left != warnings.filters:  # the call changed them: the guard reports that, and puts them back
            warnings.filters = left
        if self.in_process:
            _libc.fflush(None)  # C's stdout buffers what it writes: the call's, caught now
            if self.pointed:
                self.out.put_back()
                self.err.put_back()
            # Put back only a stand-in still in place: another stream there is the
            # implementation's, for the guard to report and put back.
            if sys.stdout is self.out.stream:
                sys.stdout = self.out.kept.real
            if sys.stderr is self.err.stream:
                sys.stderr = self.err.kept.real
        else:
            _flush()
        out, err = self.out.said(), self.err.said()
        if not (self.warned or out or err):
            return None
        return Noise(warned=self.warned, warnings=tuple(self.warnings), stderr=err, stdout=out)

    def _record(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """Stands in for `warnings.showwarning` during a call: counts, and keeps the first few."""
        self.warned += 1
        if len(self.warnings) < WARNINGS_KEPT:
            text = message if isinstance(message, str) else first_line(message)
            said = f"{getattr(category, '__name__', 'Warning')}: {text} (at {filename.rsplit('/', 1)[-1]}:{lineno})"
            if said not in self.warnings:
                self.warnings.append(said)


def _flush() -> None:
    """Push what Python's and C's standard streams still buffer to the descriptors (in an
    isolated child: to the scratch files)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a stream the implementation broke: the guard's business
            stream.flush()
    _libc.fflush(None)


_here: Capture | None = None


def here() -> Capture:
    """This process's capture, made at its first call (a forked process makes its own: the
    scratch files it inherited are its parent's)."""
    global _here
    if _here is None or _here.forks != _forks:
        _here = Capture()
    return _here


@contextmanager
def holding() -> Iterator[None]:
    """Keep a copy of what descriptors 1 and 2 are for a while (a campaign), for every call
    made in this process meanwhile to point them back at: right as long as nothing but those
    calls changes them meanwhile (the harness does not), and a call's changes are undone."""
    capture = here()
    channels = [channel for channel in (capture.out, capture.err) if channel.held is None]
    for channel in channels:
        with contextlib.suppress(OSError):  # closed: each call finds it so
            channel.held = os.dup(channel.descriptor)
    try:
        yield
    finally:
        for channel in channels:
            if channel.held is not None:
                os.close(channel.held)
                channel.held = None
