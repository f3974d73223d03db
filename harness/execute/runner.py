"""Call one implementation on one case and capture everything it did, whatever it does.

The runner does not judge (that is `compare`); it calls, in the argument form the
implementation declared, and records as plain data what came back, what was raised and
where, and whether the inputs it was handed are still bit-for-bit what they were. The
code under test is suspect by definition: it may raise anything (KeyboardInterrupt and
SystemExit included), loop forever, exhaust memory, kill the process, or change the
process-wide state everything after it depends on. In this process a per-case time limit
interrupts Python-level hangs and a `harness.execute.process_state.Guard` puts back whatever state
the call changed; `harness.execute.isolation` runs an implementation in a child process when it
must survive crashes and C-level hangs too.
"""

from __future__ import annotations

import functools
import gc
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import Any, cast

import torch

from harness.execute.capture import Capture, here
from harness.execute.process_state import Guard
from harness.generate.tensors import Inputs, same_bits
from harness.judge.gradients import weighted_gradients
from harness.model.capabilities import call_arguments
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.registry import Implementation
from harness.model.text import message, type_name

TIME_BASE = 2.0  # seconds any case may take (or what the implementation declares: ``time_limit``) ...
TIME_PER_MAC = 1e-6  # ... plus this per multiply-add: a per-pixel Python loop still fits
# More for the first call on a shape by an implementation that declares it compiles per shape.
COMPILE_SECONDS = 30.0
# The most kept of what an exception from the code under test says: all its lines (their
# breaks escaped) up to this many characters, for the JSON report and the corpus (a text
# line shows less). Like the 4 KiB kept of each stream a call writes to, it bounds what a
# flood costs each check, and keeps a corpus file of many such messages under its 1 MiB.
MESSAGE_KEPT = 4096


@functools.lru_cache(maxsize=4096)
def time_limit(case: Case, base: float = TIME_BASE) -> float:
    """Seconds a call may take: ``base``, and more in proportion to the work, so that
    slow-but-correct code passes."""
    macs = case.reduction_length
    for size in case.output_shape:
        macs *= size
    return base + TIME_PER_MAC * macs


def _site(error: BaseException) -> str:
    """file:line of the innermost frame: Hypothesis tells bugs apart the same way. (Read
    from the code under test's exception, whose ``__traceback__`` may be anything.)"""
    try:
        frames = traceback.extract_tb(error.__traceback__)
        if not frames:
            return ""
        frame = frames[-1]
        return f"{str.__str__(frame.filename).rsplit('/', 1)[-1]}:{frame.lineno}"
    except BaseException:  # nothing may leave: see `_attempt`
        return ""


def _said(error: BaseException) -> str:
    """What ``error`` says, whole up to `MESSAGE_KEPT` characters, on one line. Its
    ``__str__`` is the code under test's: read once, by the caller, under the call's time
    limit."""
    return message(error, MESSAGE_KEPT, every_line=True)


class _TimeLimit(BaseException):
    """Raised into the implementation by the timer; BaseException so `except Exception` in
    the code under test cannot swallow it."""


_user_interrupt = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    """Ctrl-C: noted, and acted on at the campaign's next call (`stop_if_interrupted`), at
    most a time limit away. Not raised here: a KeyboardInterrupt raised from a signal
    handler lands wherever Python happens to be, a garbage-collector callback included,
    where it is printed and swallowed."""
    _user_interrupt.set()


def interrupt() -> None:
    """Ctrl-C that comes other than as SIGINT (a cluster's driver asking the shard a worker
    runs to stop), acted on as Ctrl-C is: at the campaign's next call, shrinking included."""
    _user_interrupt.set()


def stop_if_interrupted() -> None:
    """Raise the user's Ctrl-C, if there was one, here and now."""
    if _user_interrupt.is_set():
        raise KeyboardInterrupt


@contextmanager
def user_interrupts() -> Iterator[None]:
    """Tell the user's Ctrl-C apart from an implementation raising KeyboardInterrupt itself.
    A campaign starts uninterrupted, and leaves no Ctrl-C behind: one it noted was acted on
    (or came too late to matter), and a later call of the caller's (a `check_case`, another
    campaign) must not stop on it. Outside the main thread (a cluster's worker) only
    `interrupt` interrupts it."""
    _user_interrupt.clear()
    try:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, _on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        _user_interrupt.clear()


