"""The processes a campaign starts cannot deadlock on what the campaign's own process did,
and outlive nothing: whatever kills the campaign, its workers and isolated children die
with it; Ctrl-C on a Dask cluster closes it cleanly, however often it is pressed.

Each campaign here runs in a session of its own, so that every process it started (and
none of anyone else's) can be found in /proc and, whatever the test's outcome, killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hostile_workers
import pytest

from harness.execute.journal import FOLDER

HOSTILE = str(Path(hostile_workers.__file__).resolve())
CORRECT = "loop"
# With one core, --workers 2 is capped to one worker, which runs in the campaign's process.
needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for 2 workers")
STARTED = 180.0  # seconds a loaded machine may take to start a campaign and its workers
GONE = 30.0  # seconds the kernel and the campaign's processes get to end after it dies


@contextlib.contextmanager
def campaign(arguments: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m harness fuzz *arguments`` in a session of its own, its output in files
    (cwd/out, cwd/err: no pipe that a leftover process holds open); every process of its
    session is killed when the test ends, whatever happened."""
    with open(cwd / "out", "wb") as out, open(cwd / "err", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness", "fuzz", *arguments],
            cwd=cwd,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        for pid in session(process.pid) | ({process.pid} if process.poll() is None else set()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()


def session(leader: int) -> set[int]:
    """The processes of the session ``leader`` started, zombies aside (they are dead)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _, _, sid, *_ = (entry / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(sid) == leader and state != "Z":
            found.add(int(entry.name))
    return found


def described(pids: set[int]) -> list[str]:
    lines = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
            lines.append(f"{pid}: {command[:150]!r}")
    return lines


def left_behind(leader: int) -> list[str]:
    """What is still alive of the session ``leader`` started, given `GONE` seconds to end."""
    wait_for(lambda: not session(leader), GONE)
    return described(session(leader))


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.timing
@needs_two_cores
def test_an_implementation_that_runs_torch_on_two_threads_hangs_no_worker(tmp_path: Path) -> None:
    """A worker forked from the campaign's process inherited its OpenMP pool without the
    pool's threads: the implementation's first two-thread im2col waited for them for ever."""
    with campaign(
        [
            "--impl",
            f"{HOSTILE}:two_threads",
            "--workers",
            "2",
            "--max-examples",
            "100",
            "--shards",
            "2",
            "--seed",
            "1",
            "--no-save",
        ],
        tmp_path,
    ) as process:
        try:
            status = process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("the campaign hung: " + (tmp_path / "err").read_text()[-500:])
    out = (tmp_path / "out").read_text()
    assert status == 0 and "2 shard(s) with 2 worker(s)" in out, out[-2000:] + (tmp_path / "err").read_text()[-2000:]


def _workers_fuzzing(directory: Path) -> bool:
    """Both workers are running a shard: each keeps a journal, named for its pid, meanwhile."""
    return len(list((directory / "corpus" / FOLDER).glob("*.json"))) >= 2


def _hanging(count: int) -> Callable[[Path], bool]:
    """``count`` isolated children have hung (`hostile_workers.hangs_in_c`)."""
    return lambda directory: len(list(directory.glob("hung-*"))) >= count


@pytest.mark.timing
@pytest.mark.parametrize(
    "implementation, arguments, ready, how",
    [
        (CORRECT, ["--workers", "2"], _workers_fuzzing, signal.SIGKILL),
        (CORRECT, ["--workers", "2"], _workers_fuzzing, signal.SIGTERM),
        (f"{HOSTILE}:hangs_in_c", ["--workers", "2", "--isolate"], _hanging(2), signal.SIGKILL),
        (f"{HOSTILE}:hangs_in_c", ["--isolate"], _hanging(1), signal.SIGKILL),
    ],
    ids=["workers-kill-9", "workers-sigterm", "workers-isolated-hung-kill-9", "isolated-hung-kill-9"],
)
@needs_two_cores
def test_every_process_a_campaign_started_dies_with_it(
    implementation: str, arguments: list[str], ready: Callable[[Path], bool], how: signal.Signals, tmp_path: Path
) -> None:
    with campaign(
        ["--impl", implementation, *arguments, "--max-examples", "100000", "--seed", "1", "--corpus", "corpus"],
        tmp_path,
    ) as process:
        assert wait_for(lambda: ready(tmp_path) or process.poll() is not None, STARTED)
        assert process.poll() is None, (tmp_path / "err").read_text()[-2000:]
        started = session(process.pid) - {process.pid}
        os.kill(process.pid, how)
        # SIGTERM reaches the watching parent, which passes it on and says the run ended
        # before its report (exit 1); SIGKILL takes the parent with no word.
        assert process.wait(timeout=60) == (-how if how == signal.SIGKILL else 1)
        assert left_behind(process.pid) == []
    assert started  # there were processes to outlive it


@pytest.mark.timing
@needs_two_cores
def test_ctrl_c_again_ends_the_wait_for_the_workers_and_the_campaign_still_reports(tmp_path: Path) -> None:
    """The second Ctrl-C used to be raised inside the wait for the workers' results: a
    KeyboardInterrupt traceback, and no report."""
    with campaign(
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
        ],
        tmp_path,
    ) as process:
        assert wait_for(lambda: _workers_fuzzing(tmp_path) or process.poll() is not None, STARTED)
        assert process.poll() is None, (tmp_path / "err").read_text()[-2000:]
        os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it: to the process group
        time.sleep(0.3)  # the workers are still saving what they found
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=120)
        assert left_behind(process.pid) == []
    err = (tmp_path / "err").read_text()
    assert status == 1 and "Traceback" not in err, err[-3000:]
    assert "interrupted: everything found so far is saved and reported above" in (tmp_path / "out").read_text()


@pytest.mark.timing
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for a cluster of 2 workers")
def test_ctrl_c_again_while_a_dask_cluster_closes_leaves_no_traceback_and_no_process(tmp_path: Path) -> None:
    """The second Ctrl-C used to land inside the closing of the client or the cluster: a
    KeyboardInterrupt traceback, or Client.__del__'s "IOLoop is closed" one."""
    pytest.importorskip("distributed")
    with campaign(
        [
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
            "--no-save",
        ],
        tmp_path,
    ) as process:

        def fuzzing() -> bool:
            lines = (tmp_path / "err").read_text().splitlines()
            return len(lines) > 1 and not lines[-1].startswith("fuzzing: 0/")  # shards are running

        assert wait_for(lambda: fuzzing() or process.poll() is not None, STARTED)
        cluster = session(process.pid) - {process.pid}
        assert process.poll() is None and len(cluster) >= 2, (tmp_path / "err").read_text()[-2000:]
        os.kill(process.pid, signal.SIGINT)
        # Again as soon as the cluster's processes start to go: it is being closed.
        wait_for(lambda: not cluster <= session(process.pid) or process.poll() is not None, 60)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        status = process.wait(timeout=120)
        assert left_behind(process.pid) == []
    err = (tmp_path / "err").read_text()
    assert status == 1, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert "interrupted: everything found so far is saved and reported above" in (tmp_path / "out").read_text()
