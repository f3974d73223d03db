"""What is running right now, on disk, so that a case that kills the process is not lost.

Before each in-process call the campaign writes (implementation, case) to a small file
named for its process id, and clears it when the call returns (the file is mapped into
memory: a write costs a memory copy, and outlives the process). If the process dies
mid-call (a segfault in an extension, an abort, ``os._exit``) the file stays behind naming
the call. The file also says which process wrote it (pid, start time, boot), so that a
later run can tell a journal whose process is gone from one of a run still going, even
after the pid has been reused.

A journal is a lead, not a verdict: the process may have died for reasons of its own
(SIGKILL from outside, the OOM killer, a CI timeout). `harness.rescue` re-checks the call
in an isolated child before anything is blamed on the implementation.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from harness.case import Case, CaseIdError

FOLDER = ".inflight"


def _identity(pid: int) -> tuple[str, str] | None:
    """(boot id, start time) of process ``pid``, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            started = stat.read().rsplit(b")", 1)[1].split()[19].decode()
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip(), started
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


class Journal:
    """One small file, mapped into memory and rewritten before and after each call: a write
    is a memory copy, cheap next to any call, and it survives the process dying (the
    mapped pages belong to the kernel's file cache, not to the process)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.path = folder / f"{pid}.json"
        boot, started = _identity(pid) or ("", "")
        header = json.dumps({"pid": pid, "boot": boot, "started": started})
        self.idle_record = header.encode()
        self.prefix = header[:-1].encode() + b', "implementation": '
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.ftruncate(descriptor, JOURNAL_BYTES)
            self.map = mmap.mmap(descriptor, JOURNAL_BYTES)
        finally:
            os.close(descriptor)
        self.width = 0  # of the record there now
        self.idle()

    def _write(self, record: bytes) -> None:
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
        self.map.close()
        self.path.unlink(missing_ok=True)


def read(path: Path) -> tuple[dict[str, object], Orphan] | None:
    """A journal file's record and what it says was running; None if it cannot be read."""
    try:
        record = json.loads(path.read_bytes().rstrip(b"\x00 "))
        pid = int(record["pid"])
        orphan = Orphan(path, pid)
        if "implementation" in record:
            orphan = Orphan(path, pid, str(record["implementation"]), Case.from_id(str(record["case"])))
        return record, orphan
    except (OSError, ValueError, KeyError, TypeError, CaseIdError):
        return None


def orphans(folder: Path) -> list[Orphan]:
    """The journals in ``folder`` whose process is gone (never this process's own, nor
    one of a run still going); a file that cannot be read is left alone."""
    found = []
    for path in sorted(folder.glob("*.json")):
        parsed = read(path)
        if parsed is None:
            continue
        record, orphan = parsed
        if orphan.pid == os.getpid():
            continue
        if _identity(orphan.pid) == (record.get("boot"), record.get("started")):
            continue  # that process is still running
        found.append(orphan)
    return found