_limits = [False]  # whether `time_limits` is in force: cheaper to ask than the signal module
# Whether the time limit of the call under way went off: it counts even where the code
# under test caught the exception (an ``except BaseException`` in the call, in its
# exception's ``__str__``, or in the harness's own catch-alls around what it gave back).
_expired = [False]
# Whether the garbage collector is running callbacks or finalisers: from the first
# `gc.callbacks` entry's "start" to the last one's "stop" (`_gc_bracketed` keeps ours there).
_collecting = [False]
# Seconds: a time limit that went off where it must not raise goes off again after this
# (give or take a half, so as not to keep time with a loop's collections) ...
_AGAIN = 0.01
_DEFER_AT_MOST = 1000  # ... this many times: past that (a hang inside a finaliser), it raises where it is
_deferrals = [0]


def _gc_started(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collecting[0] = True


def _gc_stopped(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        _collecting[0] = False


def _gc_bracketed() -> None:
    """Ours first and last among `gc.callbacks`, where a library may have added its own since."""
    callbacks = gc.callbacks
    if not callbacks or callbacks[0] is not _gc_started or callbacks[-1] is not _gc_stopped:
        for ours in (_gc_started, _gc_stopped):
            while ours in callbacks:
                callbacks.remove(ours)
        callbacks.insert(0, _gc_started)
        callbacks.append(_gc_stopped)


def _where(frame: FrameType | None) -> tuple[bool, bool]:
    """Whether ``frame`` is in a call (`_attempt` is on the stack), and whether in code there
    that no one called: a garbage-collector callback or a ``__del__`` (one run as a
    reference was dropped; those a collection runs count while `_collecting`)."""
    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    foreign = False
    while frame is not None:
        if frame.f_code is _attempt.__code__:
            return True, foreign
        foreign = foreign or frame.f_code.co_name == "__del__" or frame.f_code in callbacks
        frame = frame.f_back
    return False, foreign


_traced: list[tuple[object] | None] = [None]  # the trace function in force before `_in_the_call`'s, once set


def _in_the_call(frame: FrameType, event: str, arg: Any) -> Any:
    """A trace function, set where the time limit went off in foreign code: raises the
    time limit at the first line the call's own code runs after it."""
    inside, foreign = _where(frame)
    if inside and not foreign and not _collecting[0] and event != "call":
        _expired[0] = True
        raise _TimeLimit
    return _in_the_call


def _trace_the_call(frame: FrameType | None) -> None:
    """Trace the call's frames from ``frame`` up to `_attempt`, and those it starts (`_in_the_call`)."""
    if _traced[0] is None:
        _traced[0] = (sys.gettrace(),)
        sys.settrace(_in_the_call)
    while frame is not None:
        frame.f_trace = _in_the_call
        if frame.f_code is _attempt.__code__:
            return
        frame = frame.f_back


def _expire(signum: int, frame: FrameType | None) -> None:
    """The time limit went off: raise `_TimeLimit` into the call, and only into the call's
    own code. Python runs a signal handler between any two bytecodes, a garbage-collector
    callback's and a finaliser's included, where an exception is printed ("Exception
    ignored in: <function gc_callback ...>") and swallowed, the library's callback cut
    short and the call going on. So there (a collection under way, a ``__del__`` or a
    library's gc callback on the stack) the handler raises nothing: it traces the call
    (`_trace_the_call`) to raise at its next line of its own, and goes off again about
    `_AGAIN` later should tracing not get there (a finaliser that never ends gets the
    exception after `_DEFER_AT_MOST` tries: nothing else ends it). Once raised, it goes
    off again every `_AGAIN` until the call ends, should the call swallow it (``_expired``
    says it went off). Outside a call (it has returned) it does nothing."""
    inside, foreign = _where(frame)
    if not inside:
        return
    if _deferrals[0] < _DEFER_AT_MOST and (_collecting[0] or foreign):
        _deferrals[0] += 1
        _trace_the_call(frame)
        signal.setitimer(signal.ITIMER_REAL, _AGAIN * (0.5 + _deferrals[0] % 7 / 7))
        return
    _expired[0] = True
    signal.setitimer(signal.ITIMER_REAL, _AGAIN)
    raise _TimeLimit


@contextmanager
def time_limits() -> Iterator[None]:
    """Let `call` enforce time limits in this process (main thread only) for a while.

    The SIGALRM handler is installed once here, not per call: installing a signal handler
    costs more than a small convolution.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expire)
    enforced, _limits[0] = _limits[0], True  # nested (a campaign inside a command): the outer stays
    try:
        yield
    finally:
        _limits[0] = enforced
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if not enforced:
            for ours in (_gc_started, _gc_stopped):
                while ours in gc.callbacks:
                    gc.callbacks.remove(ours)


@contextmanager
def _timer(seconds: float | None) -> Iterator[None]:
    """Interrupt the call after ``seconds``, where `time_limits` is in force (Python-level
    loops only: a hang inside C code needs isolation)."""
    _expired[0], _deferrals[0] = False, 0
    if seconds is None or not _limits[0]:
        yield
        return
    _gc_bracketed()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if _traced[0] is not None:
            sys.settrace(_traced[0][0])  # type: ignore[arg-type]  # what was in force: None, or a coverage tool's
            _traced[0] = None


def _shares_memory(result: object, tensor: torch.Tensor, inputs: Inputs) -> bool:
    """``result`` is an input, or ``tensor`` (it, read as a plain tensor) shares an input's
    storage (an empty tensor has none to compare)."""
    pointer = tensor.untyped_storage().data_ptr()
    return any(result is t or (pointer != 0 and t.untyped_storage().data_ptr() == pointer) for t in inputs.tensors())


def _requiring_grad(inputs: Inputs) -> Inputs:
    """Views of the same memory that autograd tracks (detach() keeps the strides)."""
    bias = None if inputs.bias is None else inputs.bias.detach().requires_grad_()
    return Inputs(inputs.input.detach().requires_grad_(), inputs.weight.detach().requires_grad_(), bias)


@functools.cache
def prepare_autograd() -> None:
    """Run once what torch sets up on first use of ``autograd.grad``, its engine, so that no
    case's time limit pays for it. With grad mode on, out of inference mode and on the CPU,
    whatever an implementation called before it left switched."""
    with torch.inference_mode(False), torch.enable_grad():
        a = torch.ones(2, dtype=torch.float64, device="cpu", requires_grad=True)
        weighted_gradients(a * 2, [a], torch.ones_like(a))


def _gradients(result: object, leaves: Inputs, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """d(sum(result * upstream)) / d(input, weight, bias); None for one autograd never reached."""
    # Whatever it returned: autograd raises for what is not a tensor, as a user's backward would.
    found = weighted_gradients(result, leaves.tensors(), upstream, allow_unused=True)
    return (*found, *[None] * (3 - len(found)))


def call(
    implementation: Implementation,
    case: Case,
    inputs: Inputs,
    pristine: Inputs,
    seconds: float | None = None,
    upstream: torch.Tensor | None = None,
    guard: Guard | None = None,
    capture: Capture | None = None,
) -> Outcome:
    """Call with ``inputs``, then compare them with ``pristine``, the same values untouched.

    With ``upstream``, the inputs require grad and the call also back-propagates
    ``upstream`` through the result, inside the same time limit. ``guard`` puts back the
    process-wide state the call changed before anything else runs (a fresh one when not
    given); what it put back is in the outcome. ``capture`` catches what the call warns or
    writes (this process's when not given), which is in the outcome too.

    Reading what the call gave back runs the code under test again (a tensor subclass's
    ``.shape``, an exception's ``__str__``), so it happens inside the same time limit,
    capture and guard, and whatever it raises or however long it takes, SystemExit and
    endless loops included, is this call's failure (`_attempt`).
    """
    arguments = call_arguments(implementation.capabilities, case)
    if upstream is not None:
        prepare_autograd()
    guard = Guard() if guard is None else guard
    capture = here() if capture is None else capture
    state = guard.before_call()
    gave: list[str] = []  # what the call gave back, once it did: for a time limit going off after
    outcome: Outcome | KeyboardInterrupt | None = None
    capture.start()
    try:
        with _timer(seconds), _threads(case.threads):
            outcome = _attempt(implementation, arguments, inputs, upstream, gave)
    except BaseException:  # the time limit, going off between `_attempt`'s own catches
        outcome = None
    noise = capture.stop()  # before the guard: the streams it stood in for are back
    changed = guard.after(state)
    if isinstance(outcome, KeyboardInterrupt):
        raise outcome  # the user pressed Ctrl-C: stop the campaign, not this case
    if outcome is None or _expired[0]:
        after = "" if seconds is None else f" after {seconds:.1f}s"
        late = f": it {gave[-1]}, and reading that did not end in time" if gave else ""
        outcome = Outcome(abnormal="timeout", error_message=f"no result{after}{late}")
    elif not outcome.abnormal:
        outcome.modified = _modified(inputs, pristine)
    outcome.noise = noise
    return replace(outcome, changed=changed) if changed else outcome


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's thread count ``count`` for the call, and as it was after it, unless the call
    set a count of its own: that is left for the guard to see and put back. (A campaign
    runs on one thread: a case with one, nearly all of them, costs a comparison.)"""
    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() == count:
            torch.set_num_threads(before)


def _attempt(
    implementation: Implementation,
    arguments: dict[str, object],
    inputs: Inputs,
    upstream: torch.Tensor | None,
    gave: list[str],
) -> Outcome | KeyboardInterrupt | None:
    """The call, and the harness's reading of what it raised or returned, which is code
    under test too: an Outcome of all that can be told without the inputs (`call` adds
    whether they were modified), the user's Ctrl-C (raised once the call is cleaned up
    after), or None where the time limit went off. Nothing raised here leaves, SystemExit
    included; ``gave`` says what came back, once something did."""
    grads = None
    try:
        if upstream is None:
            result = implementation.fn(inputs.input, inputs.weight, inputs.bias, **arguments)
        else:
            leaves = _requiring_grad(inputs)
            result = implementation.fn(leaves.input, leaves.weight, leaves.bias, **arguments)
            grads = _gradients(result, leaves, upstream)
            result = result.detach()
    except BaseException as error:  # the implementation is under test: anything may happen
        if _expired[0]:
            return None
        if issubclass(type(error), KeyboardInterrupt) and _user_interrupt.is_set():
            return cast(KeyboardInterrupt, error)
        return _raised(error, gave)
    return _returned(result, inputs, grads, gave)


def _raised(error: BaseException, gave: list[str]) -> Outcome:
    """What an exception the implementation raised says: its class, message and place."""
    name = type_name(error)
    gave.append(f"raised {name}")
    text = _said(error)  # read once: its __str__ is the implementation's, and may be slow
    if issubclass(type(error), MemoryError) or "can't allocate memory" in text:
        return Outcome(abnormal="memory", error_type=name, error_message=text, error_site=_site(error))
    return Outcome(error_type=name, error_message=text, error_site=_site(error))


def _returned(
    result: object, inputs: Inputs, grads: tuple[torch.Tensor | None, ...] | None, gave: list[str]
) -> Outcome:
    """What came back, as a plain tensor where it is one: a subclass is read with its own
    ``__torch_function__`` switched off (which may raise), so that judging it runs the
    harness's code, not the implementation's. Its gradients the same way."""
    returned = type_name(result)
    gave.append(f"returned {returned}")
    if not issubclass(type(result), torch.Tensor):  # not isinstance: __class__ can lie
        return Outcome(returned=returned)
    try:
        tensor = _plain(cast(torch.Tensor, result))
        aliased = _shares_memory(result, tensor, inputs)
        if tensor is not result:
            tensor = tensor.detach().clone()  # a wrapper subclass may have no data to read
        if grads is not None:
            grads = tuple(g if g is None or type(g) is torch.Tensor else _plain(g).detach().clone() for g in grads)
    except BaseException as error:  # anything, SystemExit included: it is the implementation's code
        return Outcome(
            returned=returned,
            error_message=f"a torch.Tensor subclass that cannot be used as one ({type_name(error)}: {_said(error)})",
        )
    if tensor.layout != torch.strided:
        return Outcome(returned=returned, error_message=f"a {str(tensor.layout)[6:]} tensor, not a strided (dense) one")
    return Outcome(result=tensor, returned=returned, device=str(tensor.device), aliased=aliased, grads=grads)


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` read as a plain torch.Tensor, after what any caller reads first of it."""
    if type(tensor) is torch.Tensor:
        return tensor
    tensor.shape, tensor.dtype, tensor.device  # noqa: B018  # a subclass's own code, which may raise
    with torch._C.DisableTorchFunctionSubclass():
        return torch.Tensor.as_subclass(tensor, torch.Tensor)


def _modified(inputs: Inputs, pristine: Inputs) -> tuple[str, ...]:
    return tuple(
        name
        for name in ("input", "weight", "bias")
        if getattr(inputs, name) is not None and not same_bits(getattr(inputs, name), getattr(pristine, name))
    )
