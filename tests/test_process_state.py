"""The guard around every call: whatever process-wide state a call changes is named and put back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.execute.process_state import Guard


def changes(during: Callable[[], object]) -> list[str]:
    """What a guard reports (and puts back) around ``during``."""
    guard = Guard()
    state = guard.before_call()
    during()
    return [str(change) for change in guard.after(state)]


def _another_sigint_handler() -> signal.Handlers:
    """A SIGINT handler other than the one in force: a run started in the background of a
    shell inherits SIGINT ignored, where setting SIG_IGN would change nothing."""
    return signal.SIG_DFL if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else signal.SIG_IGN


def test_a_call_that_changes_nothing_reports_nothing() -> None:
    assert changes(lambda: torch.ones(3).sum()) == []


def test_a_call_that_changes_and_restores_state_itself_reports_nothing() -> None:
    def tidy() -> None:
        with torch.no_grad():
            torch.ones(2) * 2

    assert changes(tidy) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda: torch.set_num_threads(torch.get_num_threads() + 1), "torch thread count"),
        (lambda: torch.set_float32_matmul_precision("medium"), "float32 matmul precision ('highest' -> 'medium')"),
        (lambda: torch.use_deterministic_algorithms(True), "deterministic algorithms"),
        (lambda: torch.set_default_device("cpu"), "torch function modes (0 -> 1)"),
        (lambda: signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM]), "blocked signals"),
        (lambda: signal.signal(signal.SIGINT, _another_sigint_handler()), "SIGINT handler (Ctrl-C)"),
        (lambda: setattr(sys, "stdout", open(os.devnull, "w")), "sys.stdout"),  # noqa: SIM115 (left open, on purpose)
        (lambda: sys.setrecursionlimit(sys.getrecursionlimit() + 7), "recursion limit"),
        (lambda: setattr(torch, "conv2d", lambda *args: None), "torch.conv2d"),
    ],
)
def test_each_kind_of_process_wide_state_is_named_and_put_back(change: Callable[[], object], named: str) -> None:
    guard = Guard()
    state = guard.before_call()
    change()
    reported = [str(c) for c in guard.after(state)]
    assert any(line.startswith(named) for line in reported), reported
    assert guard.critical.unchanged() and guard.shared.unchanged()  # every setting is as it was


def test_a_method_added_to_torch_tensor_is_removed_but_a_module_gaining_a_submodule_is_left_alone() -> None:
    def patch() -> None:
        # A wrong method (it returns its tensor unchanged) is the point: it shadows TensorBase.abs.
        torch.Tensor.abs = lambda self: self  # type: ignore[method-assign, assignment, return-value]
        F.some_submodule = types.ModuleType("some_submodule")  # type: ignore[attr-defined]

    try:
        assert changes(patch) == ["torch.Tensor.abs (added)"]
        assert "abs" not in vars(torch.Tensor) and torch.tensor([-1.0]).abs().item() == 1.0
    finally:
        vars(F).pop("some_submodule", None)


def test_a_deleted_function_is_put_back() -> None:
    original = F.unfold
    assert changes(lambda: delattr(F, "unfold")) == ["torch.nn.functional.unfold (deleted)"]
    assert F.unfold is original


def test_a_process_that_already_exited_is_reaped_without_blame_and_a_running_one_is_killed() -> None:
    finished: list[subprocess.Popen[bytes]] = []

    def start_and_forget() -> None:
        finished.append(subprocess.Popen([sys.executable, "-c", "pass"]))
        os.waitid(os.P_PID, finished[0].pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped

    assert changes(start_and_forget) == []
    running: list[subprocess.Popen[bytes]] = []
    assert changes(lambda: running.append(subprocess.Popen(["sleep", "600"]))) == [
        "child processes (1 left running, killed)"
    ]
    assert not Path(f"/proc/{running[0].pid}").exists()


def test_a_copy_of_the_process_forked_by_a_call_never_returns_into_the_caller(tmp_path: Path) -> None:
    returned = tmp_path / "returned"
    guard = Guard()
    state = guard.before_call()
    pid = os.fork()  # the implementation forks, and both copies return
    if pid == 0:
        try:
            guard.after(state)  # exits here
        finally:
            returned.write_text("the fork went on")  # never reached
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 70
    assert guard.after(state) == ()  # reaped above: nothing left to report
    assert not returned.exists()
