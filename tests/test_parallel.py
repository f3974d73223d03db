"""Campaigns over worker processes keep their word: a dead worker costs at most the case it
was running, Ctrl-C stops every worker and keeps what they found, and "ok" means checked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import misbehaving
import planted_bugs
import pytest
from interrupting import PROMPTLY, ctrl_c, found_a_bug, wait_for

from harness.backends.base import INTERRUPT_GRACE, Ledger, Options, merge
from harness.backends.plan import Shard
from harness.backends.processes import MAX_ATTEMPTS
from harness.campaign.engine import CampaignResult, Tally
from harness.execute.journal import FOLDER
from harness.model.case import Case
from harness.model.features import features
from harness.model.finding import Finding, identity
from harness.model.registry import implementation_from
from harness.model.verdict import failure
from harness.store.corpus import load

MISBEHAVING = str(Path(misbehaving.__file__).resolve())
CORRECT = "loop"
# With one core, --workers 2 is capped to one worker, which runs in this process.
needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for 2 workers")


def fuzz(*arguments: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", *arguments], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@needs_two_cores
def test_a_worker_killed_by_an_implementation_costs_only_that_implementation_and_never_a_false_ok(
    tmp_path: Path,
) -> None:
    crasher = f"{MISBEHAVING}:segfaults_with_bias"
    examples = 240
    ran = fuzz(
        "--impl",
        crasher,
        "--impl",
        CORRECT,
        "--workers",
        "2",
        "--max-examples",
        str(examples),
        "--shards",
        "4",
        "--seed",
        "1",
        "--corpus",
        "corpus",
        "--report",
        "report.json",
        cwd=tmp_path,
    )
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
        "import multiprocessing, os, signal\n"
        "import torch.nn.functional as F\n"
        "if multiprocessing.parent_process() is not None:  # a worker, not the command\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
        "    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n"
    )
    spec = f"{plugin}:conv2d"
    ran = fuzz(
        "--impl",
        spec,
        "--workers",
        "2",
        "--max-examples",
        "40",
        "--shards",
        "4",
        "--seed",
        "1",
        "--no-save",
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert ran.returncode == 1, ran.stdout[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["incomplete"]) == 4
    assert all(
        f"worker died {MAX_ATTEMPTS} times (last killed by SIGKILL outside any implementation call)" in reason
        for reason in report["incomplete"]
    )
    entry = report["implementations"][spec]
    assert entry["examples"] == 0 and not entry["as_registered"]
    (row,) = [line for line in ran.stdout.splitlines() if line.startswith(spec)]
    assert row.rstrip().endswith("INCOMPLETE") and "INCOMPLETE: shard 1/4 was not checked" in ran.stdout


@pytest.mark.timing
@needs_two_cores
def test_ctrl_c_to_the_process_group_stops_every_worker_promptly_and_keeps_what_they_found(tmp_path: Path) -> None:
    def both_workers_once_a_bug_was_found(pid: int, err: str) -> set[int] | None:
        workers = _worker_pids(tmp_path / "corpus")
        return workers if found_a_bug(err) and len(workers) == 2 else None

    ran = ctrl_c(
        [
            "--impl",
            "original",
            "--impl",
            CORRECT,
            "--workers",
            "2",
            "--max-examples",
            "100000",
            "--seed",
            "1",
            "--corpus",
            "corpus",
            "--report",
            "report.json",
        ],
        tmp_path,
        both_workers_once_a_bug_was_found,
    )
    workers = ran.seen
    assert len(workers) == 2
    # Each worker stops at its next call; one that does not is waited for INTERRUPT_GRACE at most.
    assert ran.stopped < INTERRUPT_GRACE + PROMPTLY, ran.stopped
    assert ran.status == 1 and "Traceback" not in ran.err, ran.err[-2000:]
    assert "interrupted: everything found so far is saved and reported above" in ran.out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True
    assert report["implementations"][CORRECT]["as_registered"] is False  # not "ok": it was not finished
    assert " ok" not in ran.out
    failures = report["implementations"]["original"]["failures"]
    saved = {entry.case.id for _, entry in load(tmp_path / "corpus").entries}
    assert failures and {f["case"] for f in failures} <= saved  # the bug seen before Ctrl-C is kept
    assert list((tmp_path / "corpus" / FOLDER).glob("*.json")) == []
    assert not any(_alive(pid) for pid in workers)


def _worker_pids(corpus: Path) -> set[int]:
    """The running workers: each keeps its journal, named for its pid, while it lives."""
    return {int(journal.stem) for journal in (corpus / FOLDER).glob("*.json")} - {os.getpid()}


def _calling(corpus: Path) -> set[int]:
    """The workers whose journal says they are in an implementation's call."""
    calling = set()
    for pid in _worker_pids(corpus):
        try:
            if b'"implementation"' in (corpus / FOLDER / f"{pid}.json").read_bytes():
                calling.add(pid)
        except FileNotFoundError:  # its shard just ended
            pass
    return calling


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_more_workers_than_cores_or_shards_are_capped_with_a_note(tmp_path: Path) -> None:
    ran = fuzz("--impl", CORRECT, "--workers", "100000", "--max-examples", "1", "--no-save", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert "--workers 100000 is more than the campaign's 1 shard(s); using 1" in ran.stdout
    cores = len(os.sched_getaffinity(0))
    ran = fuzz(
        "--impl",
        CORRECT,
        "--workers",
        "100000",
        "--max-examples",
        str(cores + 1),
        "--shards",
        str(cores + 1),
        "--no-save",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert f"--workers 100000 is more than the {cores} core(s) here; using {cores}" in ran.stdout


def _outcome(report: dict[str, Any]) -> dict[str, Any]:
    """What a campaign checked and found, by implementation: nothing about how it was run."""
    return {
        name: (
            row["examples"],
            row["statuses"],
            row["coverage"],
            sorted((f["kind"], f["case"]) for f in row["failures"]),
        )
        for name, row in report["implementations"].items()
    }


def _corpus(directory: Path) -> dict[str, tuple[str, str, str]]:
    """The failures saved there, without when and by which shard (their provenance)."""
    return {
        path.name: (entry.implementation, entry.case.id, entry.verdict.message)
        for path, entry in load(directory).entries
    }


@needs_two_cores
def test_the_same_seed_checks_the_same_cases_whatever_runs_the_shards(tmp_path: Path) -> None:
    """One worker, two workers, and the shards run one command each: case for case the same."""
    common = ["--impl", "original", "--impl", CORRECT, "--max-examples", "500", "--seed", "5"]
    outcomes, corpora, progress = [], [], []
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"])):
        ran = fuzz(*common, *extra, "--corpus", name, "--report", f"{name}.json", cwd=tmp_path)
        assert ran.returncode == 0 and "2 shard(s)" in ran.stdout, ran.stdout[-2000:]  # the canary caught
        progress.append(ran.stderr.splitlines()[-1].split(" cases/s")[0].rsplit(", ", 1)[0])
        outcomes.append(_outcome(json.loads((tmp_path / f"{name}.json").read_text())))
        corpora.append(_corpus(tmp_path / name))
    shards = []
    for index in (1, 2):
        ran = fuzz(*common, "--shard", f"{index}/2", "--corpus", "shards", "--report", f"{index}.json", cwd=tmp_path)
        assert f"shard {index}/2 with 1 worker(s); re-run with --seed 5 --shard {index}/2" in ran.stdout, ran.stderr
        shards.append(_outcome(json.loads((tmp_path / f"{index}.json").read_text())))
    union = {}
    for name in shards[0]:
        (examples, statuses, coverage, failures), other = shards[0][name], shards[1][name]
        union[name] = (
            examples + other[0],
            dict(Counter(statuses) + Counter(other[1])),
            dict(Counter(coverage) + Counter(other[2])),
            sorted(set(failures) | set(other[3])),
        )
    assert outcomes[0] == outcomes[1]
    # The progress line ends on the whole campaign, said alike: "fuzzing: 1124/1124 cases, 2 bug(s)".
    assert progress[0] == progress[1] and re.fullmatch(r"fuzzing: (\d+)/\1 cases, [1-9]\d* bug\(s\)", progress[0])
    assert outcomes[0][CORRECT][0] >= 500 and outcomes[0]["original"][3]
    assert {name: (e, s, c) for name, (e, s, c, _) in union.items()} == {
        name: (e, s, c) for name, (e, s, c, _) in outcomes[0].items()
    }
    # Each shard shrinks what it finds; the merged run keeps each bug's smallest case, as the
    # corpus does when both shards save into one.
    assert corpora[0] == corpora[1] == _corpus(tmp_path / "shards")
    assert {case for _, case in outcomes[0]["original"][3]} <= {case for _, case in union["original"][3]}


@pytest.mark.timing
@needs_two_cores
def test_a_worker_killed_from_outside_costs_nothing_the_campaign_completes_the_same(tmp_path: Path) -> None:
    common = ["--impl", "original", "--impl", CORRECT, "--max-examples", "2000", "--seed", "3"]
    ran = fuzz(*common, "--workers", "2", "--corpus", "calm", "--report", "calm.json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:]  # the canary caught
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            *common,
            "--workers",
            "2",
            "--corpus",
            "killed",
            "--report",
            "killed.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Killed mid-call in a shard (its journal names the call), however long getting there took.
        calling = wait_for(lambda: _calling(tmp_path / "killed"), bool)
        assert calling, "no worker got to a call"
        os.kill(min(calling), signal.SIGKILL)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in err, err[-2000:]
    assert "died (killed by SIGKILL)" in out and "the shard runs again" in out
    calm, killed = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("calm", "killed"))
    assert _outcome(killed) == _outcome(calm) and killed["incomplete"] == []
    assert _corpus(tmp_path / "killed") == _corpus(tmp_path / "calm")  # each finding saved once


@pytest.mark.timing
@needs_two_cores
def test_max_seconds_is_one_deadline_for_every_worker(tmp_path: Path) -> None:
    ran = fuzz(
        "--impl",
        CORRECT,
        "--workers",
        "2",
        "--max-seconds",
        str(MAX_SECONDS),
        "--max-examples",
        "1000000",
        "--no-save",
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert_stopped_at_the_deadline(ran, json.loads((tmp_path / "report.json").read_text()))


MAX_SECONDS = 5
# After the deadline: the draw each worker is checking, then ending the workers and merging.
# A campaign of 64 shards that handed each shard the whole --max-seconds would run for 32
# times it on 2 workers.
OVERRUN = 20


def assert_stopped_at_the_deadline(ran: subprocess.CompletedProcess[str], report: dict[str, Any]) -> None:
    """The campaign (timed from when it started, after start-up and imports: the report's
    seconds) ran until its --max-seconds and stopped soon after, with what it had checked."""
    (row,) = report["implementations"].values()
    assert row["examples"] < report["max_examples"]  # cut short, not finished
    assert report["incomplete"] == [] and not report["interrupted"]
    # "ok" (exit 0) for what it checked in the time; a machine too busy to check a case in
    # it says so ("NOT CHECKED", exit 1).
    assert ran.returncode == (0 if row["statuses"].get("passed") else 1), ran.stdout[-2000:] + ran.stderr[-2000:]
    assert MAX_SECONDS <= report["seconds"] < MAX_SECONDS + OVERRUN, report["seconds"]


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
    assert merge([first, replace(second, incomplete=["shard 2/2 was not checked"])], 7).incomplete == [
        "shard 2/2 was not checked"
    ]


def _exception(needs: set[str], rows: int, untried: frozenset[str] = frozenset()) -> Finding:
    """NumPy's "not aligned", raised at one place, on a case ``rows`` high needing ``needs``."""
    case = Case(batch=1, in_channels=1, out_channels=2, groups=1, height=rows, width=2, kernel=(1, 2))
    message = f"ValueError: shapes ({rows},2) and (3,{rows}) not aligned (at conv.py:9)"
    return Finding(
        "x", case, failure("exception", message, "ValueError@conv.py:9"), needs=frozenset(needs), untried=untried
    )


def test_shards_that_found_one_raise_site_on_different_cases_make_one_report() -> None:
    # Two shards shrank the same failure (one message template, one place) to cases needing
    # different features: one bug, as one campaign makes it, with the other case listed under it.
    first, second = CampaignResult(seed=1), CampaignResult(seed=2)
    first.findings.append(_exception({"kernel>1", "out_channels>1"}, rows=3))
    second.findings.append(_exception({"kernel>1"}, rows=2))
    (bug,) = merge([first, second], seed=7).findings
    assert bug.needs == {"kernel>1"} and [s.case.height for s in bug.symptoms] == [3]
    # The one kept is settled: not one kept as it stood when its run was interrupted.
    cut = _exception(set(), rows=1, untried=features(_exception(set(), rows=1).case))
    assert cut.interrupted
    (bug,) = merge([first, replace(second, findings=[cut])], seed=7).findings
    assert bug.needs == {"kernel>1", "out_channels>1"} and [s.case.height for s in bug.symptoms] == [1]


def test_the_progress_line_counts_the_bugs_each_shard_has_now_as_the_final_table_does() -> None:
    # A shard that finds a bug to be another's symptom drops it: the count drops with it.
    # One failure that two shards shrank to different cases is one bug, as in the final table.
    said: list[int] = []
    shards = (Shard(1, 2), Shard(2, 2))
    options = Options(
        specs=("correct",),
        max_examples=10,
        seed=1,
        shards=shards,
        implementations=(implementation_from("correct", planted_bugs.correct),),
        progress=lambda done, planned, bugs: said.append(len(bugs)),
    )
    ledger = Ledger(options)
    one, other = _finding("x", 2).tag, _finding("x", 3, kind="shape").tag
    ledger.said(shards[0], 1, frozenset({one, other}))
    ledger.said(shards[1], 1, frozenset({one}))
    ledger.said(shards[0], 2, frozenset({one}))  # `other` became a symptom of `one`
    assert said == [2, 2, 1]
    raised, raised_elsewhere = _exception({"kernel>1"}, rows=2), _exception({"kernel>1", "out_channels>1"}, rows=3)
    assert raised.key != raised_elsewhere.key
    ledger.said(shards[0], 3, frozenset({one, raised.tag}))
    ledger.said(shards[1], 3, frozenset({raised_elsewhere.tag}))
    assert said[-2:] == [2, 2]
