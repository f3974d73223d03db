"""Campaigns on a Dask cluster keep the word local ones keep: the same seed checks the same
cases, a worker that dies costs at most the case it was running, ``--max-seconds`` is one
deadline, Ctrl-C keeps what was found, and "ok" means checked.

The cluster is started and stopped here, on 127.0.0.1: a scheduler and two ``dask worker
--nthreads 1`` processes (``--scheduler tcp://...``), or a `LocalCluster` the command
starts itself (``--scheduler local:2``). Tests that need Dask are skipped where
``distributed`` is not installed; the usage errors are checked everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interrupting import GETTING_THERE, PROMPTLY, ctrl_c, found_a_bug, wait_for
from test_parallel import CORRECT, MAX_SECONDS, MISBEHAVING, _corpus, _outcome, assert_stopped_at_the_deadline, fuzz

from harness.backends.base import INTERRUPT_GRACE, Options, run_shard
from harness.backends.plan import INSTALL, Shard
from harness.cli import main

# A plugin that does not load in a cluster's workers (as if it were not installed there),
# and one that kills any worker process that loads it; the command line loads both.
NOT_ON_WORKERS = (
    "import os\nif os.environ.get('IM2COL_TEST_WORKER'):\n    raise ImportError('No module named conv_kernels')\n"
)
KILLS_WORKERS = (
    "import os, signal\nif os.environ.get('IM2COL_TEST_WORKER'):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
)
CONV2D = (
    "import torch.nn.functional as F\n"
    "def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):\n"
    "    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)\n"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A scheduler and two single-threaded workers on 127.0.0.1, each in a session of its
    own (stopped with everything it started), each warmed up by a shard; yields a client of
    it. The scheduler gives a task up after two workers died running it (``allowed-failures``
    1, not 3: quicker)."""
    distributed = pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp("cluster")
    address_file = folder / "scheduler.json"
    environment = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", "IM2COL_TEST_WORKER": "1"}
    dask = [sys.executable, "-m", "dask"]
    processes = [
        subprocess.Popen(
            [
                *dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(address_file),
            ],
            cwd=folder,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        wait_for(address_file.exists, bool)
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        *dask,
                        "worker",
                        "--scheduler-file",
                        str(address_file),
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    cwd=folder,
                    env=environment,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        with distributed.Client(scheduler_file=str(address_file), timeout=GETTING_THERE) as client:
            client.wait_for_workers(2, timeout=GETTING_THERE)
            # Up means ready to check: each worker has imported what a shard's task does and run a
            # shard (torch, Hypothesis, the first calls), so that no test's clock times start-up.
            client.run(exec, "import harness.cli")
            warm_up = Options(specs=(CORRECT,), max_examples=2, seed=1, shards=(Shard(1, 1),))
            client.gather(
                [
                    client.submit(run_shard, warm_up, Shard(1, 1), workers=[address], pure=False)
                    for address in client.nthreads()
                ]
            )
            yield client
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _address(client: Any) -> str:
    address: str = client.scheduler.address
    return address


def _report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_the_cluster_checks_the_same_cases_as_one_worker(tmp_path: Path) -> None:
    """A LocalCluster of two worker processes (``local:2``) against ``--workers 1``: case for case."""
    pytest.importorskip("distributed")
    common = ["--impl", "original", "--impl", CORRECT, "--max-examples", "500", "--shards", "4", "--seed", "5"]
    outcomes, corpora, progress = [], [], []
    for name, extra in (("one", ["--workers", "1"]), ("dask", ["--scheduler", "local:2"])):
        ran = fuzz(*common, *extra, "--corpus", name, "--report", f"{name}.json", cwd=tmp_path)
        assert ran.returncode == 0 and "4 shard(s)" in ran.stdout, ran.stdout[-2000:] + ran.stderr[-2000:]
        progress.append(ran.stderr.splitlines()[-1].split(" cases/s")[0].rsplit(", ", 1)[0])
        outcomes.append(_outcome(_report(tmp_path / f"{name}.json")))
        corpora.append(_corpus(tmp_path / name))
    assert "4 shard(s) on Dask (local:2) with 2 worker(s); re-run with --seed 5 --shards 4" in ran.stdout
    assert outcomes[0] == outcomes[1] and outcomes[0][CORRECT][0] >= 500 and outcomes[0]["original"][3]
    assert corpora[0] == corpora[1]
    assert progress[0] == progress[1]  # "fuzzing: 1124/1124 cases, 2 bug(s)": the whole campaign, said alike


@pytest.mark.timing
def test_a_worker_killed_mid_campaign_costs_nothing_the_campaign_completes_the_same(
    tmp_path: Path, cluster: Any
) -> None:
    common = ["--impl", "original", "--impl", CORRECT, "--max-examples", "1000", "--shards", "4", "--seed", "3"]
    calm = fuzz(*common, "--workers", "1", "--corpus", "calm", "--report", "calm.json", cwd=tmp_path)
    assert calm.returncode == 0, calm.stdout[-2000:]  # the canary caught
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            *common,
            "--scheduler",
            _address(cluster),
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
        pids = cluster.run(os.getpid)
        # Killed once its shard's task has started there (it counts its runs as it starts),
        # however long getting there took.
        busy = wait_for(lambda: _running_a_shard(cluster), bool)
        assert busy, "no shard started"
        os.kill(pids[busy[0]], signal.SIGKILL)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in err, out[-2000:] + err[-2000:]
    assert "with every implementation isolated: a worker running it was lost (it died, or left the cluster)" in out
    killed = _report(tmp_path / "killed.json")
    assert _outcome(killed) == _outcome(_report(tmp_path / "calm.json")) and killed["incomplete"] == []
    assert _corpus(tmp_path / "killed") == _corpus(tmp_path / "calm")  # each finding saved once


def _running_a_shard(client: Any) -> list[str]:
    """The workers running a task that has started (the first thing a shard's task does is
    count its run in the scheduler's metadata)."""
    return [worker for worker, keys in client.processing().items() if any(client.get_metadata(key, 0) for key in keys)]


CRASHER = f"{MISBEHAVING}:segfaults_with_bias"


def _crasher_isolated_then_on_the_cluster(
    tmp_path: Path, cluster: Any, examples: str, shards: str, seed: str, *saving: str
) -> subprocess.CompletedProcess[str]:
    """`CRASHER` beside a correct implementation, with --isolate here (isolated.json), then
    on the cluster (report.json, its run returned): both exit 1 for the crash, with no traceback."""
    common = ["--impl", CRASHER, "--impl", CORRECT, "--max-examples", examples, "--shards", shards, "--seed", seed]
    isolated = fuzz(*common, "--isolate", "--no-save", "--report", "isolated.json", cwd=tmp_path)
    assert isolated.returncode == 1, isolated.stdout[-2000:]
    ran = fuzz(*common, "--scheduler", _address(cluster), *saving, "--report", "report.json", cwd=tmp_path)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stdout[-3000:] + ran.stderr[-3000:]
    return ran


def test_an_implementation_that_kills_its_worker_costs_only_the_cases_it_crashed_on(
    tmp_path: Path, cluster: Any
) -> None:
    ran = _crasher_isolated_then_on_the_cluster(tmp_path, cluster, "120", "1", "1", "--corpus", "corpus")
    # Its worker died; Dask's second run of the task (not a task of ours) isolated everything.
    assert "cluster: shard 1/1 ran again on tcp://127.0.0.1:" in ran.stdout
    assert "with every implementation isolated: a worker running it was lost" in ran.stdout
    report = _report(tmp_path / "report.json")
    correct, crashing = report["implementations"][CORRECT], report["implementations"][CRASHER]
    # The correct one is blamed for nothing; both checked what --isolate checks here, case for case.
    assert correct["as_registered"] and correct["failures"] == [] and correct["statuses"].get("failed", 0) == 0
    assert _outcome(report) == _outcome(_report(tmp_path / "isolated.json"))
    assert [(f["kind"], f["needs"], f["shrunk"]) for f in crashing["failures"]] == [("crash", ["bias"], True)]
    assert report["incomplete"] == [] and not report["interrupted"]


def test_an_implementation_found_crashing_runs_isolated_in_the_shards_handed_out_after(
    tmp_path: Path, cluster: Any
) -> None:
    ran = _crasher_isolated_then_on_the_cluster(tmp_path, cluster, "800", "8", "2", "--no-save")
    assert ran.stdout.count(f"cluster: {CRASHER} crashed a worker's process; it runs isolated") == 1
    # Only the shards handed out before the first crash was found run it in process and can
    # lose a worker to it (2 workers x QUEUED_PER_WORKER); a shard waiting on a dying worker
    # is blamed too and may be run again as well. Without this, every one of the 8 died.
    assert 1 <= ran.stdout.count("ran again on") < 8, ran.stdout
    assert _outcome(_report(tmp_path / "report.json")) == _outcome(_report(tmp_path / "isolated.json"))


def test_a_shard_dask_gives_up_on_is_incomplete_and_never_ok(tmp_path: Path, cluster: Any) -> None:
    plugin = tmp_path / "kills_workers.py"
    plugin.write_text(KILLS_WORKERS + CONV2D)
    spec = f"{plugin}:conv2d"
    ran = fuzz(
        "--impl",
        spec,
        "--max-examples",
        "40",
        "--shards",
        "1",
        "--seed",
        "1",
        "--no-save",
        "--scheduler",
        _address(cluster),
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stdout[-2000:] + ran.stderr[-2000:]
    report = _report(tmp_path / "report.json")
    assert report["incomplete"] == [
        (
            "shard 1/1 was not checked: Dask gave up on its task after 2 workers holding it "
            "died (KilledWorker), twice; the scheduler's "
            "distributed.scheduler.allowed-failures says how many deaths a task may cost"
        )
    ]
    (row,) = [line for line in ran.stdout.splitlines() if line.startswith(spec)]
    assert row.rstrip().endswith("INCOMPLETE") and not report["implementations"][spec]["as_registered"]
    cluster.wait_for_workers(2, timeout=60)  # their nannies restart them


def test_an_implementation_a_worker_cannot_load_leaves_its_shards_unchecked(tmp_path: Path, cluster: Any) -> None:
    plugin = tmp_path / "not_on_workers.py"
    plugin.write_text(NOT_ON_WORKERS + CONV2D)
    spec = f"{plugin}:conv2d"
    ran = fuzz(
        "--impl",
        spec,
        "--impl",
        CORRECT,
        "--max-examples",
        "40",
        "--shards",
        "2",
        "--seed",
        "1",
        "--no-save",
        "--scheduler",
        _address(cluster),
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    incomplete = _report(tmp_path / "report.json")["incomplete"]
    assert len(incomplete) == 2 and all(
        "ShardError: on tcp://127.0.0.1:" in line
        and f"{spec} did not load: ImportError: No module named conv_kernels" in line
        for line in incomplete
    )
    assert "installed on every worker" in incomplete[0] and " ok" not in ran.stdout


@pytest.mark.timing
def test_max_seconds_is_one_deadline_for_the_cluster(tmp_path: Path, cluster: Any) -> None:
    ran = fuzz(
        "--impl",
        CORRECT,
        "--max-seconds",
        str(MAX_SECONDS),
        "--max-examples",
        "1000000",
        "--no-save",
        "--scheduler",
        _address(cluster),
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert_stopped_at_the_deadline(ran, _report(tmp_path / "report.json"))  # 64 shards, each handed what is left


@pytest.mark.timing
def test_ctrl_c_stops_the_cluster_s_shards_promptly_and_keeps_what_they_found(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")  # a dependency of distributed
    ran = ctrl_c(
        [
            "--impl",
            "original",
            "--impl",
            CORRECT,
            "--scheduler",
            "local:2",
            "--max-examples",
            "100000",
            "--shards",
            "2",
            "--seed",
            "1",
            "--corpus",
            "corpus",
            "--report",
            "report.json",
        ],
        tmp_path,
        lambda pid, err: found_a_bug(err) and psutil.Process(pid).children(recursive=True),
    )
    workers = ran.seen
    assert len(workers) >= 2
    # Each shard stops at its next call; one that does not is waited for INTERRUPT_GRACE at most.
    assert ran.stopped < INTERRUPT_GRACE + PROMPTLY, ran.stopped
    assert ran.status == 1 and "Traceback" not in ran.err, ran.err[-2000:]
    assert "interrupted: everything found so far is saved and reported above" in ran.out
    report = _report(tmp_path / "report.json")
    assert report["interrupted"] is True and report["incomplete"] == []
    # The bug seen before Ctrl-C is kept: what was checked is what the shards sent back when asked to stop.
    assert report["implementations"]["original"]["examples"] > 0
    assert report["implementations"][CORRECT]["as_registered"] is False and " ok" not in ran.out
    failures = report["implementations"]["original"]["failures"]
    assert failures and {f["case"] for f in failures} <= {entry.case.id for _, entry in _entries(tmp_path)}
    assert psutil.wait_procs(workers, timeout=60)[1] == []  # the cluster's processes are gone
    # Nothing but the progress lines: no Dask logs.
    assert ran.err.count("fuzzing: ") == len(ran.err.splitlines()), ran.err


# Wrong with a bias, and slow at it once it has failed more often than the first draw found
# it (16 calls with seed 1): each call while its bug is shrunk takes 3 s.
SLOW_TO_SHRINK = """\
import time
import torch.nn.functional as F
MARKS = {marks!r}
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    output = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    if bias is None:
        return output
    with open(MARKS, "a") as marks:  # a mark per wrong call
        marks.write(".")
        if marks.tell() > {explored}:
            time.sleep(3)
    return output + 1
"""


@pytest.mark.timing
def test_ctrl_c_while_a_shard_shrinks_a_bug_stops_it_at_its_next_call_and_keeps_the_bug(
    tmp_path: Path, cluster: Any
) -> None:
    marks, plugin = tmp_path / "marks", tmp_path / "slow_to_shrink.py"
    plugin.write_text(SLOW_TO_SHRINK.format(marks=str(marks), explored=20))
    spec = f"{plugin}:conv2d"

    def shrinking(pid: int, err: str) -> bool:
        return marks.exists() and marks.stat().st_size > 20

    ran = ctrl_c(
        [
            "--impl",
            spec,
            "--max-examples",
            "100000",
            "--shards",
            "1",
            "--seed",
            "1",
            "--corpus",
            "corpus",
            "--report",
            "report.json",
            "--scheduler",
            _address(cluster),
        ],
        tmp_path,
        shrinking,
    )
    # Shrinking would go on for SHRINK_SECONDS, far past the INTERRUPT_GRACE this process waits
    # for the shard, and the bug would be lost: asked to stop, a shard stops at its next call.
    assert ran.stopped < INTERRUPT_GRACE + PROMPTLY, ran.stopped
    assert ran.status == 1 and "Traceback" not in ran.err, ran.out[-2000:] + ran.err[-2000:]
    report = _report(tmp_path / "report.json")
    assert report["interrupted"] is True and report["implementations"][spec]["examples"] > 0
    (failure,) = report["implementations"][spec]["failures"]
    # As far as shrinking got: on a busy machine the Ctrl-C may land after the last step.
    assert failure["kind"] == "values"
    assert [entry.case.id for _, entry in _entries(tmp_path)] == [failure["case"]]


def _entries(directory: Path) -> list[Any]:
    from harness.store.corpus import load

    return load(directory / "corpus").entries


@pytest.mark.parametrize(
    "arguments, error",
    [
        (["--scheduler", "local:2", "--workers", "2"], "--scheduler and --workers do not combine"),
        (["--scheduler", "local:2", "--workers", "1"], "--scheduler and --workers do not combine"),
        (["--scheduler", "local:2", "--shard", "1/2"], "--scheduler and --shard do not combine"),
        (["--scheduler", "local:0"], "expected local:N with N at least 1, got 'local:0'"),
        (["--scheduler", "10.0.0.5"], "expected a Dask scheduler's address (tcp://HOST:PORT) or local:N"),
    ],
)
def test_scheduler_usage_errors_are_one_line(
    arguments: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fuzz", "--impl", CORRECT, "--no-save", *arguments])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and error in err, err


def test_without_distributed_the_scheduler_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    status = main(["fuzz", "--impl", CORRECT, "--no-save", "--scheduler", "local:2"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1, err
    assert f"--scheduler needs Dask's distributed, which is not installed here: {INSTALL}" in err


def test_no_scheduler_at_the_address_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    ran = fuzz("--impl", CORRECT, "--no-save", "--scheduler", f"tcp://127.0.0.1:{port}", cwd=tmp_path)
    assert ran.returncode == 2 and ran.stdout == "", ran.stdout + ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert f"--scheduler tcp://127.0.0.1:{port}: no Dask scheduler to connect to there" in ran.stderr
