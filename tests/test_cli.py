"""End-to-end tests of ``python -m harness``: the commands, their reports and exit codes."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from harness.arguments import UsageError
from harness.cli import _outputs_writable, _writable, main
from harness.execute.journal import Journal
from harness.model.case import Case, Limits
from harness.model.finding import Finding, identity
from harness.model.registry import ENTRY_POINT_GROUP, discover
from harness.model.verdict import FAILED, Kind, Verdict
from harness.store.corpus import filename, load, save, to_json

PLUGIN = """
import torch
import torch.nn.functional as F

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    # Standard strides, float16 and bfloat16 in float32: torch 2.13 segfaults on some
    # channels_last weights and some grouped float16 problems, and puts NaN next to an
    # inf in bfloat16 (see the README).
    dtype = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    x, w = (t.to(dtype, memory_format=torch.contiguous_format) for t in (input, weight))
    bias = None if bias is None else bias.to(dtype)
    return F.conv2d(x, w, {bias}, stride, padding, dilation, groups).to(input.dtype)
"""
BROKEN = PLUGIN.replace("{bias}", "None")  # drops the bias
FIXED = PLUGIN.replace("{bias}", "bias")  # the same size: a one-word fix


# The project's own implementations, and the torch paths: always there, and all must pass but the canary.
OWN = {"original", "loop", "unfold", "strided", "gather", "numpy", "torch", "torch_no_mkldnn"}
LIBRARIES = {entry_point.name for entry_point in entry_points(group=ENTRY_POINT_GROUP) if entry_point.extras}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_list_shows_every_shipped_implementation_and_the_canary(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "list")
    assert status == 0
    for name in OWN | LIBRARIES:  # a library not installed here is listed as unavailable
        assert name in out
    (canary,) = [line for line in out.splitlines() if line.startswith("original")]
    assert "known-buggy canary" in canary and "batched=False" in canary


def test_fuzz_catches_the_canary_passes_the_rest_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    # Every registered implementation, as the main job runs it; a real library installed here
    # (an extra) has real bugs (tests/test_adapters.py), so then the others are named instead.
    libraries = sorted(set(discover().implementations) & LIBRARIES)
    named = [argument for name in sorted(OWN) for argument in ("--impl", name)] if libraries else []
    status, out, _ = _run(
        capsys,
        "fuzz",
        "--max-examples",
        "40",
        "--seed",
        "7",
        *named,
        "--report",
        str(report),
        "--corpus",
        str(tmp_path / "corpus"),
    )
    assert status == 0, out
    data = json.loads(report.read_text())
    entries = data["implementations"]
    assert set(entries) == OWN
    assert all(entry["examples"] >= 40 for entry in entries.values())
    kinds = [f["kind"] for f in entries["original"]["failures"]]
    # Its layout bug inside its declaration; silently wrong answers just outside it.
    assert kinds[0] == "layout" and set(kinds[1:]) <= {"outside-declared"}
    assert all(not entries[name]["failures"] for name in entries if name != "original")
    assert "canary caught" in out and "repro: python -m harness replay" in out
    assert len(list((tmp_path / "corpus" / "failures").glob("*.json"))) == len(kinds)


def test_the_same_seed_gives_the_same_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = []
    for run in range(2):
        path = tmp_path / f"{run}.json"
        _run(
            capsys,
            "fuzz",
            "--impl",
            "original",
            "--max-examples",
            "30",
            "--seed",
            "3",
            "--report",
            str(path),
            "--no-save",
        )
        reports.append(json.loads(path.read_text())["implementations"])
    assert reports[0] == reports[1]


def test_a_third_party_file_is_fuzzed_and_its_bug_caught_then_replayed_until_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "elsewhere" / "my_conv.py"
    plugin.parent.mkdir()
    plugin.write_text(BROKEN)
    spec = f"{plugin}:conv2d"
    report, corpus = tmp_path / "report.json", tmp_path / "corpus"

    status, out, _ = _run(
        capsys,
        "fuzz",
        "--impl",
        spec,
        "--max-examples",
        "300",
        "--seed",
        "1",
        "--report",
        str(report),
        "--corpus",
        str(corpus),
    )
    assert status == 1
    failures = json.loads(report.read_text())["implementations"][spec]["failures"]
    assert failures and failures[0]["kind"] == "values" and failures[0]["needs"] == ["bias"]

    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", spec)
    assert status == 1 and "still failing" in out

    # A one-word fix, same size, same modification time: still the new code that runs.
    before = plugin.stat()
    plugin.write_text(FIXED)
    assert plugin.stat().st_size == before.st_size
    os.utime(plugin, ns=(before.st_atime_ns, before.st_mtime_ns))
    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", f"{plugin}:conv2d")
    assert status == 0 and "fixed" in out


def test_replay_takes_a_case_id_and_reports_each_implementation(capsys: pytest.CaptureFixture[str]) -> None:
    case = "mbnoneic1oc1g1ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
    status, out, _ = _run(capsys, "replay", case, "--impl", "original", "--impl", "loop")
    assert status == 0  # the canary failing is expected, loop passing is expected
    assert "failed (layout)" in out and "passed" in out


def test_show_prints_a_script_that_reproduces_the_failure_with_torch_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = "mbnoneic1oc1g1ih5iw5kh3kw3s2p1d1-nobias-float32-contiguous-uniform-cpu-seed4"
    status, out, _ = _run(capsys, "show", case, "--impl", "original")
    assert status == 0
    script = tmp_path / "repro.py"
    script.write_text(out)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert ran.returncode == 1 and "wrong shape" in ran.stderr

    status, out, _ = _run(capsys, "show", case, "--impl", "loop")
    script.write_text(out)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert ran.returncode == 0 and "outputs agree" in ran.stdout


def test_corpus_merge_keeps_one_file_per_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for machine in ("a", "b"):
        _run(
            capsys,
            "fuzz",
            "--impl",
            "original",
            "--max-examples",
            "20",
            "--seed",
            "5",
            "--corpus",
            str(tmp_path / machine),
        )
    status, out, _ = _run(
        capsys, "corpus", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--into", str(tmp_path / "merged")
    )
    assert status == 0 and "1 added" in out and "1 already there" in out
    assert len(list((tmp_path / "merged" / "failures").glob("*.json"))) == 1


SMALL = "mb1ic1oc1g1ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
HUGE = "mb1ic1oc1g1ih1000000iw1000000kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"  # 8 TB


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["fuzz", "--impl", "nosuch"], "no implementation registered under that name"),
        (["fuzz", "--impl", "some_file.py"], "name the function too, as some_file.py:FUNCTION"),
        (["fuzz", "--impl", "pkg.mod:"], "expected a registered name, FILE.py:FUNCTION"),
        (["fuzz", "--impl", "missing.py:conv2d"], "no such file 'missing.py'"),
        (["fuzz", "--impl", "no_such_package.mod:conv2d"], "no module named 'no_such_package'"),
        (["fuzz", "--max-examples", "0"], "must be at least 1"),
        (["fuzz", "--max-examples", "-3"], "must be at least 1"),
        (["fuzz", "--max-examples", "many"], "expected a whole number"),
        (["replay", "mb1ic1-nonsense"], "must have 7 '-'-separated parts"),
        (["show", "mb1ic3oc2g2ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"], "multiples of groups"),
        (
            ["show", "mb1ic1oc1g1ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0", "--impl", "nosuch"],
            "no implementation registered under that name (registered: gather,",
        ),
        (
            [
                "show",
                "mb1ic1oc1g1ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0",
                "--impl",
                "missing.py:conv2d",
            ],
            "no such file 'missing.py'",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["fuzz", "--impl", ".my_conv:conv2d"], "'.my_conv' is neither a FILE.py nor an absolute module name"),
        (["replay", SMALL, "--impl", "..:conv2d"], "'..' is neither a FILE.py nor an absolute module name"),
        (["show", SMALL, "--impl", ".:conv2d"], "'.' is neither a FILE.py nor an absolute module name"),
        (["replay", HUGE], "too large"),
        (["show", HUGE], "--max-elements N"),
        (["replay", SMALL, "--max-elements", "0"], "must be at least 1"),
        (["show", SMALL, "--max-macs", "lots"], "expected a whole number"),
        (["replay", "mb" + "9" * 5000 + SMALL[3:]], "mb has 5,000 digits"),
        (["fuzz", "--shard", "1/4", "--shards", "8"], "--shard 1/4 is one of 4 shards, but --shards says 8"),
        (["fuzz", "--shard", "1/4", "--workers", "2"], "--workers and --shard do not combine"),
        (["fuzz", "--shard", "5/4"], "argument --shard: expected I/N with 1 <= I <= N, got '5/4'"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem_with_status_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and named in err, err
    assert "Traceback" not in err + out


def test_an_unwritable_corpus_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    status, _, err = _run(capsys, "fuzz", "--impl", "loop", "--corpus", str(blocker / "corpus"))
    assert status == 2 and "corpus directory" in err and "not writable" in err


def test_python_dash_m_harness_is_the_command_line() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", "--max-examples", "0"], capture_output=True, text=True
    )
    assert ran.returncode == 2
    assert ran.stderr == "python -m harness: error: argument --max-examples: must be at least 1, got 0\n"


def test_fuzzing_again_with_another_seed_adds_no_duplicate_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "my_conv.py"
    plugin.write_text(BROKEN)
    corpus = tmp_path / "corpus"
    for seed in ("1", "2"):
        status, out, _ = _run(
            capsys,
            "fuzz",
            "--impl",
            f"{plugin}:conv2d",
            "--max-examples",
            "300",
            "--seed",
            seed,
            "--corpus",
            str(corpus),
        )
        assert status == 1
    assert "corpus: kept" in out or "corpus: replaced" in out
    assert len(list((corpus / "failures").glob("*.json"))) == 1


# -- nothing a corpus file names runs; what reaches the terminal is escaped ----------------

SHOWN_CASE = "mb1ic2oc2g1ih4iw4kh3kw3s1p0d1-bias-float32-contiguous-uniform-cpu-seed1"
MARKS = """
from pathlib import Path

