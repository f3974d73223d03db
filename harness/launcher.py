"""The command line runs in a child process, and this one, its parent, makes sure that the
run ends by saying what it did.

An implementation run in the harness's own process (the default: the fast way) can end
that process from where no ``except`` reaches: ``os._exit(0)``, directly or from a thread
of its own, a signal, a C library calling ``exit()``. The process then ends with whatever
status that gave, 0 included, having reported nothing: a run that says nothing and
passes. So ``python -m harness`` (and the ``im2col-harness`` script) starts the same
command again as a child process, marked by an environment variable, which writes its
exit status to a file only once the command has returned, its report printed. A child
that ends without having written it did not finish, whatever its exit status: the parent
says so, with what the child's crash journal (`harness.execute.journal`) says it was running
then, as a crash of that implementation, and exits 1.

The parent imports nothing heavy (no torch: start-up is the child's), passes on the signals
that end or suspend a command (Ctrl-C reaches the child once: it stops its campaign cleanly
and reports), and takes the child with it if it is killed itself (``PR_SET_PDEATHSIG``: no
campaign goes on unwatched).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from subprocess import _args_from_interpreter_flags  # type: ignore[attr-defined]  # what multiprocessing uses
from types import FrameType
from typing import NoReturn, TextIO

from harness.execute.journal import read
from harness.model.text import clipped, one_line, printable

VARIABLE = "IM2COL_HARNESS_WATCHED"  # in the child's environment: "PARENT_PID:FOLDER"
STATUS = "status"  # in FOLDER: the child's exit status, written once the command returned
WHERE = "journals"  # in FOLDER: the folder the child journals its calls in, once it knows
SCRATCH = "inflight"  # in FOLDER: that folder, for a command that has no corpus to journal in
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_folder: list[Path | None] = [None]  # in a watched child, the parent's folder


def adopted() -> bool:
    """Whether this process is the child of a watching parent; if so, from now on it dies
    with the parent, and the processes it starts are not marked as such children."""
    marked = os.environ.pop(VARIABLE, None)
    if marked is None:
        return False
    parent, _, folder = marked.partition(":")
    if not parent.isdigit() or int(parent) != os.getppid():
        return False  # the mark was inherited from further up: this is a command of its own
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(parent):  # the parent died before that took effect
            os._exit(1)
    _folder[0] = Path(folder)
    return True


def journals(chosen: Path | None) -> Path | None:
    """The folder this run is to journal its in-process calls in: ``chosen`` (a corpus's,
    where the next run looks for them), or, without one, a folder of the watching parent's.
    The parent is told which, to say what was running should this process end early."""
    folder = _folder[0]
    if folder is None:
        return chosen
    where = chosen or folder / SCRATCH
    (folder / WHERE).write_text(str(where))
    return where


def finished(status: int) -> int:
    """Tell the watching parent, if any, that the command returned ``status``, its report
    printed; the last thing this process does."""
    folder = _folder[0]
    if folder is not None:
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stdout: its report is what it is
            sys.stdout.flush()
        (folder / STATUS).write_text(str(status))
    return status


def leave(status: int) -> NoReturn:
    """End the watched child with ``status`` once its report is printed and its status told:
    the exit handlers run (multiprocessing's, Hypothesis's, Dask's), the standard streams
    are flushed, and then the process ends without tearing down every module and object
    one by one, which with torch loaded costs a fifth of a second of CPU and decides
    nothing: the watching parent has what it needs."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def watch(arguments: Sequence[str]) -> int:
    """Run ``python -m harness ARGUMENTS`` as a child process and wait for it: its exit
    status, or 1 and a report of what it was running if it ended without finishing.

    The child leads a process group of its own, so that a signal reaches it once, passed on
    from here, however it was sent (Ctrl-C at the terminal, to this process alone, to its
    group); it has no terminal input (nothing the harness does reads it, and code under
    test reading it should fail, not wait), and SIGTTOU ignored, so that it may write to
    the terminal from outside the terminal's foreground group whatever the terminal's
    settings. Ctrl-Z stops it with this process, and the shell's ``fg`` or ``bg`` goes on."""
    folder = Path(tempfile.mkdtemp(prefix="im2col-harness-"))
    started: list[subprocess.Popen[bytes]] = []
    sent: list[int] = []

    def pass_on(signum: int, frame: FrameType | None) -> None:
        sent.append(signum)
        if started:
            _send(started[0], signum)

    def suspend(signum: int, frame: FrameType | None) -> None:
        if started:
            _send(started[0], signal.SIGTSTP)
        os.kill(os.getpid(), signal.SIGSTOP)
        if started:  # resumed
            _send(started[0], signal.SIGCONT)

    # Before the child starts, so that no signal falls between. Handlers are reset in the
    # child when it runs Python again; an ignored signal stays ignored there. Those passed on
    # stay caught after the child ended (nothing left to pass them to): a second Ctrl-C that
    # comes while this process exits with the child's status must not end it instead, with a
    # KeyboardInterrupt, its status lost (the `python -m harness` process ends right after).
    for passed in PASSED_ON:
        signal.signal(passed, pass_on)
    previous = {signal.SIGTSTP: signal.signal(signal.SIGTSTP, suspend)}
    previous[signal.SIGTTOU] = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        child = subprocess.Popen(
            [sys.executable, *_args_from_interpreter_flags(), "-m", "harness", *arguments],
            env={**os.environ, VARIABLE: f"{os.getpid()}:{folder}"},
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        started.append(child)
        for signum in sent:  # sent while it started
            _send(child, signum)
        code = child.wait()
        return _ended(code, child.pid, folder, sent)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(folder, ignore_errors=True)


def _send(child: subprocess.Popen[bytes], signum: int) -> None:
    """To the child's process group, as the terminal sends it to its foreground group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # ended meanwhile
        os.killpg(child.pid, signum)


def _ended(code: int, pid: int, folder: Path, stopped: list[int]) -> int:
    """The exit status the child wrote; or, when it wrote none, 1, once a report of how it
    ended and what it was running then is printed."""
    try:
        return int((folder / STATUS).read_text())
    except (OSError, ValueError):
        pass
    how = f"was killed by {_name(-code)}" if code < 0 else f"exited with status {code}"
    if stopped:
        _say(f"python -m harness: stopped by {_name(stopped[0])} before its report (its process {how})", sys.stderr)
        return 1
    try:
        where: Path | None = Path((folder / WHERE).read_text())
    except OSError:
        where = None
    parsed = None if where is None else read(where / f"{pid}.json")
    orphan = None if parsed is None else parsed[1]
    isolate = (
        "`python -m harness fuzz --isolate` runs each implementation in a process of its own, where a "
        "crash is a failure like any other, with its minimal case"
    )
    if orphan is None or orphan.case is None:
        between = "" if orphan is None else " between two implementation calls (a thread or process one left behind?)"
        _say(
            f"CRASHED: the harness's process {how}{between} before its report: nothing of this run was "
            f"reported\n    {isolate}"
        )
        return 1
    _say(
        f"CRASHED {one_line(clipped(orphan.implementation))} {orphan.case.id}\n"
        f"    the harness's process {how} in the middle of this call: nothing else of this run was reported"
    )
    if where is not None and where.parent != folder:
        _say(
            f"    its journal is kept in {one_line(str(where))}: the next run over that corpus re-checks the call "
            "in isolation"
        )
    _say(f"    {isolate}")
    return 1


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _say(text: str, file: TextIO | None = None) -> None:
    """On stdout (by default), where the report would have been; escaped: the journal is
    untrusted."""
    print(printable(text), file=file or sys.stdout, flush=True)
