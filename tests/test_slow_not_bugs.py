"""A time limit blown on a busy machine is no evidence against an implementation.

While exploring, a call that runs past its time limit is made again (here, then in a child
process) before it counts: one that returns is judged on what it returned and counted as
slow, in a line of the summary; only one that times out every time is a `timeout` bug,
counts towards the quarantine, and is saved. A timeout whose case passes when checked
again is dropped to the same line. The implementations are in tests/hostile_slow.py,
copied into each test's folder so that each counts its own calls (across processes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import hostile_slow
import pytest

from harness.campaign import engine as campaign
from harness.campaign.engine import fuzz
from harness.cli import main
from harness.execute import runner
from harness.execute.supervisor import QUARANTINE_AFTER, Supervisor
from harness.model.registry import discover, implementation_from
from harness.model.verdict import FAILED, SKIPPED
from harness.reporting.report import campaign_report, format_summary

SEED = 1


def copied(folder: Path) -> Path:
    """tests/hostile_slow.py in ``folder``: its calls are counted in ``folder``."""
    return Path(shutil.copy(hostile_slow.__file__, folder / "hostile_slow.py"))


def calls(module: Path) -> list[list[str]]:
    """Each call made so far: its process id, and "slow" for one that slept past its limit."""
    log = module.with_suffix(".calls")
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def fuzzed(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> tuple[int, str, dict[str, Any], Path]:
    """`python -m harness fuzz` on one of them, as the README's main job runs it: its exit
    status, what it printed, its JSON report's row, and the module (whose calls are logged)."""
    module = copied(tmp_path)
    spec = f"{module}:{name}"
    report = tmp_path / "report.json"
    status = main(
        [
            "fuzz",
            "--impl",
            spec,
            "--max-examples",
            "40",
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--corpus",
            str(tmp_path / "corpus"),
            "--report",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    return status, out, json.loads(report.read_text())["implementations"][spec], module


def slow_line(out: str) -> int:
    """How many slow calls the summary's line counts (0 without the line)."""
    found = re.search(
        r"^slow \(.*hostile_slow\.py:\w+\): (\d+) calls? ran past the time limit, then returned "
        r"when made again or when the case was checked again",
        out,
        re.MULTILINE,
    )
    return int(found[1]) if found else 0


def test_a_correct_implementation_slow_now_and_then_passes_and_its_slow_calls_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three slow calls used to be three timeouts: FAILED, saved, and quarantined (the rest
    of its checks skipped) after the third."""
    status, out, row, module = fuzzed(tmp_path, capsys, "slow_now_and_then")
    assert status == 0, out
    assert "FAILED" not in out and row["failures"] == [] and row["as_registered"]
    assert [call for call in calls(module) if "slow" in call] == [[str(os.getpid()), "slow"]] * 3, calls(module)
    assert not (tmp_path / "corpus").exists() or not list((tmp_path / "corpus").rglob("*.json"))
    assert row["statuses"].get(SKIPPED, 0) == 0 and "skipped (" not in out  # never quarantined
    # Each slow call was made again at once, here, and returned (a busy machine may add more).
    assert slow_line(out) >= 3 and row["slow"] == slow_line(out), out


def test_a_timeout_that_does_not_happen_again_when_its_case_is_checked_again_is_no_bug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Slow three times in a row (here twice, then in a child process) is a timeout while
    exploring; its case then passes when checked again: it used to be reported as
    "FAILED ... [timeout] ... (did not reproduce)", exit status 1, and saved."""
    status, out, row, module = fuzzed(tmp_path, capsys, "slow_three_times")
    assert status == 0, out
    assert "FAILED" not in out and "did not reproduce" not in out and row["failures"] == []
    made = calls(module)
    # The first call, made again here, then in a child process of its own.
    assert [call[1:] for call in made[:3]] == [["slow"]] * 3 and made[0] == made[1], made
    assert made[2][0] != str(os.getpid()), made
    assert not (tmp_path / "corpus").exists() or not list((tmp_path / "corpus").rglob("*.json"))
    assert slow_line(out) >= 1 and row["slow"] == slow_line(out), out


def test_an_implementation_that_always_hangs_with_a_bias_is_still_a_timeout_and_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made again, here and in a child process, and timing out every time: a timeout bug
    needing a bias, quarantined after `QUARANTINE_AFTER` of them, and the summary says how
    many checks that cost and why."""
    monkeypatch.setattr(runner, "TIME_BASE", 1.0)
    monkeypatch.setattr(campaign, "SHRINK_SECONDS", 4.0)
    module = copied(tmp_path)
    registry = discover([f"{module}:hangs_with_bias"])
    supervisor = Supervisor()
    try:
        result = fuzz(registry.implementations.values(), 60, SEED, supervisor=supervisor)
    finally:
        supervisor.close()
    (name,) = registry.implementations
    (finding,) = result.findings
    assert finding.verdict.kind == "timeout" and finding.reproducible and finding.case.bias
    assert finding.needs <= {"bias"}  # all of it, unless shrinking used up the time
    # Each timeout while exploring was made again in a child process, and hung there too.
    children = {call[0] for call in calls(module) if call[0] != str(os.getpid())}
    assert children and all(call[1:] == ["slow"] for call in calls(module) if call[0] in children)
    tally = result.tallies[name]
    assert tally.statuses[SKIPPED] > 0 and tally.statuses[FAILED] <= QUARANTINE_AFTER, tally.statuses
    summary = format_summary(campaign_report(result, registry, 60))
    assert (
        f"skipped ({name}): {tally.statuses[SKIPPED]} of its {tally.examples} checks, quarantined: it "
        f"crashed, hung or ran out of memory {QUARANTINE_AFTER} times on cases of this kind"
    ) in summary, summary


def test_a_slow_local_function_that_cannot_run_in_a_child_is_made_again_here_only() -> None:
    """A function defined in a test (as `harness.api.assert_conv2d_matches` gets one) does
    not pickle, so it cannot be made again in a child process: its two timeouts here stand,
    and the campaign goes on (it used to stop with the pickling error)."""
    made = [0]

    def slow_twice(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        made[0] += 1
        if made[0] <= 2:
            time.sleep(hostile_slow.FOREVER)
        return hostile_slow._conv(input, weight, bias, stride, padding, dilation, groups)

    implementation = implementation_from("slow_twice", slow_twice)
    result = fuzz([implementation], 20, SEED, supervisor=Supervisor())
    assert made[0] > 2 and not result.interrupted
    # Its first call, made again here: both timed out; its case passed when checked again.
    assert result.findings == [] and result.tallies["slow_twice"].slow == 1
