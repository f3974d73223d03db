"""What an implementation says during a call (warnings, stderr, stdout, from Python or from
C) comes back with the call, is counted in the summary and attached to the failure it came
with, and never reaches the terminal: only the harness's own lines do.

The talkers are in tests/noisy.py: on every call each warns, prints to sys.stderr and
sys.stdout, writes to file descriptor 2 and printf()s from C.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import noisy
import pytest

from harness.api import assert_conv2d_matches
from harness.campaign.engine import fuzz
from harness.execute import runner
from harness.execute.capture import KEPT_BYTES
from harness.execute.process_state import Guard
from harness.execute.supervisor import Supervisor
from harness.generate.tensors import make_inputs
from harness.model.case import Case
from harness.model.noise import WARNINGS_KEPT
from harness.model.outcome import Outcome
from harness.model.registry import Implementation, discover
from harness.reporting.report import campaign_report, format_failures, format_summary

NOISY = str(Path(noisy.__file__).resolve())
CASE = Case.from_id("mb1ic2oc2g1ih4iw4kh2kw2s1p0d1-bias-float32-contiguous-uniform-cpu-seed0")
SEED = 1
WARNED = re.compile(rf"RuntimeWarning: {noisy.WARNING} \(at noisy\.py:\d+\)")
WARNED_WITH_BIAS = re.compile(rf"RuntimeWarning: {noisy.WITH_BIAS} \(at noisy\.py:\d+\)")
STDERR = f"{noisy.STDERR}\n{noisy.FD_2}\n"  # Python's writes, then C's
STDOUT = f"{noisy.STDOUT}\n{noisy.PRINTF}\n"


def spec(name: str) -> str:
    return f"{NOISY}:{name}"


def loaded(*names: str) -> list[Implementation]:
    registry = discover([spec(name) for name in names])
    assert not registry.errors, registry.errors
    return list(registry.implementations.values())


def called(name: str, supervisor: Supervisor | None = None, guard: Guard | None = None) -> Outcome:
    (implementation,) = loaded(name)
    pristine = make_inputs(CASE)
    if supervisor is not None:
        return supervisor.call(implementation, CASE, pristine.clone(), pristine)
    return runner.call(implementation, CASE, pristine.clone(), pristine, guard=guard)


def where_descriptors_point() -> tuple[tuple[int, int], ...]:
    return tuple((os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2))


# -- one call --------------------------------------------------------------------------------


def test_in_process_what_a_call_says_comes_back_with_it_and_nothing_reaches_the_descriptors(
    capfd: pytest.CaptureFixture[str],
) -> None:
    streams, descriptors, filters = (sys.stdout, sys.stderr), where_descriptors_point(), warnings.filters
    outcome = called("talks")
    assert outcome.result is not None and not outcome.error_type
    noise = outcome.noise
    assert noise is not None
    assert noise.warned == 1 and len(noise.warnings) == 1 and WARNED.fullmatch(noise.warnings[0])
    assert (noise.stderr, noise.stdout) == (STDERR, STDOUT)
    # Not a byte reached file descriptors 1 or 2 (pytest's capfd reads them) ...
    assert capfd.readouterr() == ("", "")
    # ... and everything is as it was: the streams, the descriptors, the warning filters.
    assert (sys.stdout, sys.stderr) == streams and where_descriptors_point() == descriptors
    assert warnings.filters is filters
    print("the harness's own line")
    assert capfd.readouterr().out == "the harness's own line\n"


def test_a_quiet_call_has_no_noise() -> None:
    (implementation,) = discover(["loop"]).implementations.values()
    pristine = make_inputs(CASE)
    assert runner.call(implementation, CASE, pristine.clone(), pristine).noise is None


def test_isolated_what_a_call_says_comes_back_with_its_outcome(capfd: pytest.CaptureFixture[str]) -> None:
    supervisor = Supervisor(isolate=True)
    try:
        outcome = called("talks", supervisor)
    finally:
        supervisor.close()
    assert outcome.result is not None and outcome.noise is not None
    assert outcome.noise.warned == 1 and WARNED.fullmatch(outcome.noise.warnings[0])
    assert (outcome.noise.stderr, outcome.noise.stdout) == (STDERR, STDOUT)
    assert capfd.readouterr() == ("", "")


def test_isolated_what_a_child_wrote_before_it_crashed_is_reported_with_the_crash(
    capfd: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor(isolate=True)
    try:
        outcome = called("says_then_aborts_with_bias", supervisor)
    finally:
        supervisor.close()
    assert outcome.abnormal == "crash" and "SIGABRT" in outcome.error_message
    assert outcome.noise is not None and outcome.noise.stderr == f"{noisy.LAST_WORDS}\n"
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_a_flood_is_counted_and_clipped_not_kept(isolate: bool, capfd: pytest.CaptureFixture[str]) -> None:
    supervisor = Supervisor(isolate=isolate)
    try:
        outcome = called("floods", supervisor)
    finally:
        supervisor.close()
    noise = outcome.noise
    assert noise is not None and outcome.result is not None
    assert noise.warned == 10_000 and len(noise.warnings) == WARNINGS_KEPT
    written = 8 * 2**20
    # Python's writes and file descriptor 2's on stderr, Python's alone on stdout.
    for text, total in ((noise.stderr, 2 * written), (noise.stdout, written)):
        assert text == "x" * KEPT_BYTES + f"... ({total - KEPT_BYTES} more bytes)"
    assert capfd.readouterr() == ("", "")


def test_warnings_are_caught_under_the_filters_in_force() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ignored = called("talks").noise
        warnings.simplefilter("error", RuntimeWarning)
        raised = called("talks")
    assert ignored is not None and ignored.warned == 0 and ignored.stderr == STDERR
    # An error by the filters is raised into the call, as it would be without the harness.
    assert raised.error_type == "RuntimeWarning" and raised.error_message == noisy.WARNING


@pytest.mark.parametrize("how", [[], ["--isolate"]], ids=["in-process", "isolated"])
def test_a_warning_python_w_makes_an_error_is_raised_into_the_call(how: list[str], tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "harness",
            "fuzz",
            "--impl",
            spec("talks"),
            "--max-examples",
            "10",
            "--seed",
            str(SEED),
            "--no-save",
            *how,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert re.search(rf"^FAILED .*:talks \[exception\] .*\n    RuntimeWarning: {noisy.WARNING} ", run.stdout, re.M)


def test_an_implementation_that_replaces_sys_stderr_still_changes_global_state() -> None:
    before = sys.stderr
    outcome = called("replaces_stderr_with_bias", guard=Guard())
    assert [change.what for change in outcome.changed] == ["sys.stderr"]
    assert sys.stderr is before


# -- a campaign --------------------------------------------------------------------------------


def test_a_campaign_counts_the_checks_that_said_something_and_the_failure_carries_its_own_warning() -> None:
    talks, buggy = loaded("talks", "talks_off_by_one_with_bias")
    result = fuzz([talks, buggy], 100, SEED)
    for name in (talks.name, buggy.name):
        tally = result.tallies[name]
        assert tally.examples >= 100
        assert tally.heard.counts == {"warned": tally.examples, "stderr": tally.examples, "stdout": tally.examples}
    (finding,) = result.findings
    assert finding.implementation == buggy.name and finding.verdict.kind == "values"
    noise = finding.verdict.noise
    # The warning of the failing call (with a bias), not of any other call.
    assert noise is not None and len(noise.warnings) == 1 and WARNED_WITH_BIAS.fullmatch(noise.warnings[0])

    registry = discover([talks.name, buggy.name])
    report = campaign_report(result, registry, 100)
    failure = "\n".join(format_failures(report))
    assert re.search(rf"\n    warned: {WARNED_WITH_BIAS.pattern}\n", failure), failure
    assert (
        "\n    stderr: noisy: \x1b[31mred\x1b[0m on stderr from Python\\nnoisy: written to file descriptor 2\\n"
        in failure
    )  # each on its line (escaped for a terminal by whoever prints it)
    summary = format_summary(report)
    examples = result.tallies[talks.name].examples
    assert (
        f"noise ({talks.name}): of its {examples} checks, {examples} warned ({examples} warnings), "
        f"{examples} wrote to stderr, {examples} wrote to stdout; first said:"
    ) in summary
    as_json = report.to_json()["implementations"]
    assert as_json[talks.name]["noise"]["warned"]["checks"] == examples
    assert as_json[talks.name]["noise"]["warned"]["warnings"] == examples
    assert WARNED.fullmatch(as_json[talks.name]["noise"]["warned"]["first"][0])
    (failure_json,) = as_json[buggy.name]["failures"]
    assert failure_json["noise"]["stderr"] == STDERR and failure_json["noise"]["stdout"] == STDOUT


def test_the_failure_assert_conv2d_matches_raises_carries_its_warning() -> None:
    with pytest.raises(AssertionError) as raised:
        assert_conv2d_matches(noisy.talks_off_by_one_with_bias, max_examples=60, seed=SEED)
    assert f"warned: RuntimeWarning: {noisy.WITH_BIAS}" in str(raised.value)


# -- the command line ------------------------------------------------------------------------

# Every line the harness prints on stdout in a fuzz run: failures and what is under them,
# the table, the coverage and noise lines, the last line.
HARNESS_LINE = re.compile(rf"FAILED |    |implementation |--|{re.escape(NOISY)}:|reached \(|noise \(|seed ")
PROGRESS = re.compile(r"fuzzing: \d+/\d+ cases, \d+ bug\(s\), \d+ cases/s(, about \d+s left)?")


@pytest.mark.parametrize(
    "how", [[], ["--isolate"], ["--workers", "2", "--shards", "2"]], ids=["in-process", "isolated", "two-workers"]
)
def test_the_terminal_shows_only_the_harness_and_the_report_has_the_noise(how: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            "--impl",
            spec("talks"),
            "--impl",
            spec("talks_off_by_one_with_bias"),
            "--max-examples",
            "100",
            "--seed",
            str(SEED),
            "--no-save",
            "--report",
            str(report),
            *how,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "\x1b" not in run.stdout + run.stderr  # the escape sequence it writes arrives escaped
    strays = [line for line in run.stdout.splitlines() if not HARNESS_LINE.match(line)]
    strays += [line for line in run.stderr.splitlines() if not PROGRESS.fullmatch(line)]
    assert strays == []
    assert re.search(rf"\n    warned: {WARNED_WITH_BIAS.pattern}\n", run.stdout)
    assert f"noise ({spec('talks')}): of its " in run.stdout

    implementations = json.loads(report.read_text())["implementations"]
    talks, buggy = implementations[spec("talks")], implementations[spec("talks_off_by_one_with_bias")]
    assert {channel: said["checks"] for channel, said in talks["noise"].items()} == dict.fromkeys(
        ("warned", "stderr", "stdout"), talks["examples"]
    )
    # One warning a check, and where torch warns once per process (a fresh child), one more.
    assert talks["noise"]["warned"]["warnings"] >= talks["examples"]
    (failure,) = buggy["failures"]
    assert [WARNED_WITH_BIAS.fullmatch(warning) is not None for warning in failure["noise"]["warnings"]] == [True]
    assert (failure["noise"]["stderr"], failure["noise"]["stdout"]) == (STDERR, STDOUT)


def test_replay_shows_only_the_harness_and_its_report_has_the_noise(tmp_path: Path) -> None:
    report = tmp_path / "replay.json"
    run = subprocess.run(
        [sys.executable, "-m", "harness", "replay", CASE.id, "--impl", spec("talks"), "--report", str(report)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "noisy: " not in run.stdout + run.stderr  # what it says starts so; its file name is noisy.py
    (row,) = json.loads(report.read_text())["rows"]
    assert row["noise"]["stderr"] == STDERR and WARNED.fullmatch(row["noise"]["warnings"][0])


def test_on_dask_what_python_says_is_caught_and_what_c_writes_is_the_worker_s(tmp_path: Path) -> None:
    """Dask runs a shard in a worker's thread, where file descriptors are left alone (its own
    threads write there too): Python's warnings and prints are caught, C's writes are not."""
    pytest.importorskip("distributed")
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            "--impl",
            spec("talks"),
            "--max-examples",
            "30",
            "--seed",
            str(SEED),
            "--no-save",
            "--report",
            str(report),
            "--scheduler",
            "local:2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = (run.stdout + run.stderr).splitlines()
    assert noisy.STDOUT not in lines and noisy.STDERR not in lines  # only in the report's lines, escaped
    assert "\x1b" not in run.stdout + run.stderr
    assert re.search(rf"\n    warned: {WARNED.pattern}\n", run.stdout)
    (talks,) = json.loads(report.read_text())["implementations"].values()
    assert {channel: said["checks"] for channel, said in talks["noise"].items()} == dict.fromkeys(
        ("warned", "stderr", "stdout"), talks["examples"]
    )
    assert talks["noise"]["stderr"]["first"] == [f"{noisy.STDERR}\n"]  # Python's line only
    assert talks["noise"]["stdout"]["first"] == [f"{noisy.STDOUT}\n"]
