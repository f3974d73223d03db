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

What is checked is what the harness and im2col code depend on: torch's grad mode, inference
mode, anomaly mode, default device, default dtype, thread count, float32 matmul precision
and deterministic-algorithms switch, the torch function and dispatch mode stacks, the
SIGALRM and SIGINT handlers and the signal mask, the working directory, the standard
streams, the warnings filters, tracing and profiling hooks, the recursion limit, the
namespaces of ``torch``, ``torch.autograd``, ``torch.nn.functional`` and ``torch.Tensor``,
and the child processes of the calling thread.

And what the verdicts are made of: the kernels the float64 reference runs
through (`_Kernels`: an implementation can register its own for ``aten::convolution`` with
``torch.library``, as extension libraries do, and the reference would then agree with it),
and the harness's own judging code (`_Judging`: its modules' names, and the code of their
functions, which can be swapped in place). A kernel registered from Python is removed
again; one that cannot be (registered from C++) leaves the reference untrusted for the rest
of the process (`reference_untrusted`), and nothing is judged against it. It is not a
sandbox: ``--isolate`` and a container are (README, "When an implementation misbehaves").
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
import types
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._python_dispatch as python_dispatch

from harness.model.outcome import Change


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
    # Critical, besides the time limits: what the harness's own code between two calls runs
    # on (making the next case's tensors, the reference, the gradient checks), and cheap to read.
    settings = [
        Setting("inference mode", torch.is_inference_mode_enabled, _set_inference_mode, critical=True),
        Setting("grad mode", torch.is_grad_enabled, torch.set_grad_enabled, critical=True),
        Setting(
            "default device",
            _default_device,
            torch.set_default_device,
            lambda device: "unset" if device is None else str(device),
            critical=True,
        ),
        Setting(
            "torch function modes",
            torch._C._len_torch_function_stack,
            _pop_to(torch._C._len_torch_function_stack, torch._C._pop_torch_function_stack),
            critical=True,
        ),
        Setting(
            "torch dispatch modes",
            torch._C._len_torch_dispatch_stack,
            _pop_to(torch._C._len_torch_dispatch_stack, python_dispatch._pop_mode),
            critical=True,
        ),
        Setting(
            "anomaly mode",
            torch.is_anomaly_enabled,
            lambda on: torch.set_anomaly_enabled(on, torch.is_anomaly_check_nan_enabled()),
        ),
        Setting("default dtype", torch.get_default_dtype, torch.set_default_dtype),
        Setting("torch thread count", torch.get_num_threads, torch.set_num_threads),
        Setting("float32 matmul precision", torch._C._get_float32_matmul_precision, torch.set_float32_matmul_precision),
        Setting(
            "deterministic algorithms",
            _deterministic,
            lambda on: torch.use_deterministic_algorithms(on, warn_only=_deterministic_warn_only()),
        ),
        Setting(
            "deterministic algorithms' warn_only",
            _deterministic_warn_only,
            lambda warn: torch.use_deterministic_algorithms(_deterministic(), warn_only=warn),
        ),
        Setting("working directory", os.getcwd, os.chdir),
        Setting("sys.stdout", lambda: sys.stdout, lambda stream: setattr(sys, "stdout", stream)),
        Setting("sys.stderr", lambda: sys.stderr, lambda stream: setattr(sys, "stderr", stream)),
        Setting("trace function", sys.gettrace, sys.settrace),
        Setting("profile function", sys.getprofile, sys.setprofile),
    ]
    if main_thread:  # signal dispositions can only be set there
        # Read through _signal: signal's wrappers turn every value into an enum, at a cost
        # that counts on every call.
        settings += [
            Setting(
                "SIGALRM handler (the time limits)",
                functools.partial(_signal.getsignal, signal.SIGALRM),
                _set_handler(signal.SIGALRM),
                _shown_handler,
                critical=True,
            ),
            Setting(
                "SIGINT handler (Ctrl-C)",
                functools.partial(_signal.getsignal, signal.SIGINT),
                _set_handler(signal.SIGINT),
                _shown_handler,
            ),
            Setting(
                "blocked signals",
                functools.partial(_signal.pthread_sigmask, signal.SIG_BLOCK, []),
                lambda mask: signal.pthread_sigmask(signal.SIG_SETMASK, mask),
                critical=True,
            ),
        ]
    return tuple(settings)


