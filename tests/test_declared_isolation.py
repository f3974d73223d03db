"""An implementation that declares which of its cases run isolated (`Capabilities.isolate`):
those are called in a child process, the others in this one, so that a library known to
crash on some cases joins an in-process campaign, and its crash is its own finding.

The planted `segfaults_with_bias_declared` (tests/misbehaving.py) reads address 0 when given a
bias, and declares ``isolate: {"bias": true}``; `segfaults_with_bias` is the same, undeclared
(that one takes an in-process campaign with it, rescued by the next run: tests/test_robustness.py).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import misbehaving
import planted_bugs
import pytest

from harness.campaign.check import check_case
from harness.campaign.engine import fuzz
from harness.cli import main
from harness.execute.journal import FOLDER
from harness.execute.supervisor import Supervisor
from harness.model.capabilities import Capabilities
from harness.model.case import Case
from harness.model.registry import Implementation, discover
from harness.model.verdict import EXPECTED

MISBEHAVING = str(Path(misbehaving.__file__).resolve())
DECLARED = f"{MISBEHAVING}:segfaults_with_bias_declared"
UNDECLARED = f"{MISBEHAVING}:segfaults_with_bias"
SEED = 1


def test_a_declared_crash_in_an_in_process_campaign_is_that_implementations_crash_found_in_its_child() -> None:
    registry = discover(["loop", DECLARED])
    assert not registry.errors, registry.errors
    supervisor = Supervisor()  # nothing isolated but what it declares
    try:
        result = fuzz(list(registry.implementations.values()), 120, SEED, supervisor=supervisor)
        assert not supervisor.isolated(DECLARED) and list(supervisor.children) == [DECLARED]
    finally:
        supervisor.close()
    assert [f for f in result.findings if f.implementation == "loop"] == []
    (finding,) = [f for f in result.findings if f.implementation == DECLARED]
    assert finding.verdict.kind == "crash" and "killed by SIGSEGV" in finding.verdict.message
    assert finding.case.bias and finding.needs == {"bias"}
    # The cases without a bias ran here, and passed.
    assert result.tallies[DECLARED].statuses["passed"] > 0


def test_crashes_in_declared_isolated_cases_are_quarantined_apart_from_the_rest() -> None:
    """Under --isolate, a library that keeps crashing on the cases it declares isolated (as
    torch's float16 on some CPUs) is still explored on the others, and another crash found
    there. Quarantined as one, it was skipped from the third crash on (with a bias: the
    commoner), before any grouped, dilated case without a bias was drawn."""
    spec = f"{MISBEHAVING}:crashes_two_ways_one_declared"
    registry = discover([spec])
    supervisor = Supervisor(isolate=True)
    try:
        result = fuzz(list(registry.implementations.values()), 120, SEED, supervisor=supervisor)
    finally:
        supervisor.close()
    segfault, exit = sorted((f for f in result.findings if f.verdict.kind == "crash"), key=lambda f: f.case.groups)
    assert len(result.findings) == 2, [(f.needs, f.case.id) for f in result.findings]
    assert "killed by SIGSEGV" in segfault.verdict.message and segfault.needs == {"bias"}
    assert "exited with status 3" in exit.verdict.message and not exit.case.bias
    assert {"groups>1", "dilation>1"} <= exit.needs, (exit.needs, exit.case.id, exit.untried)
    # The bias's cases (its declared condition, 0) were quarantined, and the rest were not then.
    assert supervisor.abnormal_in[spec, 0] >= 3 and supervisor.abnormal_in[spec, None] >= 1, supervisor.abnormal_in


def _children() -> list[str]:
    return [p.name for p in multiprocessing.active_children() if p.name.startswith("im2col-harness")]


def test_a_campaign_or_a_check_without_a_supervisor_ends_the_children_it_started() -> None:
    """`fuzz` and `check_case` make a supervisor of their own when given none: the child
    processes of the cases it isolated end with them, not with the process (a later check
    that counts children would count them)."""
    loop = discover(["loop"]).implementations["loop"]
    # A correct one, isolated with a bias: its child is alive when the campaign ends.
    implementation = replace(loop, capabilities=Capabilities.from_mapping({"isolate": {"bias": True}}))
    assert _children() == []
    result = fuzz([implementation], 30, SEED)
    assert result.tallies["loop"].statuses["passed"] > 0 and not result.findings
    assert _children() == []
    case = Case.from_id("mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0")
    assert check_case(case, [implementation])["loop"].status == "passed"
    assert _children() == []


def _fuzz(spec: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    arguments = ("--impl", spec, "--max-examples", "60", "--seed", str(SEED), "--corpus", str(cwd / "corpus"))
    return subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_default_campaign_reports_the_declared_crash_and_ends_while_undeclared_it_dies(tmp_path: Path) -> None:
    declared = _fuzz(DECLARED, tmp_path)
    assert declared.returncode == 1, declared.stderr[-2000:]
    assert declared.stdout.startswith(f"FAILED {DECLARED} [crash] "), declared.stdout[-2000:]
    assert "the child process running it was killed by SIGSEGV; fails this way only with bias" in declared.stdout
    assert "CRASHED" not in declared.stdout and not list((tmp_path / "corpus" / FOLDER).glob("*.json"))
    # Undeclared, the same crash takes the campaign's process with it (the next run rescues it).
    (tmp_path / "undeclared").mkdir()
    undeclared = _fuzz(UNDECLARED, tmp_path / "undeclared")
    assert undeclared.returncode == 1 and undeclared.stdout.startswith(f"CRASHED {UNDECLARED} "), undeclared.stdout


def test_replay_isolated_reports_a_crash_as_that_implementations_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`replay --isolate`: a case that segfaults an undeclared implementation is its crash,
    and the other cases and implementations are replayed after it."""
    monkeypatch.chdir(tmp_path)
    with_bias = "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"
    without = with_bias.replace("-bias-", "-nobias-")
    status = main(["replay", with_bias, without, "--impl", UNDECLARED, "--impl", "loop", "--isolate"])
    out = capsys.readouterr().out
    assert status == 1, out
    rows = {tuple(line.split()[:3]) for line in out.splitlines()}
    assert {(with_bias, UNDECLARED, "failed"), (without, UNDECLARED, "passed")} <= rows, out
    assert {(with_bias, "loop", "passed"), (without, "loop", "passed")} <= rows, out
    assert "killed by SIGSEGV" in out and "2 case(s) x 2 implementation(s): 3 as expected, 1 unexpected" in out


def test_list_shows_what_is_isolated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--impl", DECLARED]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(DECLARED)]
    assert line.split()[-2:] == ["isolate:", "bias=True"]


def test_a_gradient_failure_declared_as_a_known_disagreement_is_expected_and_undeclared_it_fails() -> None:
    """A declared disagreement covers what the gradient check finds too (torch's bfloat16
    backward crash is one): not only the forward pass's failures."""
    case = Case.from_id("mb1ic1oc1g1ih3iw3kh2kw2s1p0d1-bias-float32-contiguous-uniform-cpu-seed0")
    undeclared = Implementation("bias_grad", planted_bugs.adds_bias_through_data, Capabilities(autograd=True))
    declared = replace(
        undeclared,
        name="bias_grad_declared",
        capabilities=Capabilities.from_mapping(
            {"autograd": True, "expected": [{"when": {"bias": True}, "kind": "gradient", "reason": "known"}]}
        ),
    )
    verdicts = check_case(case, [undeclared, declared])
    assert verdicts["bias_grad"].failed and verdicts["bias_grad"].kind == "gradient"
    assert verdicts["bias_grad_declared"].status == EXPECTED, verdicts["bias_grad_declared"]
