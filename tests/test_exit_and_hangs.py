"""A run ends by saying what it did, whatever an implementation raised, returned or called;
nothing the harness reads of an implementation's objects hangs it; a pytest campaign passes
only when it ran to its end, and leaves the test suite's process as it found it.

The implementations are in tests/hostile_exit.py, each correct but when a bias is given.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hostile_exit
import numpy
import planted_bugs
import pytest
import torch
from hypothesis import settings

import harness
from harness.api import assert_conv2d_matches
from harness.campaign import engine as campaign
from harness.campaign.check import check_case
from harness.execute import runner
from harness.execute.journal import FOLDER
from harness.execute.process_state import Guard
from harness.generate.tensors import make_inputs
from harness.model.case import Case
from harness.model.registry import discover, implementation_from

HOSTILE = str(Path(hostile_exit.__file__).resolve())
BIAS_CASE = "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"
# Generous: a looping implementation costs a time limit (2 s) per call until it is
# quarantined, and shrinking its bug up to `campaign.SHRINK_SECONDS`; the machine may be busy.
SECONDS = 300


def spec(name: str) -> str:
    return f"{HOSTILE}:{name}"


def harness_command(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments], cwd=cwd, capture_output=True, text=True, timeout=SECONDS
    )


def lines_naming(name: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if spec(name) in line]


# -- no silent exit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("exits_in_str_with_bias", "FAILED {} [exception] "),
        ("exits_in_shape_with_bias", "FAILED {} [not-a-tensor] "),
        ("exits_zero_with_bias", "CRASHED {} "),
        ("exits_zero_from_thread_with_bias", "CRASHED {} "),
    ],
)
def test_an_implementation_that_leaves_with_status_0_makes_fuzz_fail_and_name_it(
    name: str, first_line: str, tmp_path: Path
) -> None:
    ran = harness_command("fuzz", "--impl", spec(name), "--max-examples", "50", "--seed", "1", cwd=tmp_path)
    assert ran.returncode == 1, (ran.stdout[-2000:], ran.stderr[-2000:])
    assert any(line.startswith(first_line.format(spec(name))) for line in lines_naming(name, ran.stdout)), ran.stdout[
        -2000:
    ]


def test_after_a_silent_exit_the_journal_is_kept_and_the_next_run_fails_too(tmp_path: Path) -> None:
    name = "exits_zero_with_bias"
    arguments = ("fuzz", "--impl", spec(name), "--max-examples", "50", "--seed", "1")
    first = harness_command(*arguments, cwd=tmp_path)
    assert first.returncode == 1 and "exited with status 0 in the middle of this call" in first.stdout, first.stdout[
        -2000:
    ]
    assert list((tmp_path / "corpus" / FOLDER).glob("*.json"))
    again = harness_command(*arguments, cwd=tmp_path)
    assert again.returncode == 1, again.stdout[-2000:]
    assert "re-checked in isolation, it fails there too [crash]" in again.stdout
    assert any(line.startswith(f"FAILED {spec(name)} [crash] ") for line in lines_naming(name, again.stdout))


def test_replay_and_conformance_fail_and_name_an_implementation_that_exits_with_status_0(tmp_path: Path) -> None:
    name = "exits_zero_with_bias"
    replayed = harness_command("replay", BIAS_CASE, "--impl", spec(name), cwd=tmp_path)
    assert replayed.returncode == 1, replayed.stdout[-2000:]
    assert f"CRASHED {spec(name)} {BIAS_CASE}" in replayed.stdout.splitlines()
    tabled = harness_command("conformance", "--impl", spec(name), "--max-examples", "50", "--seed", "1", cwd=tmp_path)
    assert tabled.returncode == 1, tabled.stdout[-2000:]
    assert any(line.startswith(f"CRASHED {spec(name)} ") for line in lines_naming(name, tabled.stdout))


def test_an_exception_whose_str_exits_is_a_failure_of_the_call() -> None:
    (implementation,) = discover([spec("exits_in_str_with_bias")]).implementations.values()
    case = Case.from_id(BIAS_CASE)
    inputs = make_inputs(case)
    outcome = runner.call(implementation, case, inputs.clone(), inputs, guard=Guard())
    assert (outcome.error_type, outcome.error_message) == (
        "ExitingError",
        "<unprintable ExitingError: str() raised SystemExit>",
    )


# -- no hang ----------------------------------------------------------------------------------------


@pytest.mark.timing
@pytest.mark.parametrize(
    ("name", "what"),
    [("loops_in_str_with_bias", "raised LoopingError"), ("loops_in_shape_with_bias", "returned LoopingShape")],
)
def test_an_endless_str_or_shape_is_a_timeout_of_that_implementation(name: str, what: str, tmp_path: Path) -> None:
    ran = harness_command(
        "fuzz", "--impl", spec(name), "--max-examples", "20", "--seed", "1", "--no-save", cwd=tmp_path
    )
    assert ran.returncode == 1, (ran.stdout[-2000:], ran.stderr[-2000:])
    failed = [line for line in ran.stdout.splitlines() if line.startswith(f"FAILED {spec(name)} ")]
    assert failed and failed[0].startswith(f"FAILED {spec(name)} [timeout] "), ran.stdout[-2000:]
    assert f"it {what}, and reading that did not end in time" in ran.stdout, ran.stdout[-2000:]


# -- a pytest campaign passes only when it finished ---------------------------------------------------


def test_a_campaign_interrupted_by_ctrl_c_fails_the_assertion() -> None:
    with pytest.raises(AssertionError, match=r"the campaign was interrupted after \d+ of the \d+ cases planned"):
        assert_conv2d_matches(hostile_exit.interrupts_itself_with_bias, max_examples=100, seed=1)
    # The Ctrl-C was the campaign's: a check the caller makes next is not stopped by it.
    case = Case.from_id(BIAS_CASE)
    correct = implementation_from("correct", planted_bugs.correct)
    assert check_case(case, [correct])["correct"].status == "passed"


def test_a_campaign_that_stopped_short_fails_the_assertion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign._Group, "run", lambda self: None)  # as if Hypothesis stopped at once
    with pytest.raises(AssertionError, match=r"the campaign stopped after 0 of the \d+ cases planned"):
        assert_conv2d_matches(planted_bugs.correct, max_examples=30, seed=1)


# -- the caller's process as it was -------------------------------------------------------------------


@pytest.fixture
def callers_state() -> Iterator[None]:
    """Two torch threads and a Hypothesis profile of this test's, as a user's suite might
    have; the suite's own put back after."""
    threads, profile = torch.get_num_threads(), settings.get_current_profile_name()
    torch.set_num_threads(2)
    settings.register_profile("callers-own", max_examples=11)
    settings.load_profile("callers-own")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        settings.load_profile(profile)