_left_inference_mode: list[torch._C._InferenceMode] = []


def _set_inference_mode(enabled: bool) -> None:
    """Switch inference mode: torch offers only a guard object for it, which switches it
    back when it is destroyed, so the guard is kept for good. (Leaving inference mode also
    turns grad mode on: the grad mode setting, read before, puts back what it was.)"""
    _left_inference_mode.append(torch._C._InferenceMode(enabled))


def _default_device() -> torch.device | None:
    """The device set with `torch.set_default_device` (None: never set, or unset), read
    where torch keeps it (`torch.get_default_device` says "cpu" for both "cpu" and unset,
    which differ: a set device is a torch function mode)."""
    context = torch._GLOBAL_DEVICE_CONTEXT.__dict__.get("device_context")  # read after every call: no getattr
    return None if context is None else context.device


def _warnings_filters() -> list[Any]:
    return list(warnings.filters)


def _put_back_filters(filters: list[Any]) -> None:
    warnings.filters = filters
    warnings._filters_mutated()  # type: ignore[attr-defined]  # what warnings.simplefilter calls


_MISSING = object()
# Added by Python itself: to a module a warning is issued from, to a class whose instances
# are pickled (an isolated child sends its outcomes).
_CACHES = ("__warningregistry__", "__slotnames__")


class _Namespace:
    """The attributes of a module or class, against a copy taken when the guard was made.

    Comparing a dict with a copy is cheap (microseconds); only when they differ is the
    difference worked out and undone. A module may gain attributes legitimately (importing
    a submodule adds it to its package), so additions to a module are accepted; additions
    to a class shadow its base classes' methods, and a name added to one of the harness's
    own modules (``closed``) shadows a builtin its code calls (``bool``, ``float``), so they
    are not (but for the caches Python itself adds: `_CACHES`).
    """

    def __init__(self, name: str, owner: object, closed: bool | None = None) -> None:
        self.name, self.owner = name, owner
        self.baseline = dict(vars(owner))
        self.closed = isinstance(owner, type) if closed is None else closed

    def unchanged(self) -> bool:
        return vars(self.owner) == self.baseline

    def restore(self) -> list[Change]:
        now = vars(self.owner)
        if now == self.baseline:
            return []
        changed = []
        for key in sorted(set(self.baseline) | set(now)):
            before, after = self.baseline.get(key, _MISSING), now.get(key, _MISSING)
            if before is after:
                continue
            if before is _MISSING and (not self.closed or key in _CACHES):
                self.baseline[key] = after  # a module gained an attribute: harmless
                continue
            how = "added" if before is _MISSING else "deleted" if after is _MISSING else "replaced"
            changed.append(Change(f"{self.name}.{key}", how))
            if before is _MISSING:
                delattr(self.owner, key)
            else:
                setattr(self.owner, key, before)
        return changed


# The harness's modules whose code makes the verdicts: the reference and the comparisons,
# the loops that judge each call, and the guard itself. Named, not imported: some sit above
# this module's layer; each is watched from when the guard is made, if imported by then.
JUDGING = (
    "harness.judge.oracle",
    "harness.judge.compare",
    "harness.judge.gradients",
    "harness.judge.diagnose",
    "harness.judge.transform_bounds",
    "harness.judge.independent",
    "harness.generate.tensors",
    "harness.model.verdict",
    "harness.model.outcome",
    "harness.campaign.check",
    "harness.campaign.crosscheck",
    "harness.campaign.engine",
    "harness.execute.supervisor",
    "harness.execute.runner",
    "harness.execute.process_state",
)
# What a function runs, read one attribute at a time (a getter of all three builds a tuple per function).
_CODE = tuple(map(operator.attrgetter, ("__code__", "__defaults__", "__kwdefaults__")))


def _functions(value: object) -> list[types.FunctionType]:
    """The Python functions behind a module's or class's attribute: a function, a method,
    a property's accessors, what a functools cache calls."""
    if isinstance(value, types.FunctionType):
        return [value]
    if isinstance(value, staticmethod | classmethod):
        return _functions(value.__func__)
    if isinstance(value, property):
        return [function for part in (value.fget, value.fset, value.fdel) for function in _functions(part)]
    if isinstance(value, functools._lru_cache_wrapper):
        return _functions(value.__wrapped__)
    if isinstance(value, functools.cached_property):
        return _functions(value.func)
    return []


