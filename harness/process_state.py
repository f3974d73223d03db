"""The process-wide state an implementation called in this process could change, checked
after every call and put back.

An implementation run in the harness's own process shares everything with the harness and
with the implementations called after it. One that turns grad mode off, changes the
default dtype, replaces ``F.conv2d`` or a ``Tensor`` method, ignores SIGALRM (the time
limits), changes the working directory (where the corpus is written) or leaves a process
running would break the checks of everything after it, and its failure would be blamed on
whichever implementation came next. So a `Guard` reads that state before each call and,
after it, puts back whatever changed and says what: a ``global-state`` failure of the
implementation that changed it, and of nobody else. (An isolated child runs the same
guard, so an implementation gets the same verdict in or out of process.)

What is checked is what the harness and im2col code depend on: torch's grad mode, default
dtype, thread count, float32 matmul precision and deterministic-algorithms switch, the
torch function and dispatch mode stacks, the SIGALRM and SIGINT handlers and the signal
mask, the working directory, the standard streams, tracing and profiling hooks, the
recursion limit, the namespaces of ``torch.nn.functional`` and ``torch.Tensor`` and
``torch.conv2d``, and the child processes of the calling thread. It is not a sandbox:
``--isolate`` and a container are (README, "When an implementation misbehaves").
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stubs; see _settings
import contextlib
import functools
import operator
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._python_dispatch as python_dispatch

from harness.outcome import Change


@dataclass(frozen=True)
class Setting:
    """One piece of state: how to read it, how to put a value back, how to show one."""

    name: str
    read: Callable[[], Any]
    write: Callable[[Any], object]  # what it returns is ignored
    shown: Callable[[Any], str] = lambda value: _shown(value)
    critical: bool = False  # checked after every call: the next call depends on it

def _pop_to(length: Callable[[], int], pop: Callable[[], object]) -> Callable[[int], None]:
    """A writer for a mode stack: pop what was pushed (what was popped cannot be put back)."""
    def write(wanted: int) -> None:
        while length() > wanted:
            pop()
        if length() < wanted:
            raise RuntimeError("modes were popped that the caller had pushed")
    return write


def _set_handler(signum: signal.Signals) -> Callable[[Any], None]:
    def write(handler: Any) -> None:
        if handler is not None:  # None: installed outside Python, nothing to put back
            signal.signal(signum, handler)
    return write


_deterministic = torch._C._get_deterministic_algorithms
_deterministic_warn_only = torch._C._get_deterministic_algorithms_warn_only
_RECURSION_LIMIT = Setting("recursion limit", sys.getrecursionlimit, sys.setrecursionlimit)


def _settings(main_thread: bool) -> tuple[Setting, ...]:
    settings = [
        Setting("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
        Setting("default dtype", torch.get_default_dtype, torch.set_default_dtype),
        Setting("torch thread count", torch.get_num_threads, torch.set_num_threads),
        Setting("float32 matmul precision", torch._C._get_float32_matmul_precision,
                torch.set_float32_matmul_precision),
        Setting("deterministic algorithms", _deterministic,
                lambda on: torch.use_deterministic_algorithms(on, warn_only=_deterministic_warn_only())),
        Setting("deterministic algorithms' warn_only", _deterministic_warn_only,
                lambda warn: torch.use_deterministic_algorithms(_deterministic(), warn_only=warn)),
        Setting("torch function modes", torch._C._len_torch_function_stack,
                _pop_to(torch._C._len_torch_function_stack, torch._C._pop_torch_function_stack)),
        Setting("torch dispatch modes", torch._C._len_torch_dispatch_stack,
                _pop_to(torch._C._len_torch_dispatch_stack, python_dispatch._pop_mode)),
        Setting("working directory", os.getcwd, os.chdir),
        Setting("sys.stdout", lambda: sys.stdout, lambda stream: setattr(sys, "stdout", stream)),
        Setting("sys.stderr", lambda: sys.stderr, lambda stream: setattr(sys, "stderr", stream)),
        Setting("trace function", sys.gettrace, sys.settrace),
        Setting("profile function", sys.getprofile, sys.setprofile),
        Setting("torch.conv2d", lambda: torch.conv2d, lambda fn: setattr(torch, "conv2d", fn)),
    ]
    if main_thread:  # signal dispositions can only be set there
        # Read through _signal: signal's wrappers turn every value into an enum, at a cost
        # that counts on every call.
        settings += [
            Setting("SIGALRM handler (the time limits)", functools.partial(_signal.getsignal, signal.SIGALRM),
                    _set_handler(signal.SIGALRM), _shown_handler, critical=True),
            Setting("SIGINT handler (Ctrl-C)", functools.partial(_signal.getsignal, signal.SIGINT),
                    _set_handler(signal.SIGINT), _shown_handler),
            Setting("blocked signals", functools.partial(_signal.pthread_sigmask, signal.SIG_BLOCK, []),
                    lambda mask: signal.pthread_sigmask(signal.SIG_SETMASK, mask), critical=True),
        ]
    return tuple(settings)


class _Namespace:
    """The attributes of a module or class, against a copy taken when the guard was made.

    Comparing a dict with a copy is cheap (microseconds); only when they differ is the
    difference worked out and undone. A module may gain attributes legitimately (importing
    a submodule adds it to its package), so additions to a module are accepted; additions
    to a class shadow its base classes' methods, so they are not.
    """

    def __init__(self, name: str, owner: object) -> None:
        self.name, self.owner = name, owner
        self.baseline = dict(vars(owner))
        self.is_class = isinstance(owner, type)

    def restore(self) -> list[Change]:
        now = vars(self.owner)
        if now == self.baseline:
            return []
        changed = []
        for key in sorted(set(self.baseline) | set(now)):
            before, after = self.baseline.get(key, _MISSING), now.get(key, _MISSING)
            if before is after:
                continue
            if before is _MISSING and not self.is_class:
                self.baseline[key] = after  # a module gained an attribute: harmless
                continue
            how = "added" if before is _MISSING else "deleted" if after is _MISSING else "replaced"
            changed.append(Change(f"{self.name}.{key}", how))
            if before is _MISSING:
                delattr(self.owner, key)
            else:
                setattr(self.owner, key, before)
        return changed


_MISSING = object()


def _shown_handler(value: Any) -> str:
    return signal.Handlers(value).name if isinstance(value, int) else _shown(value)


def _shown(value: Any) -> str:
    """A short, stable rendering of a setting's value (no memory addresses)."""
    if callable(value) or hasattr(value, "write"):
        return getattr(value, "__qualname__", type(value).__name__)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _children_file() -> int | None:
    """The calling thread's list of child processes, kept open: re-reading it costs one
    pread. (Linux only; elsewhere child processes are not checked.)"""
    try:
        return os.open(f"/proc/self/task/{threading.get_native_id()}/children", os.O_RDONLY)
    except OSError:
        return None