Path({marker!r}).write_text("imported")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    raise RuntimeError("called")
"""
ZEN = "Beautiful is better than ugly"


def _saved_failure(directory: Path, implementation: str) -> Path:
    entry = Finding(
        implementation,
        Case.from_id(SHOWN_CASE),
        Verdict(FAILED, Kind.EXCEPTION, "RuntimeError: called", "exception:RuntimeError@x"),
    )
    path = directory / "failures" / "saved.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(to_json(entry)))
    return path


@pytest.mark.parametrize("named", ["../evil.py:conv2d", "evilmod:conv2d", "this:x"])
def test_nothing_a_corpus_file_names_is_imported_by_show_by_any_command_or_by_the_script(
    named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work, marker = tmp_path / "work", tmp_path / "marker"
    work.mkdir()
    for plugin in (tmp_path / "evil.py", work / "evilmod.py"):
        plugin.write_text(MARKS.format(marker=str(marker)))
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))  # where an import of evilmod would find it
    for module in ("evilmod", "this"):
        monkeypatch.delitem(sys.modules, module, raising=False)  # an import would run it again
    corpus = work / "corpus"
    hostile = _saved_failure(corpus, named)

    status, script, _ = _run(capsys, "show", str(hostile))
    printed = [
        _run(capsys, *argv)[1]
        for argv in (
            ["replay", str(hostile)],
            ["replay", "--corpus", str(corpus)],
            ["corpus", "merge", str(corpus), "--into", str(tmp_path / "merged")],
        )
    ]
    assert not marker.exists() and ZEN not in "".join([script, *printed])

    # The script quotes the name, and runs torch's conv2d, not what the name names.
    assert status == 0 and f"'implementation': {identity(named)!r}" in script
    repro = work / "repro.py"
    repro.write_text(script)
    ran = subprocess.run([sys.executable, str(repro)], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == "outputs agree\n", ran.stderr
    assert not marker.exists()


def test_show_imports_nothing_given_with_impl_and_the_script_it_writes_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker, plugin = tmp_path / "marker", tmp_path / "mine.py"
    plugin.write_text(MARKS.format(marker=str(marker)))
    for module in [m for m in sys.modules if m.split(".")[0] in ("implementations", "this")]:
        monkeypatch.delitem(sys.modules, module)
    statuses, scripts = {}, {}
    for spec in (f"{plugin}:conv2d", "loop", "this:x"):
        statuses[spec], scripts[spec], _ = _run(capsys, "show", SHOWN_CASE, "--impl", spec)
    assert not marker.exists() and ZEN not in "".join(scripts.values())
    assert not [m for m in sys.modules if m.split(".")[0] in ("implementations", "this")]
    assert set(statuses.values()) == {0}
    # The registered name's module and function, from the package metadata.
    assert "conv2d = getattr(importlib.import_module('implementations.loop'), 'conv2d')" in scripts["loop"]

    repro = tmp_path / "repro.py"
    repro.write_text(scripts[f"{plugin}:conv2d"])
    ran = subprocess.run([sys.executable, str(repro)], capture_output=True, text=True)
    assert marker.exists() and "RuntimeError: called" in ran.stderr


def test_a_saved_failure_of_a_registered_implementation_is_shown_importing_it_from_its_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = _saved_failure(tmp_path, "original")  # a name, resolved by this installation
    status, script, _ = _run(capsys, "show", str(saved))
    assert status == 0 and "getattr(importlib.import_module('implementations.original'), 'conv2d')" in script
    status, script, _ = _run(capsys, "show", str(saved), "--impl", "loop")  # the command line decides
    assert status == 0 and "import_module('implementations.loop')" in script and "'original'" in script


INJECTING = """
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    raise ValueError('bad \"\"\" + __import__("os").system("echo INJECTED") + \"\"\"')
"""


def test_a_message_that_closes_a_docstring_stays_a_string_from_fuzz_to_corpus_to_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin, corpus, repro = tmp_path / "injecting.py", tmp_path / "corpus", tmp_path / "repro.py"
    plugin.write_text(INJECTING)
    status, _, _ = _run(
        capsys, "fuzz", "--impl", f"{plugin}:conv2d", "--corpus", str(corpus), "--max-examples", "5", "--seed", "1"
    )
    assert status == 1
    (saved,) = (corpus / "failures").glob("*.json")
    assert '"""' in json.loads(saved.read_text())["failure"]["message"]
    runs = []
    for impl in ([], ["--impl", f"{plugin}:conv2d"]):
        status, script, _ = _run(capsys, "show", str(saved), *impl)
        assert status == 0
        repro.write_text(script)
        runs.append(subprocess.run([sys.executable, str(repro)], capture_output=True, text=True))
    assert [ran.stdout for ran in runs] == ["outputs agree\n", ""]
    assert "ValueError: bad" in runs[1].stderr  # raised by the implementation, as recorded


