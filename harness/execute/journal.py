"""What is running right now, on disk, so that a case that kills the process is not lost.

Before each in-process call the campaign writes (implementation, case) to a small file
named for its process id, and clears it when the call returns (the file is mapped into
memory: a write costs a memory copy, and outlives the process). If the process dies
mid-call (a segfault in an extension, an abort, ``os._exit``) the file stays behind naming
the call. The file also says which process wrote it (pid, start time, boot), so that a
later run can tell a journal whose process is gone from one of a run still going, even
after the pid has been reused.

A journal is a lead, not a verdict: the process may have died for reasons of its own
(SIGKILL from outside, the OOM killer, a CI timeout). `harness.campaign.rescue` re-checks the call
in an isolated child before anything is blamed on the implementation.

The folder of journals is in the corpus, and a corpus is shared: what is found there is
untrusted input, read as a corpus file is. A FIFO or a link to a device named like a
journal is never opened, a file is read only up to a journal's size, every field is
checked and the case must be within the size limits (a journalled 8000x8000 case would
otherwise be run, 9.8 GB of it); whatever is not a journal is a note and no lead.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.model.case import Case, CaseError, Limits
from harness.model.files import NotRegular, read_regular
from harness.model.text import one_line, printable

FOLDER = ".inflight"


def process_identity(pid: int) -> tuple[str, str] | None:
    """(boot id, start time) of process ``pid``, or None when there is no such process.

    A zombie (state Z, or X on its way out) is no process: it has ended and only waits to be
    reaped. A killed run's child is reparented to the machine's first process, and in a
    container that one may reap late: until then the dead child's journal must still count
    as left behind."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return None
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip(), fields[19].decode()
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class Orphan:
    """A journal left by a process that is gone: the call it was making, if any."""

    path: Path
    pid: int
    implementation: str = ""
    case: Case | None = None


JOURNAL_BYTES = 1 << 16  # a record longer than this (an absurdly long name) is not kept
_warned: set[Path] = set()  # folders this process said it cannot journal in (once each, not once a shard)


