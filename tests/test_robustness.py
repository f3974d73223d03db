"""The campaign survives implementations that crash, hang, exhaust memory, or return or raise
what no conv2d should, and still reports them precisely while checking the others.

The misbehaving implementations are in tests/misbehaving.py; each is correct except under
one simple condition (a bias, groups > 1), so a test can check the failure's kind, its
minimal case and what it `needs`. They are loaded by file, so that an isolated child
process can load them again. Each campaign fuzzes `loop` (correct) alongside, which must
come out with no findings and all its cases checked.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import misbehaving
import planted_bugs
import pytest
import torch
import torch.nn.functional as F
from interrupting import PROMPTLY, ctrl_c, found_a_bug, wait_for

from harness.api import assert_conv2d_matches
from harness.campaign import engine as campaign
from harness.campaign.engine import CampaignResult, fuzz
from harness.execute import runner
from harness.execute.journal import FOLDER, orphans, process_identity
from harness.execute.journal import read as read_journal
from harness.execute.supervisor import QUARANTINE_AFTER, Supervisor
from harness.model.case import Case
from harness.model.finding import Finding, identity
from harness.model.registry import Implementation, discover
from harness.model.verdict import FAILED, SKIPPED
from harness.store.corpus import load

MISBEHAVING = str(Path(misbehaving.__file__).resolve())
PLANTED = str(Path(misbehaving.__file__).resolve().with_name("planted_bugs.py"))
CORRECT = "loop"
EXAMPLES = 120  # a handful of draws: every variant of a draw counts as one example
SEED = 1


def spec(name: str) -> str:
    return f"{MISBEHAVING}:{name}"


def implementations(name: str) -> list[Implementation]:
    """The correct `loop` and one misbehaving implementation, loaded the way the CLI does."""
    registry = discover([CORRECT, spec(name)])
    assert not registry.errors, registry.errors
    return list(registry.implementations.values())


def campaign_of(name: str, supervisor: Supervisor, examples: int = EXAMPLES) -> CampaignResult:
    result = fuzz(implementations(name), examples, SEED, supervisor=supervisor)
    # Not even an implementation raising KeyboardInterrupt itself is taken for the user's Ctrl-C.
    assert not result.interrupted
    return result


def assert_correct_one_untouched(result: CampaignResult, examples: int = EXAMPLES) -> None:
    """`loop` was checked on every case, and passed every one."""
    assert [f for f in result.findings if f.implementation == CORRECT] == []
    tally = result.tallies[CORRECT]
    assert tally.examples >= examples
    assert tally.statuses[FAILED] == tally.statuses[SKIPPED] == 0, tally.statuses
    assert sum(tally.statuses.values()) == tally.examples


def findings_of(result: CampaignResult, name: str) -> dict[str, list[Finding]]:
    by_kind: dict[str, list[Finding]] = {}
    for finding in result.findings:
        if finding.implementation == spec(name):
            by_kind.setdefault(str(finding.verdict.kind), []).append(finding)
    return by_kind


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float, float], None]]:
    """``short_limits(base, shrink)``: each call may take ``base`` seconds (plus its share for
    the work), shrinking a bug ``shrink`` seconds, so that hangs cost a test less. ``base``
    stays well above what a correct call takes on a busy machine: a call past it is a timeout.
    `runner.time_limit` remembers each case's limit: forgotten before and after, so that no
    other test (drawing the same cases from the same seed) gets these."""

    def shorten(base: float, shrink: float) -> None:
        monkeypatch.setattr(runner, "TIME_BASE", base)
        monkeypatch.setattr(campaign, "SHRINK_SECONDS", shrink)
        runner.time_limit.cache_clear()

    yield shorten
    runner.time_limit.cache_clear()


@contextmanager
def isolated() -> Iterator[Supervisor]:
    """A supervisor running every implementation in a child process, stopped afterwards."""
    supervisor = Supervisor(isolate=True)
    try:
        yield supervisor
    finally:
        supervisor.close()


# -- in this process ------------------------------------------------------------------------

GROUPED = {"groups>1", "in_channels>1", "out_channels>1"}  # more than one group means more than one channel
IN_PROCESS_CASES = [
    # (implementation, kind, text in the message, what it needs, other kinds it may also show)
    ("returns_list_with_bias", "not-a-tensor", "returned list", {"bias"}, set()),
    ("returns_meta_with_bias", "device", "on meta", {"bias"}, set()),
    ("returns_input_with_bias", "aliased-input", "shares memory", {"bias"}, set()),
    # With batch 0 the view is empty (nothing shared) and merely the wrong shape.
    ("returns_view_of_input_with_groups", "aliased-input", "shares memory", GROUPED, {"shape"}),
    ("raises_keyboard_interrupt_with_bias", "exception", "KeyboardInterrupt", {"bias"}, set()),
    ("raises_system_exit_with_groups", "exception", "SystemExit: 2", GROUPED, set()),
    ("raises_memory_error_with_bias", "memory", "MemoryError", {"bias"}, set()),
]


@pytest.mark.parametrize(
    ("name", "kind", "text", "needs", "also"), IN_PROCESS_CASES, ids=[case[0] for case in IN_PROCESS_CASES]
)
def test_in_process_a_misbehaving_implementation_is_reported_by_kind_and_cause_and_the_campaign_goes_on(
    name: str, kind: str, text: str, needs: set[str], also: set[str]
) -> None:
    result = campaign_of(name, Supervisor())
    found = findings_of(result, name)
    assert kind in found and set(found) <= {kind} | also, found
    (finding,) = found[kind]
    assert text in finding.verdict.message
    assert finding.needs == needs and finding.shrunk
    assert result.tallies[spec(name)].examples >= EXAMPLES
    assert_correct_one_untouched(result)


@pytest.mark.timing
def test_in_process_a_python_infinite_loop_is_a_timeout_and_the_campaign_goes_on(
    short_limits: Callable[[float, float], None],
) -> None:
    short_limits(1.0, 4.0)
    name = "loops_with_float64_bias"
    started = time.monotonic()
    result = campaign_of(name, Supervisor())
    (finding,) = findings_of(result, name)["timeout"]
    assert re.fullmatch(r"no result after \d+\.\ds", finding.verdict.message), finding.verdict.message
    assert finding.case.bias and finding.case.dtype == "float64"
    assert finding.needs <= {"bias", "dtype=float64"}  # all of it, unless shrinking used up the time
    # Quarantined after a few timeouts: not called again while exploring.
    assert result.tallies[spec(name)].statuses[SKIPPED] > 0
    assert_correct_one_untouched(result)
    assert time.monotonic() - started < 120  # each hang cost a time limit, not the campaign


def test_a_quarantined_implementation_is_not_called_again_while_exploring() -> None:
    name = "raises_memory_error_with_bias"  # every call with a bias is abnormal ("memory")
    result = campaign_of(name, Supervisor())
    statuses = result.tallies[spec(name)].statuses
    assert statuses[SKIPPED] > 0
    # Exploring saw at most QUARANTINE_AFTER abnormal calls before quarantining it.
    assert statuses[FAILED] <= QUARANTINE_AFTER, statuses


def test_a_second_campaign_in_the_same_process_checks_an_implementation_quarantined_by_the_first() -> None:
    broken = misbehaving.raises_memory_error_with_bias
    with pytest.raises(AssertionError, match=r"\[memory\]"):
        assert_conv2d_matches(broken, max_examples=60, seed=SEED)
    # The same broken function, fuzzed again (a re-run in a notebook, a second test):
    with pytest.raises(AssertionError, match=r"\[memory\]"):
        assert_conv2d_matches(broken, max_examples=60, seed=SEED)


# -- state the whole process shares -----------------------------------------------------------


def shared_state() -> tuple[object, ...]:
    return (
        torch.is_grad_enabled(),
        torch.get_default_dtype(),
        F.conv2d,
        signal.getsignal(signal.SIGALRM),
        os.getcwd(),
        torch.get_num_threads(),
    )


def leftover_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and misbehaving.LEFTOVER.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


POLLUTERS = [
    # (implementation, what the failure must name)
    ("turns_off_grad_with_bias", "grad mode (True -> False)"),
    ("sets_default_dtype_with_bias", "default dtype (torch.float32 -> torch.float64)"),
    ("replaces_conv2d_with_bias", "torch.nn.functional.conv2d (replaced)"),
    ("ignores_time_limits_with_bias", "SIGALRM handler (the time limits) (_expire -> SIG_IGN)"),
    ("changes_directory_with_bias", "working directory"),
    ("leaves_a_process_with_bias", "child processes (1 left running, killed)"),
]


@pytest.mark.parametrize(("name", "named"), POLLUTERS, ids=[case[0] for case in POLLUTERS])
def test_in_process_an_implementation_changing_shared_state_is_reported_and_the_state_put_back(
    name: str, named: str
) -> None:
    before = shared_state()
    result = campaign_of(name, Supervisor())
    assert shared_state() == before and leftover_processes() == []
    found = findings_of(result, name)
    # Only that: its own later calls ran with the state put back (F.conv2d off by one would
    # make it fail on values too), and the correct one beside it never noticed (`loop`
    # declares autograd: its gradient checks ran with grad mode on).
    assert set(found) == {"global-state"}, found
    (finding,) = found["global-state"]
    assert named in finding.verdict.message and "put back after the call" in finding.verdict.message
    assert finding.needs == {"bias"} and finding.shrunk
    assert_correct_one_untouched(result)


def test_an_implementation_called_after_one_that_broke_a_function_it_uses_is_judged_on_what_it_does() -> None:
    # The polluter is called first in every case; the shipped `unfold` calls F.unfold.
    registry = discover([spec("replaces_unfold_with_bias"), "unfold"])
    result = fuzz(registry.implementations.values(), EXAMPLES, SEED, supervisor=Supervisor())
    assert F.unfold is misbehaving._UNFOLD
    assert set(findings_of(result, "replaces_unfold_with_bias")) == {"global-state"}
    assert [f for f in result.findings if f.implementation == "unfold"] == []
    assert result.tallies["unfold"].statuses[FAILED] == 0


@pytest.mark.timing
def test_time_limits_still_hold_after_an_implementation_ignored_sigalrm(
    short_limits: Callable[[float, float], None],
) -> None:
    short_limits(1.0, 4.0)
    registry = discover([CORRECT, spec("ignores_time_limits_with_bias"), spec("loops_with_float64_bias")])
    started = time.monotonic()
    result = fuzz(registry.implementations.values(), 4 * EXAMPLES, SEED, supervisor=Supervisor())
    assert set(findings_of(result, "ignores_time_limits_with_bias")) == {"global-state"}
    assert set(findings_of(result, "loops_with_float64_bias")) == {"timeout"}
    assert_correct_one_untouched(result, 4 * EXAMPLES)
    assert time.monotonic() - started < 240  # each hang cost a time limit, not the campaign


def test_a_tensor_subclass_whose_methods_raise_is_a_failure_not_a_crash_of_the_campaign() -> None:
    name = "returns_raising_subclass_with_bias"
    result = campaign_of(name, Supervisor())
    (finding,) = findings_of(result, name)["not-a-tensor"]
    assert "returned RaisingTensor, a torch.Tensor subclass that cannot be used as one" in finding.verdict.message
    assert "this tensor cannot be used" in finding.verdict.message and finding.needs == {"bias"}
    assert_correct_one_untouched(result)


def test_an_exception_whose_str_raises_is_reported_as_an_exception() -> None:
    name = "raises_unprintable_with_bias"
    result = campaign_of(name, Supervisor())
    (finding,) = findings_of(result, name)["exception"]
    assert "Unprintable: <unprintable Unprintable: str() raised RuntimeError>" in finding.verdict.message
    assert_correct_one_untouched(result)


def test_isolated_a_result_that_cannot_be_pickled_is_judged_as_the_tensor_it_holds() -> None:
    name = "returns_unpicklable_off_by_one_with_bias"
    with isolated() as supervisor:
        result = campaign_of(name, supervisor)
    found = findings_of(result, name)
    assert set(found) == {"values"}, found  # off by one, read through the subclass
    assert found["values"][0].needs == {"bias"}
    assert_correct_one_untouched(result)


def test_isolated_an_implementation_changing_shared_state_gets_the_same_verdict_as_in_process() -> None:
    name = "turns_off_grad_with_bias"
    with isolated() as supervisor:
        result = campaign_of(name, supervisor)
    (finding,) = findings_of(result, name)["global-state"]
    assert "grad mode (True -> False)" in finding.verdict.message and finding.needs == {"bias"}
    assert_correct_one_untouched(result)


def test_isolated_a_process_left_running_is_killed_and_reported() -> None:
    name = "leaves_a_process_with_bias"
    with isolated() as supervisor:
        result = campaign_of(name, supervisor)
    assert leftover_processes() == []
    (finding,) = findings_of(result, name)["global-state"]
    assert "child processes (1 left running, killed)" in finding.verdict.message
    assert_correct_one_untouched(result)


def test_a_failure_that_happened_once_is_reported_as_not_reproducible_and_attributed_to_nothing() -> None:
    name = "mutates_weight_on_its_50th_call"
    result = campaign_of(name, Supervisor())
    (finding,) = findings_of(result, name)["mutated-input"]
    assert not finding.reproducible and finding.needs == frozenset()
    assert "failed once, then passed when its case was re-run" in finding.diagnosis
    assert "only with" not in finding.diagnosis
    assert_correct_one_untouched(result)


# -- isolated in child processes --------------------------------------------------------------


def harness_children() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("im2col-harness")]


ISOLATED_CASES = [
    # (implementation, kind, text in the message, what it needs)
    ("segfaults_with_bias", "crash", "killed by SIGSEGV", {"bias"}),
    ("aborts_with_bias", "crash", "killed by SIGABRT", {"bias"}),
    # Only ever run isolated: the child's address space is capped, this process's is not.
    ("allocates_with_bias", "memory", "can't allocate memory", {"bias"}),
]


@pytest.mark.parametrize(("name", "kind", "text", "needs"), ISOLATED_CASES, ids=[c[0] for c in ISOLATED_CASES])
def test_isolated_a_crash_or_memory_blow_up_is_reported_by_kind_and_cause_and_the_campaign_goes_on(
    name: str, kind: str, text: str, needs: set[str]
) -> None:
    with isolated() as supervisor:
        result = campaign_of(name, supervisor)
    found = findings_of(result, name)
    assert set(found) == {kind}, found
    (finding,) = found[kind]
    assert text in finding.verdict.message
    assert finding.needs == needs and finding.case.bias
    assert_correct_one_untouched(result)


@pytest.mark.timing
def test_isolated_a_hang_inside_c_is_a_timeout_the_child_is_killed_and_the_campaign_goes_on(
    short_limits: Callable[[float, float], None],
) -> None:
    short_limits(1.0, 2.0)
    name = "hangs_in_c_with_float64_bias"
    supervisor = Supervisor(isolate=True)
    try:
        result = campaign_of(name, supervisor)
        # Each hung child was killed, not abandoned: at most one live child per implementation.
        assert len(harness_children()) <= len(supervisor.children)
    finally:
        supervisor.close()
    assert harness_children() == []
    (finding,) = findings_of(result, name)["timeout"]
    assert "(child killed)" in finding.verdict.message
    assert finding.case.bias and finding.case.dtype == "float64"
    assert_correct_one_untouched(result)


def test_a_crashing_implementation_is_quarantined_while_the_other_keeps_being_checked() -> None:
    name = "exits_with_groups"
    with isolated() as supervisor:
        result = campaign_of(name, supervisor)
    (finding,) = findings_of(result, name)["crash"]
    assert "exited with status 3" in finding.verdict.message
    assert finding.needs == GROUPED and finding.case.groups == 2
    assert supervisor.abnormal_in[spec(name), None] >= QUARANTINE_AFTER
    tally = result.tallies[spec(name)]
    assert tally.statuses[SKIPPED] > 0 and tally.examples >= EXAMPLES
    assert_correct_one_untouched(result)


# -- the crash journal ----------------------------------------------------------------------------


def harness_fuzz(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", *arguments], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def journals(corpus: Path) -> list[Path]:
    return sorted((corpus / FOLDER).glob("*.json"))


def journalled(path: Path) -> dict[str, object]:
    """The record in a file that is a journal."""
    read = read_journal(path)
    assert read is not None, path
    return read[0]


def test_a_crash_that_kills_the_campaign_is_journalled_then_rechecked_saved_and_isolated_by_the_next_run(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    crasher = spec("segfaults_with_bias")
    arguments = ("--impl", crasher, "--max-examples", "60", "--seed", str(SEED), "--corpus", str(corpus))

    died = harness_fuzz(*arguments, cwd=tmp_path)
    assert died.returncode == 1, died.stderr[-2000:]
    (journal,) = journals(corpus)
    running = journalled(journal)
    assert isinstance(running["case"], str)
    assert running["implementation"] == crasher and Case.from_id(running["case"]).bias
    # The watching parent process says what happened, naming the call from the journal.
    assert died.stdout.startswith(
        f"CRASHED {crasher} {running['case']}\n    the harness's process was killed by "
        "SIGSEGV in the middle of this call"
    ), died.stdout[-2000:]
    assert {"pid", "boot", "started"} <= running.keys()  # which process wrote it

    again = harness_fuzz(*arguments, cwd=tmp_path)
    assert again.returncode == 1, again.stderr[-2000:]
    assert (
        f"journal: an earlier run died while running {crasher} on {running['case']}; {crasher} runs isolated this time"
    ) in again.stdout
    assert f"on {running['case']}; re-checked in isolation, it fails there too [crash]" in again.stdout
    assert "killed by SIGSEGV" in again.stdout  # this time the child died, not the campaign
    assert journals(corpus) == []
    saved = load(corpus)
    assert saved.errors == []
    crashes = [
        entry
        for _, entry in saved.entries
        if entry.implementation == identity(crasher) and entry.verdict.kind == "crash"
    ]
    # One bug, one file: the journalled case is the same crash the campaign found and shrank.
    assert len(crashes) == 1 and "SIGSEGV" in crashes[0].verdict.message and crashes[0].needs == {"bias"}


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def _orphan_journal(corpus: Path, implementation: str, case: str) -> Path:
    """The journal a run killed in the middle of a call leaves behind."""
    (corpus / FOLDER).mkdir(parents=True, exist_ok=True)
    pid = _dead_pid()
    path = corpus / FOLDER / f"{pid}.json"
    path.write_text(json.dumps({"pid": pid, "boot": "", "started": "", "implementation": implementation, "case": case}))
    return path


ORPHAN = "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"


def test_after_a_rescue_the_implementations_still_in_process_are_journalled(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    crasher, exiter = spec("segfaults_with_bias"), spec("exits_with_groups")
    _orphan_journal(corpus, crasher, ORPHAN)

    died = harness_fuzz(
        "--impl",
        crasher,
        "--impl",
        exiter,
        "--max-examples",
        "200",
        "--seed",
        str(SEED),
        "--corpus",
        str(corpus),
        cwd=tmp_path,
    )
    assert f"{crasher} runs isolated this time" in died.stdout
    assert died.returncode == 1  # exits_with_groups ran in this process and took it down
    assert f"CRASHED {exiter} " in died.stdout and "exited with status 3 in the middle of this call" in died.stdout
    records = [journalled(path) for path in journals(corpus)]
    assert sorted(str(j.get("implementation", "")) for j in records) == sorted([crasher, exiter])


def test_a_run_killed_from_outside_is_not_blamed_on_the_implementation_it_was_running(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    journal = _orphan_journal(corpus, CORRECT, ORPHAN)
    again = harness_fuzz(
        "--impl", CORRECT, "--max-examples", "30", "--seed", str(SEED), "--corpus", str(corpus), cwd=tmp_path
    )
    assert again.returncode == 0, again.stdout[-2000:]
    assert (
        f"journal: an earlier run was killed while running {CORRECT} on {ORPHAN}; it passes in isolation, "
        "so nothing is saved"
    ) in again.stdout
    assert not journal.exists() and load(corpus).entries == []


def test_the_api_with_a_corpus_rechecks_a_call_an_earlier_campaign_died_in_as_the_command_line_does(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    name = f"{PLANTED}:correct"
    journal = _orphan_journal(corpus, name, ORPHAN)
    assert_conv2d_matches(planted_bugs.correct, max_examples=10, seed=SEED, name=name, corpus=corpus)
    assert not journal.exists() and load(corpus).entries == []  # re-checked: it passes in isolation


@pytest.mark.timing
def test_sigkill_of_a_run_then_a_clean_next_run_saves_nothing_against_a_correct_implementation(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            "--impl",
            CORRECT,
            "--max-examples",
            "100000",
            "--corpus",
            str(corpus),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Mid-call (its journal names the call), however long getting there took.
        wait_for(lambda: [path for path in journals(corpus) if b'"implementation"' in path.read_bytes()], bool)
        process.kill()  # mid-call, as the OOM killer or a CI timeout would
    finally:
        process.wait()
    assert journals(corpus)
    again = harness_fuzz(
        "--impl", CORRECT, "--max-examples", "30", "--seed", str(SEED), "--corpus", str(corpus), cwd=tmp_path
    )
    assert again.returncode == 0, again.stdout[-2000:]
    assert load(corpus).entries == [] and journals(corpus) == []


def test_the_journal_of_a_process_that_ended_but_is_not_yet_reaped_is_left_behind(tmp_path: Path) -> None:
    """A killed run's child is reparented to the machine's first process, which in a
    container may reap it late (CI's did): a zombie has ended, and its journal is a lead."""
    folder = tmp_path / FOLDER
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        boot, started = process_identity(child.pid) or ("", "")
        assert started, "a running process has a start time"
        folder.mkdir()
        (folder / f"{child.pid}.json").write_text(
            json.dumps({"pid": child.pid, "boot": boot, "started": started, "implementation": CORRECT, "case": ORPHAN})
        )
        assert orphans(folder) == ([], [])  # its process is running: no lead
        assert child.stdin is not None
        child.stdin.close()
        # Ended, and not waited for: a zombie until this process reaps it.
        wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0], b"Z".__eq__)
        (orphan,), skipped = orphans(folder)
        assert (orphan.pid, orphan.implementation, skipped) == (child.pid, CORRECT, [])
    finally:
        child.wait()