ESCAPING = """
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    raise RuntimeError("\\x1b]0;pwned\\x07\\x1b[2J boom")
"""
RAW, SHOWN = "\x1b]0;pwned\x07\x1b[2J boom", "\\x1b]0;pwned\\x07\\x1b[2J boom"


def _terminal_safe(text: str) -> bool:
    return not any(character in text for character in "\x1b\x07\x9b\u202e")


def test_escape_sequences_an_implementation_raises_reach_the_terminal_escaped_and_the_json_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin, corpus = tmp_path / "red\x1b[31m.py", tmp_path / "corpus"  # its file name too
    plugin.write_text(ESCAPING)
    spec = f"{plugin}:conv2d"
    status, out, err = _run(
        capsys,
        "fuzz",
        "--impl",
        spec,
        "--max-examples",
        "5",
        "--seed",
        "1",
        "--corpus",
        str(corpus),
        "--report",
        str(tmp_path / "fuzz.json"),
    )
    assert status == 1 and _terminal_safe(out + err)
    assert SHOWN in out and "red\\x1b[31m.py" in out and "fuzzing: " in err
    (failure,) = json.loads((tmp_path / "fuzz.json").read_text())["implementations"][spec]["failures"]
    assert failure["message"].startswith(f"RuntimeError: {RAW} (at ")

    for target in (["--corpus", str(corpus)], [failure["case"]]):
        status, out, err = _run(capsys, "replay", *target, "--impl", spec, "--report", str(tmp_path / "replay.json"))
        assert status == 1 and _terminal_safe(out + err) and f"    RuntimeError: {SHOWN}" in out
        (row,) = json.loads((tmp_path / "replay.json").read_text())["rows"]
        assert row["message"].startswith(f"RuntimeError: {RAW} (at ")


