"""Call one implementation on one case and capture everything it did, whatever it does.

The runner does not judge (that is `compare`); it calls, in the argument form the
implementation declared, and records as plain data what came back, what was raised and
where, and whether the inputs it was handed are still bit-for-bit what they were. The
code under test is suspect by definition: it may raise anything (KeyboardInterrupt and
SystemExit included), loop forever, exhaust memory, kill the process, or change the
process-wide state everything after it depends on. In this process a per-case time limit
interrupts Python-level hangs and a `harness.process_state.Guard` puts back whatever state
the call changed; `harness.isolation` runs an implementation in a child process when it
must survive crashes and C-level hangs too.
"""

from __future__ import annotations

import functools
import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import cast

import torch

from harness.capabilities import call_arguments
from harness.capture import Capture, here
from harness.case import Case
from harness.outcome import Outcome
from harness.process_state import Guard
from harness.registry import Implementation
from harness.tensors import Inputs, same_bits
from harness.text import message

TIME_BASE = 2.0  # seconds any case may take ...
TIME_PER_MAC = 1e-6  # ... plus this per multiply-add: a per-pixel Python loop still fits


@functools.lru_cache(maxsize=4096)
def time_limit(case: Case) -> float:
    """Seconds a call may take: proportional to the work, so slow-but-correct code passes."""
    macs = case.reduction_length
    for size in case.output_shape:
        macs *= size
    return TIME_BASE + TIME_PER_MAC * macs


def _site(error: BaseException) -> str:
    """file:line of the innermost frame: Hypothesis tells bugs apart the same way."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


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


def stop_if_interrupted() -> None:
    """Raise the user's Ctrl-C, if there was one, here and now."""
    if _user_interrupt.is_set():
        raise KeyboardInterrupt


