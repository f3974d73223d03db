"""What is running right now, on disk, so that a case that kills the process is not lost.

Before each in-process call the campaign writes (implementation, case) to a small file
named for its process id. If the process dies mid-call (a segfault in an extension, an
abort, ``os._exit``), the file stays behind; the next campaign over the same corpus finds
it, saves the case as a "crash" failure, and runs that implementation isolated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.case import Case, CaseIdError

FOLDER = ".inflight"


@dataclass(frozen=True)
class Orphan:
    """A call that was running when its process died."""

    path: Path
    implementation: str
    case: Case
    pid: int


class Journal:
    """Overwrites one small file before each call: cheaper than the call, and enough for a
    process crash (the kernel keeps what was written)."""

    def __init__(self, corpus: Path) -> None:
        folder = corpus / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}.json"
        self.file = open(self.path, "w")

    def running(self, implementation: str, case: Case) -> None:
        self.file.seek(0)
        self.file.write(json.dumps({"implementation": implementation, "case": case.id}))
        self.file.truncate()
        self.file.flush()

    def idle(self) -> None:
        """No call is running: a process dying now (in the harness's own code, or in an
        isolated call's parent) is no implementation's fault."""
        self.file.seek(0)
        self.file.truncate()
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphans(corpus: Path) -> list[Orphan]:
    """Calls whose process is gone; unreadable journal files are left alone."""
    found = []
    for path in sorted((corpus / FOLDER).glob("*.json")):
        pid = int(path.stem) if path.stem.isdigit() else -1
        if pid == os.getpid() or (pid > 0 and _alive(pid)):
            continue
        try:
            data = json.loads(path.read_text())
            found.append(Orphan(path, str(data["implementation"]), Case.from_id(data["case"]), pid))
        except (OSError, ValueError, KeyError, TypeError, CaseIdError):
            continue
    return found


def rescue(corpus: Path) -> list[Orphan]:
    """Save each orphaned call as a "crash" failure in the corpus, then forget its journal."""
    from harness.corpus import Entry, provenance, save

    rescued = orphans(corpus)
    for orphan in rescued:
        message = (f"the harness process (pid {orphan.pid}) died while running this case; "
                   "re-run it with --isolate")
        save(corpus, Entry(orphan.case, orphan.implementation, "crash", "crash", message,
                           {**provenance(), "shrunk": False}))
        orphan.path.unlink(missing_ok=True)
    return rescued