def test_corpus_file_names_and_case_ids_in_errors_reach_the_terminal_escaped_and_clipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "failures").mkdir(parents=True)
    (corpus / "failures" / "\x1b[2J\u202e.json").write_text("{")
    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", "loop")
    assert status == 1 and _terminal_safe(out) and "ERROR " in out
    assert "\\x1b[2J\\u202e.json: not valid JSON" in out

    status, _, err = _run(capsys, "show", str(tmp_path / "\x1b]0;pwned\x07.json"))
    assert status == 2 and _terminal_safe(err) and "\\x1b]0;pwned\\x07.json: cannot read" in err

    status, _, err = _run(capsys, "replay", "x" * 100_000)
    assert status == 2 and err.count("\n") == 1 and len(err) < 1200 and "more characters)" in err


# -- limits --------------------------------------------------------------------------------


@pytest.mark.timing
@pytest.mark.parametrize("command", ["replay", "show"])
def test_a_case_over_the_size_limit_is_refused_at_once_in_one_line_naming_it_the_limit_and_the_override(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    status, out, err = _run(capsys, command, HUGE)
    assert time.perf_counter() - started < 5.0  # milliseconds here: nothing of its size is made
    assert status == 2 and out == ""
    assert err == (
        f"python -m harness: error: case {HUGE!r} is too large: 2,000,000,000,001 elements (padded "
        "input + dilated weight + output), over the limit of 16,777,216; raise the limit with "
        "--max-elements N\n"
    )


def test_an_error_about_a_long_id_on_the_command_line_is_one_short_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "replay", SMALL + "x" * 100_000)
    assert status == 2 and err.count("\n") == 1 and len(err) < 600


