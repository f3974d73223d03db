"""Campaigns over worker processes keep their word: a dead worker costs at most the case it
was running, Ctrl-C stops every worker and keeps what they found, and "ok" means checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import misbehaving
from harness.campaign import CampaignResult, Finding, Tally
from harness.case import Case
from harness.corpus import load
from harness.journal import FOLDER
from harness.parallel import MAX_ATTEMPTS, SHARDS_PER_WORKER, merge
from harness.finding import identity
from harness.verdict import failure

MISBEHAVING = str(Path(misbehaving.__file__).resolve())
CORRECT = "loop"
# With one core, --workers 2 is capped to one worker, which runs in this process.
needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for 2 workers")


def fuzz(*arguments: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "fuzz", *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@needs_two_cores
def test_a_worker_killed_by_an_implementation_costs_only_that_implementation_and_never_a_false_ok(
        tmp_path: Path) -> None:
    crasher = f"{MISBEHAVING}:segfaults_with_bias"
    examples = 240
    ran = fuzz("--impl", crasher, "--impl", CORRECT, "--workers", "2", "--max-examples", str(examples),
               "--seed", "1", "--corpus", "corpus", "--report", "report.json", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "died (killed by SIGSEGV) while running" in ran.stdout
    assert f"the shard runs again with {crasher} isolated" in ran.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    correct, crashing = report["implementations"][CORRECT], report["implementations"][crasher]
    # Every case of the correct one's budget was checked, and it is blamed for nothing.
    assert correct["examples"] >= examples and correct["failures"] == [] and correct["as_registered"]
    assert correct["statuses"].get("failed", 0) == 0
    assert [f["kind"] for f in crashing["failures"]] == ["crash"]
    assert crashing["failures"][0]["needs"] == ["bias"] and crashing["failures"][0]["shrunk"]
    assert report["incomplete"] == [] and not report["interrupted"]
    saved = load(tmp_path / "corpus")
    assert [(entry.implementation, entry.verdict.kind) for _, entry in saved.entries] == [(identity(crasher), "crash")]
    assert list((tmp_path / "corpus" / FOLDER).glob("*.json")) == []


@needs_two_cores
def test_a_shard_whose_worker_keeps_dying_is_given_up_and_the_campaign_says_so(tmp_path: Path) -> None:
    plugin = tmp_path / "dies_in_workers.py"
    plugin.write_text(
        "import os, signal\n"
        "import torch.nn.functional as F\n"
        "if os.getpgid(0) == os.getpid():  # a worker (a process group of its own), not the command\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
        "    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n")
    spec = f"{plugin}:conv2d"
    ran = fuzz("--impl", spec, "--workers", "2", "--max-examples", "40", "--seed", "1", "--no-save",
               "--report", "report.json", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["incomplete"]) == 2 * SHARDS_PER_WORKER
    assert all(f"worker died {MAX_ATTEMPTS} times (last killed by SIGKILL outside any implementation call)"
               in reason for reason in report["incomplete"])
    entry = report["implementations"][spec]
    assert entry["examples"] == 0 and not entry["as_registered"]
    (row,) = [line for line in ran.stdout.splitlines() if line.startswith(spec)]
    assert row.rstrip().endswith("INCOMPLETE") and "INCOMPLETE: shard 1/8 was not checked" in ran.stdout


@needs_two_cores
def test_ctrl_c_to_the_process_group_stops_every_worker_promptly_and_keeps_what_they_found(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "fuzz", "--impl", "original", "--impl", CORRECT, "--workers", "2",
         "--max-examples", "100000", "--seed", "1", "--corpus", "corpus", "--report", "report.json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(8)  # workers started and fuzzing
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=60)
        stopped = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert stopped < 15, stopped
    assert process.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert "interrupted: everything found so far is saved and reported above" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True
    assert report["implementations"][CORRECT]["as_registered"] is False  # not "ok": it was not finished
    assert " ok" not in out
    failures = report["implementations"]["original"]["failures"]
    saved = {entry.case.id for _, entry in load(tmp_path / "corpus").entries}
    assert {f["case"] for f in failures} <= saved
    assert list((tmp_path / "corpus" / FOLDER).glob("*.json")) == []
    assert subprocess.run(["pgrep", "-f", "im2col-harness shard"], capture_output=True).stdout == b""


def test_more_workers_than_cores_are_capped_with_a_note(tmp_path: Path) -> None:
    ran = fuzz("--impl", CORRECT, "--workers", "100000", "--max-examples", "1", "--no-save", cwd=tmp_path, timeout=120)
    cores = len(os.sched_getaffinity(0))
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert f"--workers 100000 is more than the {cores} core(s) here; using {cores}" in ran.stdout


@needs_two_cores
def test_max_seconds_is_one_deadline_for_every_worker(tmp_path: Path) -> None:
    started = time.monotonic()
    ran = fuzz("--impl", CORRECT, "--workers", "2", "--max-seconds", "3", "--max-examples", "1000000",
               "--no-save", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert elapsed < 3 + 7, elapsed  # the deadline, plus start-up (each of 8 shards used to get 3 s)


def _finding(name: str, height: int, kind: str = "values") -> Finding:
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=height, width=1, kernel=(1, 1))
    return Finding(name, case, failure(kind, "wrong"))


def test_merging_shards_adds_their_tallies_and_keeps_the_smallest_case_of_each_bug() -> None:
    first, second = CampaignResult(seed=1), CampaignResult(seed=2)
    for result, height in ((first, 5), (second, 2)):
        result.tallies["a"] = Tally(examples=10)
        result.tallies["a"].statuses["passed"] = 9
        result.findings.append(_finding("a", height))
    second.findings.append(_finding("a", 3, kind="shape"))
    merged = merge([first, second], seed=7)
    assert merged.seed == 7 and merged.tallies["a"].examples == 20 and merged.tallies["a"].statuses["passed"] == 18
    assert sorted((f.verdict.kind, f.case.height) for f in merged.findings) == [("shape", 3), ("values", 2)]
    assert not merged.interrupted and merged.incomplete == []
    assert merge([first, replace(second, incomplete=["shard 2/2 was not checked"])], 7).incomplete == \
        ["shard 2/2 was not checked"]