class _Judging:
    """The harness's judging code (`JUDGING`) as it was when the guard was made: each
    module's names, its classes' attributes, and the code of every function of theirs (a
    function keeps its identity when its ``__code__`` is swapped, so names alone would not
    see it)."""

    def __init__(self) -> None:
        self.namespaces: list[_Namespace] = []
        self.functions: list[types.FunctionType] = []
        for name in JUDGING:
            module = sys.modules.get(name)
            if module is None:
                continue
            self.namespaces.append(_Namespace(name, module, closed=True))
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name:
                    self.namespaces.append(_Namespace(f"{name}.{value.__qualname__}", value))
                    self.functions += [
                        function for attribute in list(vars(value).values()) for function in _functions(attribute)
                    ]
                else:
                    self.functions += [function for function in _functions(value) if function.__module__ == name]
        # Compared in a few C-level passes: it is checked once for every few calls.
        self.owners = [namespace.owner for namespace in self.namespaces]
        self.baselines = [namespace.baseline for namespace in self.namespaces]
        self.code = [list(map(read, self.functions)) for read in _CODE]

    def unchanged(self) -> bool:
        return list(map(vars, self.owners)) == self.baselines and all(
            list(map(read, self.functions)) == was for read, was in zip(_CODE, self.code, strict=True)
        )

    def restore(self) -> list[Change]:
        changed = [change for namespace in self.namespaces for change in namespace.restore()]
        for function, code, defaults, keywords in zip(self.functions, *self.code, strict=True):
            if (function.__code__, function.__defaults__, function.__kwdefaults__) != (code, defaults, keywords):
                changed.append(Change(f"{function.__module__}.{function.__qualname__}", "its code replaced"))
                function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, keywords
        return changed


# The kernels the float64 reference runs through (`harness.judge.oracle`, `harness.judge.gradients`), as
# the dispatcher resolves them for a CPU tensor, with autograd and below it.
REFERENCE_OPS = (
    "aten::conv2d",
    "aten::conv2d.padding",
    "aten::convolution",
    "aten::_convolution",
    "aten::convolution_backward",
)
_PROBES = tuple(
    (op, key) for op in REFERENCE_OPS for key in (torch._C.DispatchKey.AutogradCPU, torch._C.DispatchKey.CPU)
)
_untrusted: list[Registration] = []  # kernels that could not be removed: the reference cannot be trusted


_COMPUTED_KERNEL = getattr(torch._C, "_dispatch_get_computed_kernel_for_dispatch_key", None)  # torch >= 2.9


def _kernels() -> tuple[str, ...]:
    """Where each reference kernel was registered (a C++ file of torch's own, or where it was
    not). An older torch has no call for one key's kernel: its dispatch table's line for the
    key says the same ("CPU: registered at FILE:LINE [kernel]")."""
    if _COMPUTED_KERNEL is not None:
        return tuple(repr(_COMPUTED_KERNEL(op, key)) for op, key in _PROBES)
    tables = {op: torch._C._dispatch_dump_table(op).splitlines() for op in REFERENCE_OPS}
    return tuple(
        next((line for line in tables[op] if line.startswith(f"{key.name}:")), f"{key.name}: none")
        for op, key in _PROBES
    )


def _aten_from_python() -> frozenset[str]:
    """The ATen kernels registered from Python (torch.library) that a call on CPU tensors can
    reach, as "aten/name/DispatchKey". (Torch registers some kernels for other devices and
    for Meta tensors lazily: none of the reference's business.)"""
    return frozenset(
        entry for entry in torch.library._impls if entry.startswith("aten/") and _reaches_cpu(entry.rpartition("/")[2])
    )


_CPU_RUNTIME_KEYS = tuple(
    key for key in torch._C.DispatchKey.__members__.values() if torch._C._dispatch_keys(torch.empty(0)).has(key)
)


@functools.cache
def _reaches_cpu(name: str) -> bool:
    """Whether a kernel registered for the dispatch key ``name`` ("": the default,
    CompositeImplicitAutograd) runs for a CPU tensor: the key is one of a CPU tensor's,
    or an alias of one (Autograd, CompositeExplicitAutograd), or selects the backend."""
    try:
        key = torch._C._dispatch_key_parse(name or "CompositeImplicitAutograd")
    except RuntimeError:
        return True  # not a key this torch knows: assume the worst
    return key == torch._C.DispatchKey.BackendSelect or any(
        key == own or torch._C._dispatch_is_included_in_alias(own, key) for own in _CPU_RUNTIME_KEYS
    )