class Journal:
    """One small file, mapped into memory and rewritten before and after each call: a write
    is a memory copy, cheap next to any call, and it survives the process dying (the
    mapped pages belong to the kernel's file cache, not to the process).

    Every page of it is allocated on disk before it is mapped: a store into a mapped page
    the disk has no room for is a SIGBUS, which no handler can turn back into a run. So a
    full disk (or a folder that cannot be written) is found here, and the run goes on
    without a journal, saying so on stderr, once."""

    def __init__(self, folder: Path) -> None:
        pid = os.getpid()
        self.path = folder / f"{pid}.json"
        boot, started = process_identity(pid) or ("", "")
        header = json.dumps({"pid": pid, "boot": boot, "started": started})
        self.idle_record = header.encode()
        self.prefix = header[:-1].encode() + b', "implementation": '
        self.map: mmap.mmap | None = None
        self.width = 0  # of the record there now
        try:
            self.map = self._mapped(folder)
        except OSError as error:
            self._without(folder, error)
            return
        self.idle()

    def _mapped(self, folder: Path) -> mmap.mmap:
        folder.mkdir(parents=True, exist_ok=True)
        # A file already under this pid is a dead process's (this one is alive), or was put
        # there: made anew, never opened through a link.
        self.path.unlink(missing_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        try:
            os.posix_fallocate(descriptor, 0, JOURNAL_BYTES)
            return mmap.mmap(descriptor, JOURNAL_BYTES)
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(descriptor)

    def _without(self, folder: Path, error: OSError) -> None:
        if folder in _warned:
            return
        _warned.add(folder)
        print(
            printable(
                f"journal: cannot keep a crash journal in {one_line(str(folder))}: {error.strerror}; "
                "this run goes on without it (a process that dies in an in-process call is not "
                "re-checked by the next run)"
            ),
            file=sys.stderr,
            flush=True,
        )

    def _write(self, record: bytes) -> None:
        if self.map is None:
            return
        if len(record) > JOURNAL_BYTES:
            record = self.idle_record  # it cannot say what ran: it says nothing
        end = max(self.width, len(record))
        self.map[:end] = record.ljust(end)  # spaces after a shorter record: JSON ignores them
        self.width = len(record)

    def running(self, implementation: str, case: Case) -> None:
        # Case ids are ASCII letters, digits, '-' and '_': nothing in them to escape.
        self._write(self.prefix + json.dumps(implementation).encode() + b', "case": "' + case.id.encode() + b'"}')

    def idle(self) -> None:
        """No call is running: a process dying now (in the harness's own code, or in an
        isolated call's parent) is no implementation's fault."""
        self._write(self.idle_record)

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.path.unlink(missing_ok=True)


class JournalError(ValueError):
    """A file among the journals that is not one a harness wrote: it is no lead; the message
    says why, in one line."""


_HEADER = {"pid": int, "boot": str, "started": str}
_RUNNING = {**_HEADER, "implementation": str, "case": str}


def _parsed(path: Path) -> tuple[dict[str, object], Orphan] | None:
    """A journal file's record and what it says was running, checked as a corpus file is
    (`harness.store.corpus`): only a regular file, not through a link, at most `JOURNAL_BYTES`,
    each field of its type, the case a valid id within the size limits (`Limits`: a
    journal is a lead that `harness.campaign.rescue` runs). None when there is nothing to say: the
    file is gone, or is not JSON (a journal being written is, for a moment, neither)."""
    try:
        raw = read_regular(path, JOURNAL_BYTES + 1, follow=False)
    except FileNotFoundError:
        return None
    except NotRegular as error:
        raise JournalError(str(error)) from None
    except OSError as error:
        raise JournalError(f"cannot read: {error.strerror}") from None
    if len(raw) > JOURNAL_BYTES:
        raise JournalError(f"larger than {JOURNAL_BYTES:,} bytes, too large for a journal")
    try:
        record = json.loads(raw.rstrip(b"\x00 "))
    except ValueError:  # not JSON, not text, or a number too long to read
        return None
    fields = _RUNNING if isinstance(record, dict) and "implementation" in record else _HEADER
    if (
        not isinstance(record, dict)
        or set(record) != set(fields)
        or not all(type(record[key]) is wanted for key, wanted in fields.items())
    ):
        raise JournalError(f"not a journal record: it must have {', '.join(fields)} (of their types), and nothing else")
    pid = record["pid"]
    if pid < 1:
        raise JournalError(f"not a journal record: no process has pid {pid}")
    if fields is _HEADER:
        return record, Orphan(path, pid)
    try:
        case = Case.from_id(record["case"])
        Limits().check(case)
    except CaseError as error:
        raise JournalError(str(error)) from None
    return record, Orphan(path, pid, record["implementation"], case)


def read(path: Path) -> tuple[dict[str, object], Orphan] | None:
    """A journal file's record and what it says was running; None if it is not a journal."""
    try:
        return _parsed(path)
    except JournalError:
        return None


def orphans(folder: Path) -> tuple[list[Orphan], list[str]]:
    """The journals in ``folder`` whose process is gone (never this process's own, nor
    one of a run still going), and a line for each file there that is not a journal (a
    FIFO, a link, one too large, a case too large to run): left alone, and no lead."""
    found, skipped = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            parsed = _parsed(path)
        except JournalError as error:
            skipped.append(f"journal: {one_line(str(path))}: skipped: {one_line(str(error))}")
            continue
        if parsed is None:
            continue
        record, orphan = parsed
        if orphan.pid == os.getpid():
            continue
        if process_identity(orphan.pid) == (record["boot"], record["started"]):
            continue  # that process is still running
        found.append(orphan)
    return found, skipped