def test_relative_output_paths_stay_where_the_run_started_whatever_directory_an_implementation_moves_to(
    tmp_path: Path,
) -> None:
    ran = harness_fuzz(
        "--impl",
        spec("changes_directory_with_bias"),
        "--impl",
        CORRECT,
        "--max-examples",
        "60",
        "--seed",
        str(SEED),
        "--corpus",
        "corpus",
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert ran.returncode == 1, ran.stdout[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    failures = report["implementations"][spec("changes_directory_with_bias")]["failures"]
    assert [f["kind"] for f in failures] == ["global-state"]
    assert [entry.verdict.kind for _, entry in load(tmp_path / "corpus").entries] == ["global-state"]
    assert journals(tmp_path / "corpus") == []


# -- Ctrl-C -------------------------------------------------------------------------------------------


@pytest.mark.timing
def test_ctrl_c_stops_the_campaign_promptly_and_keeps_what_it_found(tmp_path: Path) -> None:
    corpus, report = tmp_path / "corpus", tmp_path / "report.json"
    ran = ctrl_c(
        [
            "--impl",
            "original",
            "--impl",
            f"{PLANTED}:ignores_bias",
            "--max-examples",
            "100000",
            "--seed",
            str(SEED),
            "--corpus",
            str(corpus),
            "--report",
            str(report),
        ],
        tmp_path,
        lambda pid, err: found_a_bug(err),
    )
    assert ran.stopped < PROMPTLY, ran.stopped  # at its next call
    assert ran.status == 1, (ran.out[-2000:], ran.err[-2000:])
    assert "interrupted" in ran.out and "Traceback" not in ran.err
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    failures = data["implementations"]["original"]["failures"]
    assert failures  # the bug seen before Ctrl-C
    saved = load(corpus)
    assert saved.errors == []
    assert {f["case"] for f in failures} <= {entry.case.id for _, entry in saved.entries}
    assert journals(corpus) == []


@pytest.mark.timing
def test_a_campaign_cut_by_ctrl_c_leaves_no_report_that_a_full_run_would_not_have_made(tmp_path: Path) -> None:
    """What an interrupted run saved (shrunk or not) is, once a full run has saved into the
    same corpus, exactly what the full run alone saves: nothing kept from the cut run stands
    as a bug of its own."""
    arguments = ["--impl", f"{PLANTED}:ignores_bias", "--impl", f"{PLANTED}:swaps_stride", "--seed", str(SEED)]
    full = harness_fuzz(*arguments, "--corpus", "full", cwd=tmp_path)
    assert full.returncode == 1, full.stdout[-2000:]
    wanted = {entry.key for _, entry in load(tmp_path / "full").entries}
    assert len(wanted) == 2, wanted
    cut = ctrl_c([*arguments, "--corpus", str(tmp_path / "cut")], tmp_path, lambda pid, err: found_a_bug(err))
    assert cut.status == 1 and "interrupted" in cut.out, (cut.out[-2000:], cut.err[-2000:])
    after = load(tmp_path / "cut")
    assert after.errors == [] and after.entries  # the bug seen before Ctrl-C
    # Each was one of the full run's bugs, or kept from the cut run to be merged.
    assert all(entry.key in wanted or entry.interrupted for _, entry in after.entries), [
        entry.diagnosis for _, entry in after.entries
    ]
    again = harness_fuzz(*arguments, "--corpus", "cut", cwd=tmp_path)
    assert again.returncode == 1, again.stdout[-2000:]
    assert {entry.key for _, entry in load(tmp_path / "cut").entries} == wanted


# -- plugins that do not load -------------------------------------------------------------------------


def test_a_plugin_that_fails_to_import_and_an_entry_point_naming_a_missing_function_are_reported_while_the_others_run(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import torch\nraise RuntimeError('built for another torch')\n")
    registry = discover([f"{broken}:conv2d", CORRECT, spec("returns_list_with_bias")])
    # What discovery does with an installed entry point whose function has gone.
    registry.add("ghost", "implementations.loop:no_such_conv2d", "entry point implementations.loop:no_such_conv2d")
    reasons = {error.name: error.reason for error in registry.errors}
    assert reasons.keys() == {f"{broken}:conv2d", "ghost"}
    assert reasons[f"{broken}:conv2d"] == "RuntimeError: built for another torch"
    assert "implementations.loop has no function 'no_such_conv2d'" in reasons["ghost"]

    result = fuzz(registry.implementations.values(), EXAMPLES, SEED, supervisor=Supervisor())
    assert set(result.tallies) == {CORRECT, spec("returns_list_with_bias")}
    assert set(findings_of(result, "returns_list_with_bias")) == {"not-a-tensor"}
    assert_correct_one_untouched(result)