def _where(op: str, key: str) -> str:
    """Where the kernel of ``op`` for ``key`` was registered ("file:line"), as torch says."""
    for line in torch._C._dispatch_dump(op).splitlines():
        name, _, rest = line.partition(": registered at ")
        if rest and name.removesuffix("[alias]") == key:
            return rest.split(" :: ")[0]
    return "an unknown place"


def _registered_at(probe: str) -> str:
    return probe.partition("registered at ")[2].rstrip("')") or "an unknown place"


def _libraries() -> list[torch.library.Library]:
    """The torch.library objects alive: each registers a finalizer (`weakref.finalize`)."""
    found = []
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        held = finalizer.peek()
        if held is not None and isinstance(held[0], torch.library.Library):
            found.append(held[0])
    return found


@dataclass(frozen=True)
class Registration:
    """A kernel registered for an op the reference depends on: what the guard reports, and
    the file that registered it (whose implementation it was, when it was registered on
    loading one)."""

    change: Change
    file: str


class _Kernels:
    """The reference's kernels, and the number of kernels registered from Python, against
    how they were when this was made: one lookup per kernel and one ``len``, so it can be
    checked once for every few calls. A kernel registered from Python for any ATen op is
    removed with the library that registered it; a reference kernel that still differs then
    (registered from C++) cannot be, and leaves the reference untrusted."""

    def __init__(self) -> None:
        self.kernels, self.registered, self.aten = _kernels(), len(torch.library._impls), _aten_from_python()

    def unchanged(self) -> bool:
        return len(torch.library._impls) == self.registered and _kernels() == self.kernels

    def restore(self) -> list[Change]:
        return [registration.change for registration in self.removed()]

    def removed(self) -> list[Registration]:
        added = sorted(_aten_from_python() - self.aten)
        found = []
        for entry in added:
            _, name, key = entry.split("/")
            op, key = f"aten::{name}", key or "CompositeImplicitAutograd"
            site = _where(op, key)
            found.append(Registration(Change(op, f"a {key} kernel registered at {_short(site)}"), site))
        for library in _libraries():
            if library._op_impls & set(added):
                library._destroy()  # type: ignore[no-untyped-call]
        for (op, probe), before, after, pristine in zip(_PROBES, self.kernels, _kernels(), _PRISTINE, strict=True):
            if after not in (before, pristine):  # as torch registered it: put back meanwhile
                site = _registered_at(after)
                why = f"a {probe.name} kernel registered at {_short(site)}; could not be removed"
                found.append(Registration(Change(op, why), site))
                _untrusted.append(found[-1])
        self.kernels, self.registered, self.aten = _kernels(), len(torch.library._impls), _aten_from_python()
        return found


def _short(site: str) -> str:
    """A registration site as its file's name and line: stable from one machine to another."""
    return site.rsplit("/", 1)[-1]


def reference_untrusted() -> str:
    """Why the reference cannot be trusted in this process any more ("" while it can): a
    kernel it runs through was replaced, and could not be put back."""
    return f"{_untrusted[0].change.what} has {_untrusted[0].change.detail}" if _untrusted else ""


def unremovable() -> tuple[Registration, ...]:
    """The kernels registered for the reference's ops that could not be removed: each still
    in force for every call after it."""
    return tuple(_untrusted)


# Before any implementation is loaded: the harness imports this module first.
_PRISTINE = _kernels()
_AT_IMPORT = _Kernels()


def registered_since_import() -> list[Registration]:
    """The kernels registered since this module was imported and before any call (by an
    implementation's module as it was loaded, as extension libraries register theirs),
    each removed, or the reference untrusted where it cannot be."""
    return [] if _AT_IMPORT.unchanged() else _AT_IMPORT.removed()


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


Before = tuple[list[Any], tuple[bytes, int] | None]  # what `Guard.after` compares with