@pytest.mark.parametrize(("flag", "over", "within"), [("--max-elements", "42", "43"), ("--max-macs", "80", "81")])
def test_the_limits_can_be_raised_or_lowered_on_the_command_line(
    flag: str, over: str, within: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # SMALL: 25 + 9 + 9 = 43 elements, 9 x 9 = 81 multiply-adds.
    for command in ("replay", "show"):
        status, _, err = _run(capsys, command, SMALL, flag, over)
        assert status == 2 and f"over the limit of {over}; raise the limit with {flag} N" in err
        status, out, _ = _run(capsys, command, SMALL, "--impl", "loop", flag, within)
        assert status == 0 and out


def test_replay_and_merge_refuse_an_oversized_corpus_entry_and_carry_on_with_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    big = Case.from_id(HUGE)
    for case, signature in ((Case.from_id(SMALL), "values:small"), (big, "values:huge")):
        save(corpus, Finding("loop", case, Verdict(FAILED, Kind.VALUES, "wrong values", signature)))
    [big_path] = [path for path, e in load(corpus, Limits(big.elements, big.macs)).entries if e.case == big]

    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", "loop")
    assert status == 1 and "fixed" in out
    [error] = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert error.startswith(f"ERROR {big_path}: case: case ") and "--max-elements" in error

    status, out, _ = _run(capsys, "corpus", "merge", str(corpus), "--into", str(tmp_path / "merged"))
    assert status == 1 and "1 added" in out and "--max-elements" in out


# -- the corpus as it is on disk -----------------------------------------------------------


def test_replay_during_or_after_a_fuzz_run_ignores_its_crash_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    save(corpus, Finding("loop", Case.from_id(SMALL), Verdict(FAILED, Kind.VALUES, "wrong values", "values:old")))
    journal = Journal(corpus)  # what a campaign running on this corpus keeps there
    journal.running("loop", Case.from_id(SMALL))
    try:
        status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", "loop")
        merged, merge_out, _ = _run(capsys, "corpus", "merge", str(corpus), "--into", str(tmp_path / "merged"))
    finally:
        journal.close()
    assert status == 0 and "ERROR" not in out and "fixed" in out
    assert merged == 0 and "ERROR" not in merge_out and "1 added" in merge_out


def test_replay_of_a_corpus_holding_a_fifo_says_so_in_one_line_and_replays_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    save(corpus, Finding("loop", Case.from_id(SMALL), Verdict(FAILED, Kind.VALUES, "wrong values", "values:old")))
    fifo = corpus / "failures" / "0-fifo.json"
    os.mkfifo(fifo)
    ran = subprocess.run(
        [sys.executable, "-m", "harness", "replay", "--corpus", str(corpus), "--impl", "loop"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 1 and "fixed" in ran.stdout and "Traceback" not in ran.stderr
    assert [line for line in ran.stdout.splitlines() if line.startswith("ERROR")] == [
        f"ERROR {fifo}: skipped: a FIFO, not a regular file"
    ]


def test_merge_past_a_directory_where_a_file_goes_says_so_in_one_line_and_merges_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    entries = [
        Finding("loop", Case.from_id(SMALL), Verdict(FAILED, Kind.VALUES, "wrong", f"values:{i}")) for i in range(3)
    ]
    for entry in entries:
        save(source, entry)
    blocked = target / "failures" / filename(entries[1])
    blocked.mkdir(parents=True)

    status, out, err = _run(capsys, "corpus", "merge", str(source), "--into", str(target))

    assert status == 1 and "Traceback" not in out + err
    assert [line for line in out.splitlines() if line.startswith("ERROR")] == [
        f"ERROR {blocked}: cannot save: Is a directory"
    ]
    assert "2 added" in out and len(load(target).entries) == 2


# -- output paths --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["directory", "missing-folder", "file-as-folder"])
def test_an_unwritable_report_path_is_a_usage_error_before_the_campaign_runs(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    report = {
        "directory": tmp_path,
        "missing-folder": tmp_path / "no" / "r.json",
        "file-as-folder": tmp_path / "file" / "r.json",
    }[where]
    status, out, err = _run(
        capsys, "fuzz", "--impl", "loop", "--max-examples", "5", "--no-save", "--report", str(report)
    )
    assert status == 2 and out == ""
    assert err.startswith(f"python -m harness: error: --report {report}: cannot write there: ")
    assert err.count("\n") == 1


def test_a_writable_report_path_is_left_as_it_was_until_the_report_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    report.write_text("old")
    _outputs_writable(None, report)  # raises nothing
    assert report.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]


def _probe_many(directory: str, count: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    failures = 0
    for _ in range(count):
        try:
            _writable(Path(directory))
        except UsageError:
            failures += 1
    results.put(failures)


def test_concurrent_writability_probes_of_one_corpus_never_fail_each_other(tmp_path: Path) -> None:
    processes = 4
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_probe_many, args=(str(tmp_path), 1500, barrier, results)) for _ in range(processes)
    ]
    with warnings.catch_warnings():  # Python >= 3.12 warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        for worker in workers:
            worker.start()
    failures = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert failures == [0] * processes
    assert os.listdir(tmp_path) == []  # no probe left behind


# -- specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fuzz", "replay", "show"])
def test_a_spec_naming_a_function_the_file_lacks_is_a_usage_error_saying_what_it_has(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("my_conv.py").write_text(FIXED + "\ndef helper():\n    pass\n")
    argv = {"fuzz": ["fuzz", "--no-save"], "replay": ["replay", SMALL], "show": ["show", SMALL]}[command]
    status, out, err = _run(capsys, *argv, "--impl", "my_conv.py:conv2")
    assert status == 2 and out == ""
    assert err == (
        "python -m harness: error: --impl 'my_conv.py:conv2': my_conv.py has no function 'conv2' "
        "(it has: conv2d, helper)\n"
    )


def test_a_file_implementation_fuzzed_by_absolute_path_is_replayed_by_a_relative_one_and_against_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "my_conv.py").write_text(BROKEN)
    corpus = tmp_path / "corpus"
    status, _, _ = _run(
        capsys,
        "fuzz",
        "--impl",
        f"{folder / 'my_conv.py'}:conv2d",
        "--max-examples",
        "300",
        "--seed",
        "1",
        "--corpus",
        str(corpus),
    )
    assert status == 1
    (recorded,) = [entry for _, entry in load(corpus).entries]
    assert recorded.implementation == "my_conv.py:conv2d"  # no folder: portable between machines

    monkeypatch.chdir(folder)
    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", "./my_conv.py:conv2d")
    assert status == 1 and "still failing" in out and "note:" not in out and "ERROR" not in out

    status, out, _ = _run(capsys, "replay", "--corpus", str(corpus), "--impl", "loop")
    assert status == 0, out
    assert recorded.case.id in out and "ERROR" not in out
    assert "note: 1 case(s) recorded against 'my_conv.py:conv2d', which this replay does not run" in out


def test_progress_says_each_state_of_the_whole_campaign_once_and_always_its_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import cli

    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])  # the clock the cli reads
    progress = cli._Progress()  # stderr is captured: not a terminal, a line every 5 s at most
    for step in range(1, 11):
        clock[0] += 1.0
        progress(step * 10, 200, 1)
    for _ in range(3):
        clock[0] += 6.0
        progress(200, 200, 2)  # done, said three times: printed once
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "fuzzing: 50/200 cases, 1 bug(s), 10 cases/s, about 15s left",
        "fuzzing: 100/200 cases, 1 bug(s), 10 cases/s, about 10s left",
        "fuzzing: 200/200 cases, 2 bug(s), 12 cases/s",
    ]