def _children(descriptor: int | None) -> bytes:
    return b"" if descriptor is None else os.pread(descriptor, 65536, 0)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone already


def _stop(pid: int) -> None:
    """Kill a process left behind, and its process group where it leads one of its own."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Guard:
    """Puts back what a call changed of the state as the guard found it when it was made.

    It runs around every call, so the common case (nothing changed) is a few C-level reads
    and comparisons, and what changed is worked out only when something did. The harness
    changes none of this state between calls (it sets up its handlers and thread count
    before the first), except the recursion limit, which Hypothesis raises around each
    test it runs: that one is compared with what it was when the calls began (`before`).

    Two tiers, for speed: what must hold before the next call runs is checked after every
    call (that this is not a forked copy of the process; the SIGALRM handler and blocked
    signals, without which no time limit holds). The rest (``shared``: torch's switches,
    the working directory, the namespaces, child processes left running) costs more to
    compare than a small check takes: with ``each_call`` off, `after` leaves it to the
    caller, who asks `shared_changed` once for several calls and, when it did, calls them
    again one by one with ``each_call`` on (`harness.check.check_prepared`).
    """

    def __init__(self, each_call: bool = True) -> None:
        self.pid, self.each_call = os.getpid(), each_call
        settings = _settings(threading.current_thread() is threading.main_thread())
        self.critical = _Tier(tuple(setting for setting in settings if setting.critical))
        self.shared = _Tier(tuple(setting for setting in settings if not setting.critical))
        self.functional, self.tensor = _Namespace("torch.nn.functional", F), _Namespace("torch.Tensor", torch.Tensor)
        self.children = _children_file()

    def before(self) -> tuple[bytes, int]:
        """What the harness itself may change between calls: the child processes running
        (an isolated child started meanwhile, say), and the recursion limit."""
        return _children(self.children), sys.getrecursionlimit()

    def before_call(self) -> tuple[bytes, int] | None:
        """`before`, where `after` needs it: with ``each_call`` on."""
        return self.before() if self.each_call else None

    def after(self, before: tuple[bytes, int] | None) -> tuple[Change, ...]:
        """What the call changed, each put back (or said to be impossible to put back)."""
        if os.getpid() != self.pid:
            # The implementation forked and this is the copy, returning into the harness:
            # it must not go on running a campaign of its own.
            os._exit(70)
        if self.critical.unchanged() and (before is None or not self.shared_changed(before)):
            return ()
        changed = self.critical.put_back()
        if before is not None:
            changed += self.put_back_shared(before)
        return tuple(changed)

    def shared_changed(self, before: tuple[bytes, int]) -> bool:
        """Whether the shared tier differs from how it was (`before` says how the child
        processes and the recursion limit were)."""
        children, limit = before
        return (not self.shared.unchanged() or sys.getrecursionlimit() != limit
                or vars(F) != self.functional.baseline or vars(torch.Tensor) != self.tensor.baseline
                or _children(self.children) != children)

    def put_back_shared(self, before: tuple[bytes, int]) -> list[Change]:
        children, limit = before
        changed = self.shared.put_back() + _Tier((_RECURSION_LIMIT,), (limit,)).put_back()
        changed += self.functional.restore() + self.tensor.restore()
        return changed + _stop_new_children(children, _children(self.children))


class _Tier:
    """Settings read together, against their values when the guard was made (``baseline``)."""

    def __init__(self, settings: tuple[Setting, ...], baseline: tuple[Any, ...] | None = None) -> None:
        self.settings = settings
        self.readers = tuple(setting.read for setting in settings)
        self.baseline = self.read() if baseline is None else baseline

    def read(self) -> tuple[Any, ...]:
        return tuple(map(operator.call, self.readers))

    def unchanged(self) -> bool:
        return self.read() == self.baseline

    def put_back(self) -> list[Change]:
        """Each setting that differs from its baseline set back, and a `Change` saying so."""
        changed = []
        for setting, before, after in zip(self.settings, self.baseline, self.read(), strict=True):
            if after == before:
                continue
            detail = f"{setting.shown(before)} -> {setting.shown(after)}"
            try:
                setting.write(before)
            except Exception as error:
                detail += f"; could not be put back: {type(error).__name__}"
            changed.append(Change(setting.name, detail))
        return changed


def _stop_new_children(before: bytes, now: bytes) -> list[Change]:
    """Kill the child processes that are new since ``before``; say how many were running."""
    left = [int(pid) for pid in set(now.split()) - set(before.split())]
    running = [pid for pid in left if not _is_zombie(pid)]
    for pid in left:
        _stop(pid)
    return [Change("child processes", f"{len(running)} left running, killed")] if running else []


def one_thread() -> None:
    """Run torch single-threaded: the tensors here are small, and intra-op threads on a
    busy machine spin against each other and against other workers (measured here: a
    tiny conv2d went from 0.08 ms to 15 ms with two threads and the other core busy).
    Parallelism comes from processes instead (pytest-xdist, ``fuzz --workers``)."""
    torch.set_num_threads(1)