class Guard:
    """Puts back what a call changed of the state as the guard found it when it was made.

    It runs around every call, so the common case (nothing changed) is a few C-level reads
    and comparisons, and what changed is worked out only when something did. The harness
    changes none of this state between calls (it sets up its handlers and thread count
    before the first), except the recursion limit, which Hypothesis raises around each
    test it runs, and the warnings filters, which a module the harness imports between
    calls may add to (sympy does): those are compared with what they were when the calls
    began (`before`, `before_call`).

    Two tiers, for speed: what must hold before the next call runs is checked after every
    call (that this is not a forked copy of the process; the SIGALRM handler and blocked
    signals, without which no time limit holds; and what the harness's own code between
    two calls runs on: grad and inference mode, the default device, the mode stacks, the
    warnings filters). The rest (``shared``: torch's other switches, the working directory,
    the namespaces, the judging code and the reference's kernels, child processes left
    running) costs more to compare than a small check takes: with ``each_call`` off,
    `after` leaves it to the caller, who asks `shared_changed` once for several calls and,
    when it did, calls them again one by one with ``each_call`` on
    (`harness.execute.supervisor.Supervisor.watched`).
    """

    def __init__(self, each_call: bool = True) -> None:
        self.pid, self.each_call = os.getpid(), each_call
        settings = _settings(threading.current_thread() is threading.main_thread())
        self.critical = _Tier(tuple(setting for setting in settings if setting.critical))
        self.shared = _Tier(tuple(setting for setting in settings if not setting.critical))
        self.watched: tuple[_Namespace | _Judging | _Kernels, ...] = (
            _Namespace("torch", torch),
            _Namespace("torch.autograd", torch.autograd),
            _Namespace("torch.nn.functional", F),
            _Namespace("torch.Tensor", torch.Tensor),
            _Judging(),
            _Kernels(),
        )
        self.children = _children_file()

    def before(self) -> tuple[bytes, int]:
        """What the harness itself may change between calls: the child processes running
        (an isolated child started meanwhile, say), and the recursion limit."""
        return _children(self.children), sys.getrecursionlimit()

    def before_call(self) -> Before:
        """The warnings filters, and `before` where `after` needs it: with ``each_call`` on."""
        return _warnings_filters(), (self.before() if self.each_call else None)

    def after(self, state: Before) -> tuple[Change, ...]:
        """What the call changed, each put back (or said to be impossible to put back)."""
        if os.getpid() != self.pid:
            # The implementation forked and this is the copy, returning into the harness:
            # it must not go on running a campaign of its own.
            os._exit(70)
        filters, before = state
        if (
            self.critical.unchanged()
            and warnings.filters == filters
            and (before is None or not self.shared_changed(before))
        ):
            return ()
        changed = self.critical.put_back()
        if warnings.filters != filters:
            changed.append(Change("warnings filters", _filters_changed(filters, warnings.filters)))
            _put_back_filters(filters)
        if before is not None:
            changed += self.put_back_shared(before)
        return tuple(changed)

    def shared_changed(self, before: tuple[bytes, int]) -> bool:
        """Whether the shared tier differs from how it was (`before` says how the child
        processes and the recursion limit were)."""
        children, limit = before
        return (
            not self.shared.unchanged()
            or sys.getrecursionlimit() != limit
            or not all(watched.unchanged() for watched in self.watched)
            or _children(self.children) != children
        )

    def put_back_shared(self, before: tuple[bytes, int]) -> list[Change]:
        children, limit = before
        changed = self.shared.put_back() + _Tier((_RECURSION_LIMIT,), (limit,)).put_back()
        changed += [change for watched in self.watched for change in watched.restore()]
        return changed + _stop_new_children(children, _children(self.children))


def _filters_changed(before: list[Any], after: object) -> str:
    """Which warnings filters a call added or removed ("added 'error' for Warning")."""
    if not isinstance(after, list):
        return f"replaced by a {type(after).__name__}"

    def shown(filters: list[Any]) -> str:
        return ", ".join(
            f"{entry[0]!r} for {getattr(entry[2], '__name__', '?')}"
            if isinstance(entry, tuple) and len(entry) == 5
            else _shown(entry)
            for entry in filters[:3]
        )

    added, removed = [f for f in after if f not in before], [f for f in before if f not in after]
    said = ([f"added {shown(added)}"] if added else []) + ([f"removed {shown(removed)}"] if removed else [])
    return "; ".join(said) or "reordered"


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
