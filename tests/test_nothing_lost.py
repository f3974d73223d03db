"""Nothing found is lost, and the crash journal is untrusted input.

A finding whose file name is taken by another bug is stored all the same; a finding that
cannot be saved fails the campaign and is printed whole; a full disk ends no run with a
SIGBUS and no report with a traceback; a journal in ``corpus/.inflight/`` that is a FIFO, a
link to a device, too large, over the size limits or full of line breaks is a note, never
a hang, an unbounded read, a 9.8 GB case or a forged line.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.campaign.bugs import KnownBugs
from harness.campaign.engine import fuzz
from harness.cli import main
from harness.execute.journal import FOLDER
from harness.model.case import Case
from harness.model.features import features
from harness.model.finding import Finding
from harness.model.registry import discover
from harness.model.verdict import FAILED, Kind, Verdict
from harness.store import corpus
from harness.store.corpus import filename, load, load_file, save, save_findings

CANARY = "original"  # registered as known-buggy: a campaign that catches it exits 0
SMALL = "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
HOSTILE_SECONDS = 120  # generous: a hang is what is tested, not speed


def entry(height: int, signature: str) -> Finding:
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=height, width=3, kernel=(1, 1))
    return Finding("loop", case, Verdict(FAILED, Kind.VALUES, "wrong values at row 0", signature))


def harness(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 256 kB tmpfs with not a byte left: writes there fail with ENOSPC."""
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(filler, b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
        finally:
            os.close(filler)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# -- Ctrl-C -------------------------------------------------------------------------------------------


def test_ctrl_c_while_a_shrunk_bug_is_attributed_keeps_it_shrunk_with_what_it_needs_untried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attributing re-checks the shrunk case without each feature, call by call; Ctrl-C
    stops it at the next call (`runner.stop_if_interrupted`). The shrunk bug was in no
    list then: the interrupted campaign lost it."""

    def interrupted(self: KnownBugs, finding: Finding, deadline: float) -> Finding:
        raise KeyboardInterrupt

    monkeypatch.setattr(KnownBugs, "attributed", interrupted)
    registry = discover([f"{Path(__file__).parent / 'planted_bugs.py'}:ignores_bias"])
    result = fuzz(registry.implementations.values(), 200, 1)
    assert result.interrupted
    (finding,) = result.findings
    assert finding.shrunk and finding.case.bias and finding.case.height == finding.case.width == 1, finding.case.id
    assert finding.needs == frozenset() and finding.untried == features(finding.case)
    assert finding.interrupted
    assert finding.diagnosis.endswith("; shrunk, then interrupted: what it needs was not checked")


# -- save compares bug keys, not case sizes ----------------------------------------------------------


def test_a_file_of_another_bug_under_a_findings_name_does_not_make_save_drop_the_finding(tmp_path: Path) -> None:
    other, new = entry(3, "values:rows 0-1"), entry(5, "values:rows 2-3")  # the other's case is smaller
    save(tmp_path, other)
    squatter = tmp_path / corpus.FAILURES / filename(new)
    os.replace(tmp_path / corpus.FAILURES / filename(other), squatter)  # a file copied under the wrong name
    before = squatter.read_bytes()

    assert save(tmp_path, new) == "added"
    assert save(tmp_path, new) == "kept"  # the same bug again finds its file
    assert save(tmp_path, entry(4, "values:rows 2-3")) == "replaced"

    assert squatter.read_bytes() == before  # the other bug's file is not touched
    stored = {finding.verdict.signature: finding.case.height for _, finding in load(tmp_path).entries}
    assert stored == {"values:rows 0-1": 3, "values:rows 2-3": 4}


def test_a_file_at_a_findings_name_that_is_no_finding_is_not_overwritten_and_the_finding_is_stored(
    tmp_path: Path,
) -> None:
    new = entry(5, "values:rows 2-3")
    squatter = tmp_path / corpus.FAILURES / filename(new)
    squatter.parent.mkdir(parents=True)
    squatter.write_text('{"schema": 99, "kind": "written by a newer harness"}')

    assert save(tmp_path, new) == "added"

    assert squatter.read_text() == '{"schema": 99, "kind": "written by a newer harness"}'
    assert [finding for _, finding in load(tmp_path).entries] == [new]


# -- a save that fails -------------------------------------------------------------------------------


def test_a_finding_that_cannot_be_saved_is_printed_whole_as_its_corpus_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finding = entry(4, "values:rows 0-1")

    def no_space(fd: int) -> None:  # where a full disk shows when writes are buffered (or on NFS)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    [line] = save_findings([finding], 7, tmp_path)
    monkeypatch.undo()

    first, *rest = line.splitlines()
    assert first.startswith("corpus: NOT saved: ") and "No space left on device" in first
    assert not list((tmp_path / corpus.FAILURES).iterdir())  # no temporary file left
    [printed] = rest
    copy = tmp_path / "by-hand.json"
    copy.write_text(printed.split(": ", 1)[1])
    restored = load_file(copy)
    assert restored == finding and restored.found["campaign_seed"] == 7


def test_a_campaign_whose_finding_cannot_be_saved_fails_and_prints_it(full_disk: Path) -> None:
    # --isolate: no journal, so only the save meets the full disk; the canary is caught, as registered.
    ran = harness(
        "fuzz",
        "--impl",
        CANARY,
        "--isolate",
        "--max-examples",
        "30",
        "--seed",
        "1",
        "--corpus",
        str(full_disk / "corpus"),
        cwd=full_disk.parent,
    )
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "canary caught" in ran.stdout and "Traceback" not in ran.stderr
    lines = ran.stdout.splitlines()
    [at] = [index for index, line in enumerate(lines) if line.startswith("corpus: NOT saved: ")]
    assert '"implementation": "original"' in lines[at + 1]
    assert "finding(s) NOT saved" in ran.stdout


def test_a_full_disk_turns_the_journal_off_with_a_warning_instead_of_a_sigbus(full_disk: Path) -> None:
    ran = harness(
        "fuzz",
        "--impl",
        CANARY,
        "--max-examples",
        "30",
        "--seed",
        "1",
        "--corpus",
        str(full_disk / "corpus"),
        cwd=full_disk.parent,
    )
    assert ran.returncode == 1, (ran.returncode, ran.stdout[-2000:], ran.stderr[-2000:])
    [warning] = [line for line in ran.stderr.splitlines() if line.startswith("journal: ")]
    assert "No space left on device" in warning and "without it" in warning
    assert "canary caught" in ran.stdout and "corpus: NOT saved: " in ran.stdout


# -- --report and --output that cannot be written ----------------------------------------------------


def error_line(err: str) -> str:
    """The one line stderr has besides the progress lines."""
    [line] = [line for line in err.splitlines() if not line.startswith("fuzzing: ")]
    return line


@pytest.mark.parametrize(
    "command",
    [
        ["fuzz", "--impl", "loop", "--max-examples", "3", "--seed", "1", "--no-save"],
        ["replay", SMALL, "--impl", "loop"],
    ],
    ids=["fuzz", "replay"],
)
def test_a_report_that_cannot_be_written_is_one_line_and_exit_status_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*command, "--report", "/dev/full"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert error_line(err) == "python -m harness: error: --report /dev/full: cannot write: No space left on device"


def test_a_report_on_a_full_disk_leaves_no_empty_file(full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = full_disk / "report.json"
    status = main(
        ["fuzz", "--impl", "loop", "--max-examples", "3", "--seed", "1", "--no-save", "--report", str(report)]
    )
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert error_line(err) == f"python -m harness: error: --report {report}: cannot write: No space left on device"
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_a_conformance_table_that_cannot_be_written_is_one_line_and_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["conformance", "--impl", "loop", "--max-examples", "3", "--seed", "1", "--output", "/dev/full"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert error_line(err) == "python -m harness: error: --output /dev/full: cannot write: No space left on device"


# -- hostile journals --------------------------------------------------------------------------------


def _journal_notes(corpus_folder: Path) -> subprocess.CompletedProcess[str]:
    """What a campaign on ``corpus_folder`` says about its journals before it starts (the
    orphans found, and the lines about them), in a child with a time limit and, once the
    harness (and torch) are imported, 2 GiB more address space than that took: a journal
    read without bound or waited on fails it, never the test run. The limit is set after
    the imports because torch's own size varies by build (a CUDA build maps several GB)."""
    script = (
        "import resource, sys; from pathlib import Path; from harness.execute.journal import orphans; "
        "from harness.campaign.rescue import suspects; from harness.execute.isolation import virtual_memory\n"
        "limit = virtual_memory() + (2 << 30)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "found = orphans(Path(sys.argv[1]))\n"
        "found, notes = found if isinstance(found, tuple) else (found, [])\n"
        "print(repr([(o.implementation, o.case.id if o.case else None) for o in found]))\n"
        "for note in notes + suspects(found, {})[1]:\n"
        "    print(note)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(corpus_folder / FOLDER)],
        capture_output=True,
        text=True,
        timeout=HOSTILE_SECONDS,
    )


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def _journal(corpus_folder: Path, record: dict[str, object], padding: int = 0, name: str = "") -> Path:
    folder = corpus_folder / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    pid = _dead_pid()
    path = folder / (name or f"{pid}.json")
    path.write_text(json.dumps({"pid": pid, "boot": "", "started": "", **record}) + " " * padding)
    return path


def test_a_fifo_and_a_link_to_a_device_among_the_journals_are_skipped_with_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "corpus" / FOLDER
    folder.mkdir(parents=True)
    os.mkfifo(folder / "1.json")
    os.symlink("/dev/zero", folder / "2.json")
    kept = _journal(tmp_path / "corpus", {"implementation": "loop", "case": SMALL})

    try:
        ran = _journal_notes(tmp_path / "corpus")
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading the journals hung for {HOSTILE_SECONDS}s")
    assert ran.returncode == 0, ran.stderr[-2000:]
    found, *notes = ran.stdout.splitlines()
    assert found == repr([("loop", SMALL)])  # the good journal is still a lead
    assert f"journal: {folder / '1.json'}: skipped: a FIFO, not a regular file" in notes
    assert f"journal: {folder / '2.json'}: skipped: a symbolic link, not a regular file" in notes
    assert kept.exists() and (folder / "1.json").exists() and (folder / "2.json").is_symlink()


def test_a_journal_over_its_size_or_naming_a_case_over_the_limits_is_skipped_with_a_note(tmp_path: Path) -> None:
    huge = "mb1ic1oc1g1ih8000iw8000kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"  # 9.8 GB
    too_large = _journal(tmp_path / "corpus", {"implementation": "loop", "case": SMALL}, padding=1 << 20)
    over_limits = _journal(tmp_path / "corpus", {"implementation": "loop", "case": huge})

    ran = _journal_notes(tmp_path / "corpus")
    assert ran.returncode == 0, ran.stderr[-2000:]
    found, *notes = ran.stdout.splitlines()
    assert found == "[]"
    assert any(note.startswith(f"journal: {too_large}: skipped: larger than ") for note in notes), notes
    assert any(note.startswith(f"journal: {over_limits}: skipped: case ") and "too large" in note for note in notes), (
        notes
    )


def test_a_line_break_in_a_journalled_name_or_a_journals_file_name_forges_no_line(tmp_path: Path) -> None:
    forged = "loop\njournal: everything passed"
    _journal(tmp_path / "corpus", {"implementation": forged, "case": SMALL})
    os.mkfifo(tmp_path / "corpus" / FOLDER / "3\nforged.json")

    ran = _journal_notes(tmp_path / "corpus")
    assert ran.returncode == 0, ran.stderr[-2000:]
    _, *notes = ran.stdout.splitlines()
    assert len(notes) == 2 and not any(note.startswith(("journal: everything", "forged")) for note in notes), notes
    assert any("loop\\njournal: everything passed" in note for note in notes), notes
    assert any("3\\nforged.json" in note for note in notes), notes


def test_a_fifo_among_the_journals_does_not_hang_a_campaign(tmp_path: Path) -> None:
    folder = tmp_path / "corpus" / FOLDER
    folder.mkdir(parents=True)
    os.mkfifo(folder / "1.json")
    try:
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "fuzz",
                "--impl",
                "loop",
                "--max-examples",
                "3",
                "--seed",
                "1",
                "--corpus",
                str(tmp_path / "corpus"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HOSTILE_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzz hung for {HOSTILE_SECONDS}s on a FIFO among its journals")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert f"journal: {folder / '1.json'}: skipped: a FIFO, not a regular file" in ran.stdout
