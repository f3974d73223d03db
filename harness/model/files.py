"""Files the harness reads that anyone may have put there, and files it writes that no one
must see half-written.

A corpus and its crash journals are shared folders: a name there may be a FIFO (a plain
open() waits for a writer forever), a device (``/dev/zero`` never ends; opening one can
act on it) or a link to either. So a file is read only if it is a regular file, checked
again on the descriptor (the name may have been swapped in between), without blocking,
and never past a bound. What the harness writes (corpus entries, reports) goes to a
temporary file renamed into place: a reader never sees a torn file, and a write that
fails (a full disk) leaves the old file as it was and nothing new.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

_KINDS = {
    "d": "a directory",
    "p": "a FIFO",
    "c": "a character device",
    "b": "a block device",
    "s": "a socket",
    "l": "a symbolic link",
}


class NotRegular(Exception):
    """A name that is not a regular file (or a link, where links are not followed); the
    message says what it is."""


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegular(f"{_KINDS.get(stat.filemode(mode)[0], 'not a regular file')}, not a regular file")


def read_regular(path: Path, most: int, *, follow: bool = True) -> bytes:
    """At most ``most`` bytes of the regular file at ``path``, without blocking on it or
    opening anything else; with ``follow`` False a symbolic link is refused too. Raises
    `NotRegular`, or the `OSError` of reading it."""
    mode = (os.stat if follow else os.lstat)(path).st_mode
    _check_regular(mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    with os.fdopen(os.open(path, flags), "rb") as file:
        _check_regular(os.fstat(file.fileno()).st_mode)
        return file.read(most)


def _create_temporary(folder: Path, suffix: str) -> tuple[int, Path]:
    """A new dot-file in ``folder``, made as open() makes files (0666 less the umask: 0644
    as a rule) rather than mkstemp's owner-only 0600."""
    while True:
        temporary = folder / f".tmp-{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:  # never another writer's file, however unlikely the name
            continue


def write_atomically(path: Path, text: str) -> None:
    """``text`` as the file at ``path``, all of it or none: written beside it under a
    dot-name and renamed over it; on failure the temporary file is removed and the error
    (`OSError`: ENOSPC on a full disk) raised."""
    handle, temporary = _create_temporary(path.parent, path.suffix)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