def _state() -> dict[str, object]:
    numpy_state = numpy.random.get_state()
    assert isinstance(numpy_state, tuple)  # the legacy form, get_state's default
    return {
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "torch": torch.get_rng_state(),
        "numpy": numpy_state[1].tolist(),
        "python": random.getstate(),
        "profile": settings.get_current_profile_name(),
        "max_examples": settings().max_examples,
    }


def _changed(before: dict[str, object], after: dict[str, object]) -> list[str]:
    return [key for key in before if not _same(before[key], after[key])]


def _same(before: object, after: object) -> bool:
    """Equal values; torch's RNG state, a tensor, compared whole."""
    if isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor):
        return torch.equal(before, after)
    return before == after


@pytest.mark.usefixtures("callers_state")
def test_assert_conv2d_matches_and_fuzz_leave_the_callers_state_as_it_was() -> None:
    before = _state()
    assert_conv2d_matches(hostile_exit.disturbs_random_state, max_examples=20, seed=1)
    assert _changed(before, _state()) == []
    registry = discover([spec("disturbs_random_state")])
    harness.fuzz(registry.implementations.values(), 20, 1)
    assert _changed(before, _state()) == []


def test_the_watched_child_ends_without_teardown_but_runs_the_exit_handlers_and_prints_everything(
    tmp_path: Path,
) -> None:
    """`launcher.leave`: the child skips tearing down torch's modules one by one (a fifth of a
    second of CPU), yet what an exit handler does still happens and the report is whole."""
    marker = tmp_path / "atexit-ran"
    (tmp_path / "registers.py").write_text(
        "import atexit, pathlib\nimport torch.nn.functional as F\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
        "    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n"
    )
    ran = harness_command("fuzz", "--impl", "registers.py:conv2d", "--max-examples", "5", "--no-save", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert marker.read_text() == "yes"
    assert ran.stdout.splitlines()[-1].startswith("seed ")  # the report's last line, flushed


def test_a_ctrl_c_after_the_watched_child_ended_leaves_the_status_as_the_child_said(tmp_path: Path) -> None:
    """A second Ctrl-C that comes after the child ended, while the watching parent exits with
    its status, used to end the parent by the default handler's KeyboardInterrupt (exit -2 in
    a test pressing Ctrl-C twice, the status lost). Sent here at the latest point: once
    `launcher.watch` has returned."""
    late = (
        "import os, signal, sys\n"
        "from harness import launcher\n"
        "status = launcher.watch(['fuzz', '--impl', 'loop', '--max-examples', '2', '--no-save'])\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('status', status, flush=True)\n"
        "sys.exit(status)\n"
    )
    ran = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, cwd=tmp_path, timeout=SECONDS)
    assert ran.returncode == 0 and ran.stdout.splitlines()[-1] == "status 0", (ran.returncode, ran.stderr[-2000:])