@contextmanager
def user_interrupts() -> Iterator[None]:
    """Tell the user's Ctrl-C apart from an implementation raising KeyboardInterrupt itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _user_interrupt.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_limits = [False]  # whether `time_limits` is in force: cheaper to ask than the signal module


def _expire(signum: int, frame: object) -> None:
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
    _limits[0] = True
    try:
        yield
    finally:
        _limits[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _timer(seconds: float | None) -> Iterator[None]:
    """Interrupt the call after ``seconds``, where `time_limits` is in force (Python-level
    loops only: a hang inside C code needs isolation)."""
    if seconds is None or not _limits[0]:
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _shares_memory(result: object, tensor: torch.Tensor, inputs: Inputs) -> bool:
    """``result`` is an input, or ``tensor`` (it, read as a plain tensor) shares an input's
    storage (an empty tensor has none to compare)."""
    pointer = tensor.untyped_storage().data_ptr()
    return any(result is t or (pointer != 0 and t.untyped_storage().data_ptr() == pointer)
               for t in inputs.tensors())


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "can't allocate memory" in message(error, 10**6)


def _requiring_grad(inputs: Inputs) -> Inputs:
    """Views of the same memory that autograd tracks (detach() keeps the strides)."""
    bias = None if inputs.bias is None else inputs.bias.detach().requires_grad_()
    return Inputs(inputs.input.detach().requires_grad_(), inputs.weight.detach().requires_grad_(), bias)


@functools.cache
def prepare_autograd() -> None:
    """Run once what torch sets up on first use of ``autograd.grad`` with output gradients:
    autograd's engine, and an import of sympy (0.8 s here), so that no case's time limit
    pays for it."""
    a = torch.ones(2, dtype=torch.float64, requires_grad=True)
    torch.autograd.grad(a * 2, [a], torch.ones_like(a))


def _gradients(result: object, leaves: Inputs, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """d(sum(result * upstream)) / d(input, weight, bias); None for one autograd never reached."""
    wanted = leaves.tensors()
    # Whatever it returned: autograd raises for what is not a tensor, as a user's backward would.
    found = torch.autograd.grad(cast(torch.Tensor, result), wanted, upstream, allow_unused=True)
    return (*found, *[None] * (3 - len(found)))


def call(implementation: Implementation, case: Case, inputs: Inputs, pristine: Inputs,
         seconds: float | None = None, upstream: torch.Tensor | None = None, guard: Guard | None = None,
         capture: Capture | None = None) -> Outcome:
    """Call with ``inputs``, then compare them with ``pristine``, the same values untouched.

    With ``upstream``, the inputs require grad and the call also back-propagates
    ``upstream`` through the result, inside the same time limit. ``guard`` puts back the
    process-wide state the call changed before anything else runs (a fresh one when not
    given); what it put back is in the outcome. ``capture`` catches what the call warns or
    writes (this process's when not given), which is in the outcome too.
    """
    arguments = call_arguments(implementation.capabilities, case)
    if upstream is not None:
        prepare_autograd()
    guard = Guard() if guard is None else guard
    capture = here() if capture is None else capture
    state = guard.before_call()
    result: object = None
    grads = None
    raised: BaseException | None = None
    capture.start()
    try:
        with _timer(seconds):
            if upstream is None:
                result = implementation.fn(inputs.input, inputs.weight, inputs.bias, **arguments)
            else:
                leaves = _requiring_grad(inputs)
                result = implementation.fn(leaves.input, leaves.weight, leaves.bias, **arguments)
                grads = _gradients(result, leaves, upstream)
                result = result.detach()  # type: ignore[attr-defined]
    except BaseException as error:  # the implementation is under test: anything may happen
        raised = error
    noise = capture.stop()  # before the guard: the streams it stood in for are back
    changed = guard.after(state)
    if raised is None:
        outcome = _returned(result, inputs, pristine, grads)
    elif isinstance(raised, KeyboardInterrupt) and _user_interrupt.is_set():
        raise raised  # the user pressed Ctrl-C: stop the campaign, not this case
    elif isinstance(raised, _TimeLimit):
        outcome = Outcome(abnormal="timeout", error_message=f"no result after {seconds:.1f}s")
    elif _is_out_of_memory(raised):
        outcome = Outcome(abnormal="memory", error_type=type(raised).__name__,
                          error_message=message(raised), error_site=_site(raised))
    else:
        outcome = Outcome(error_type=type(raised).__name__, error_message=message(raised),
                          error_site=_site(raised), modified=_modified(inputs, pristine))
    outcome.noise = noise
    return replace(outcome, changed=changed) if changed else outcome


def _returned(result: object, inputs: Inputs, pristine: Inputs,
              grads: tuple[torch.Tensor | None, ...] | None) -> Outcome:
    """What came back, as a plain tensor where it is one: a subclass is read with its own
    ``__torch_function__`` switched off (which may raise), so that judging it runs the
    harness's code, not the implementation's."""
    modified = _modified(inputs, pristine)
    returned = type(result).__name__
    if not issubclass(type(result), torch.Tensor):  # not isinstance: __class__ can lie
        return Outcome(returned=returned, modified=modified)
    try:
        if type(result) is torch.Tensor:
            tensor = result
        else:
            subclass = cast(torch.Tensor, result)
            subclass.shape, subclass.dtype, subclass.device  # noqa: B018  # what any caller reads first
            with torch._C.DisableTorchFunctionSubclass():
                tensor = torch.Tensor.as_subclass(result, torch.Tensor)  # type: ignore[arg-type]
        aliased = _shares_memory(result, tensor, inputs)
        if tensor is not result:
            tensor = tensor.detach().clone()  # a wrapper subclass may have no data to read
    except Exception as error:
        return Outcome(returned=returned, modified=modified,
                       error_message=f"a torch.Tensor subclass that cannot be used as one "
                                     f"({type(error).__name__}: {message(error)})")
    if tensor.layout != torch.strided:
        return Outcome(returned=returned, modified=modified,
                       error_message=f"a {str(tensor.layout)[6:]} tensor, not a strided (dense) one")
    return Outcome(result=tensor, returned=returned, device=str(tensor.device), aliased=aliased,
                   modified=modified, grads=grads)


def _modified(inputs: Inputs, pristine: Inputs) -> tuple[str, ...]:
    return tuple(name for name in ("input", "weight", "bias")
                 if getattr(inputs, name) is not None
                 and not same_bits(getattr(inputs, name), getattr(pristine, name)))