@pytest.mark.parametrize(
    "command",
    [[], ["list"], ["fuzz"], ["replay"], ["show"], ["corpus"], ["corpus", "merge"]],
    ids=lambda command: " ".join(command) or "main",
)
def test_help_is_plain_text_ending_with_the_exit_statuses(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0  # returned: an exit raised from under main is a crash (harness.launcher)
    out = capsys.readouterr().out
    assert "`" not in out
    statuses = out[out.index("\nexit status:\n") :].splitlines()[2:]
    assert [line.split()[0] for line in statuses if not line.startswith("     ")] == ["0", "1", "2"]
    assert "usage error" in statuses[-1]


def test_every_column_of_the_replay_table_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    case = "mbnoneic1oc1g1ih5iw5kh3kw3s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
    status, out, _ = _run(capsys, "replay", case, "--impl", "original", "--impl", "loop")
    header, rule = out.splitlines()[:2]
    assert status == 0
    assert header.split() == ["case", "implementation", "result", "note"] and len(rule.split()) == 4


@pytest.mark.parametrize(
    "source, reason",
    [
        ("raise ImportError('needs a GPU library')\n", "ImportError: needs a GPU library"),
        (
            "def conv2d(input, weight):\n    return input\n",
            "TypeError: conv2d(input, weight) has no parameter 'stride'",
        ),
    ],
    ids=["import-error", "wrong-signature"],
)
def test_a_plugin_that_cannot_load_is_named_not_loaded_and_the_others_still_run(
    source: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    status, out, _ = _run(
        capsys, "fuzz", "--impl", f"{plugin}:conv2d", "--impl", "loop", "--max-examples", "10", "--no-save"
    )
    assert status == 1
    assert f"NOT LOADED {plugin}:conv2d: {reason}" in out
    assert "FAILED" not in out
    assert any(line.startswith("loop ") and line.rstrip().endswith("ok") for line in out.splitlines())
