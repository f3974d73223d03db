"""The corpus of saved failures: round trips, stable names, dedup, merge, concurrency, bad files, replay."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pickle
import random
import re
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness.campaign.check import check_case
from harness.campaign.engine import CampaignResult
from harness.campaign.replay import FIXED, STILL_FAILING, Target, absent, judge_row, replay, targets_from
from harness.execute.journal import Journal
from harness.generate.tensors import GENERATOR
from harness.model.capabilities import declare
from harness.model.case import OPTIONAL, Case, Limits
from harness.model.features import features
from harness.model.finding import Finding, identity, size
from harness.model.provenance import provenance
from harness.model.registry import implementation_from
from harness.model.verdict import FAILED, Kind, Verdict, failure
from harness.store import corpus
from harness.store.corpus import (
    SCHEMA,
    CorpusError,
    ShapeSet,
    filename,
    load,
    load_file,
    merge,
    save,
    save_findings,
    to_json,
)

SHIPPED = Path(__file__).resolve().parent.parent / "corpus"
FOUND = {"torch": "2.3.0", "python": "3.11.7", "harness": "0.1.0", "date": "2024-05-01T12:00:00+00:00"}


def small_case(height: int = 3, width: int = 3, channels: int = 1, seed: int = 0, **changes: Any) -> Case:
    """A valid 1x1-kernel case whose `size` grows with height, width and channels."""
    return Case(
        batch=1,
        in_channels=channels,
        out_channels=channels,
        groups=1,
        height=height,
        width=width,
        kernel=(1, 1),
        seed=seed,
        **changes,
    )


def entry(
    case: Case,
    implementation: str = "loop",
    signature: str = "values:rows 0-1",
    kind: str = "values",
    message: str = "wrong values at row 0",
    found: dict[str, Any] | None = None,
) -> Finding:
    return Finding(
        implementation,
        case,
        Verdict(FAILED, Kind(kind), message, signature),
        found=dict(FOUND if found is None else found),
    )


def _load_finding(path: Path) -> Finding:
    """load_file for a file that holds a finding, not a shape set."""
    loaded = load_file(path)
    assert isinstance(loaded, Finding), loaded
    return loaded


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def snapshot(directory: Path) -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files_under(directory)}


RICH_CASES = [
    Case(
        batch=None,
        in_channels=4,
        out_channels=6,
        groups=2,
        height=7,
        width=5,
        kernel=(3, 2),
        stride=(2, 1),
        padding=(1, 0),
        dilation=2,
        bias=True,
        dtype="float64",
        layout="channels_last",
        data="int",
        device="cpu",
        seed=12,
    ),
    Case(
        batch=2,
        in_channels=3,
        out_channels=3,
        groups=3,
        height=6,
        width=6,
        kernel=(3, 3),
        stride=1,
        padding="same",
        dilation=(1, 2),
        bias=False,
        dtype="float32",
        layout="strided",
        data="uniform",
        seed=987654321,
    ),
]


# -- round trip and file format --------------------------------------------------------


@pytest.mark.parametrize("case", RICH_CASES, ids=lambda case: case.id)
def test_a_saved_entry_loads_back_equal_including_argument_forms(tmp_path: Path, case: Case) -> None:
    assert case.problems() == []
    original = entry(
        case,
        "unfold",
        "exception:IndexError@unfold.py:42",
        "exception",
        "IndexError: index 3 is out of bounds (at unfold.py:42)",
    )

    assert save(tmp_path, original) == "added"
    [path] = files_under(tmp_path)
    loaded = load_file(path)

    assert loaded == original
    assert isinstance(loaded, Finding)
    assert loaded.case.id == case.id  # int stays int, pair stays pair, 'same' stays 'same'
    assert type(loaded.case.stride) is type(case.stride)
    assert type(loaded.case.dilation) is type(case.dilation)


def test_the_saved_file_is_readable_json_with_schema_case_data_failure_and_provenance(tmp_path: Path) -> None:
    case = RICH_CASES[0]
    save(tmp_path, entry(case, "loop", "values:rows 0-1", "values", "wrong values at row 0"))
    [path] = files_under(tmp_path)
    text = path.read_text()

    assert path.parent == tmp_path / corpus.FAILURES
    assert text.endswith("\n") and text.count("\n") > 20  # indented, one field a line, not one blob
    data = json.loads(text)
    assert data["schema"] == SCHEMA
    assert data["kind"] == "failure"
    assert data["id"] == case.id
    # Every field, less those a case written before them lacks, at their default here.
    assert set(data["case"]) == {f.name for f in dataclasses.fields(Case)} - set(OPTIONAL)
    for name, value in case.to_dict().items():
        stored = data["case"][name]
        assert (tuple(stored) if isinstance(stored, list) else stored) == value, name
    assert data["data"] == {"generator": GENERATOR, "seed": case.seed, "kind": case.data}
    assert data["implementation"] == "loop"
    assert data["signature"] == "values:rows 0-1"
    assert data["failure"] == {"kind": "values", "message": "wrong values at row 0"}
    assert data["found"] == FOUND


def test_provenance_names_torch_python_harness_and_an_iso_date() -> None:
    found = provenance()

    assert found["torch"] == torch.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", found["python"])
    assert found["harness"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", found["date"])
    json.dumps(found)  # it must go into a JSON file as is


# -- file names ------------------------------------------------------------------------


def test_the_file_name_depends_on_implementation_and_signature_but_not_on_the_case() -> None:
    first = entry(small_case(3, seed=1), "loop", "values:rows 0-1")
    second = entry(RICH_CASES[0], "loop", "values:rows 0-1", "values", "another message", {"date": "other"})

    assert filename(first) == filename(second)
    assert re.fullmatch(r"[0-9a-f]{16}\.json", filename(first))
    assert filename(entry(small_case(), "loop", "values:rows 0-2")) != filename(first)
    assert filename(entry(small_case(), "unfold", "values:rows 0-1")) != filename(first)
    # The pair is hashed unambiguously: moving a character across the boundary changes the name.
    assert filename(entry(small_case(), "a:b", "c")) != filename(entry(small_case(), "a", "b:c"))


def test_the_file_name_is_the_same_on_every_machine_and_python_process() -> None:
    # A pinned value: sha256 of the JSON [implementation, signature, needs], never Python's per-process hash(). If this
    # changes, corpora saved by older versions stop deduplicating against new ones.
    assert filename(entry(small_case(), "loop", "values:rows 0-1")) == "fb9fef8889637af5.json"


def test_the_same_failure_found_twice_lands_in_one_file_and_different_signatures_in_two(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(4, seed=1), signature="values:rows 0-1"))
    save(tmp_path, entry(small_case(4, seed=1), signature="values:rows 0-1"))
    save(tmp_path, entry(small_case(5, seed=2), signature="values:rows 0-1"))
    assert len(files_under(tmp_path)) == 1

    save(tmp_path, entry(small_case(4, seed=1), signature="nonfinite:rows 0-1", kind="nonfinite"))
    assert len(files_under(tmp_path)) == 2


# -- dedup -----------------------------------------------------------------------------


def test_saving_a_larger_case_for_a_stored_signature_keeps_the_smaller(tmp_path: Path) -> None:
    smaller, larger = small_case(3, 3), small_case(9, 9, channels=2)
    assert size(smaller) < size(larger)

    assert save(tmp_path, entry(smaller)) == "added"
    [path] = files_under(tmp_path)
    before = path.read_bytes()
    assert save(tmp_path, entry(larger)) == "kept"

    assert path.read_bytes() == before
    assert _load_finding(path).case == smaller


def test_saving_the_same_case_again_keeps_the_stored_file(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(3), found={"date": "first"}))
    assert save(tmp_path, entry(small_case(3), found={"date": "second"})) == "kept"
    [path] = files_under(tmp_path)
    assert _load_finding(path).found == {"date": "first"}


def test_saving_a_smaller_case_for_a_stored_signature_replaces_the_larger(tmp_path: Path) -> None:
    smaller, larger = small_case(3, 3), small_case(9, 9, channels=2)

    assert save(tmp_path, entry(larger)) == "added"
    assert save(tmp_path, entry(smaller, message="smaller message")) == "replaced"

    [path] = files_under(tmp_path)
    loaded = _load_finding(path)
    assert loaded.case == smaller
    assert loaded.verdict.message == "smaller message"


def _interrupted(case: Case, shrunk: bool = False) -> Finding:
    """As a run interrupted while shrinking keeps it (not shrunk), or while attributing it
    (shrunk): nothing about what it needs checked."""
    return dataclasses.replace(entry(case), shrunk=shrunk, untried=features(case))


@pytest.mark.parametrize("attributing", [False, True], ids=["while shrinking", "while attributing"])
def test_a_finding_kept_from_an_interrupted_run_is_merged_into_its_report_when_a_run_finds_it(
    tmp_path: Path, attributing: bool
) -> None:
    seen = _interrupted(small_case(9, 9, channels=2, bias=True), attributing)
    said = "shrunk, then interrupted" if attributing else "not shrunk, interrupted"
    assert seen.interrupted and said in seen.diagnosis
    save(tmp_path, seen)
    whole = dataclasses.replace(entry(small_case(1, 1, bias=True)), needs=frozenset({"bias"}))
    lines = save_findings([whole], 1, tmp_path)
    [path] = files_under(tmp_path)
    assert _load_finding(path).needs == {"bias"}  # the interrupted one's file is gone
    assert lines[0] == f"corpus: added {path}" and "merged" in lines[1] and "(kept from an interrupted run)" in lines[1]


def test_a_finding_from_an_interrupted_run_whose_bug_is_stored_is_not_saved_as_a_new_bug(tmp_path: Path) -> None:
    shrunk = dataclasses.replace(entry(small_case(1, 1, bias=True)), needs=frozenset({"bias"}))
    save(tmp_path, shrunk)
    assert save(tmp_path, _interrupted(small_case(9, 9, channels=2, bias=True))) == "kept"
    [path] = files_under(tmp_path)
    assert _load_finding(path) == shrunk
    # Another bug's interrupted failure (a case without what the stored bug needs) is kept on its own.
    assert save(tmp_path, _interrupted(small_case(9, 9, channels=2))) == "added"
    assert len(files_under(tmp_path)) == 2


# -- merge -----------------------------------------------------------------------------


def test_merging_two_corpora_into_a_third_keeps_the_smallest_case_per_signature(tmp_path: Path) -> None:
    first, second, target = tmp_path / "first", tmp_path / "second", tmp_path / "target"
    save(first, entry(small_case(3), signature="a"))  # only here
    save(first, entry(small_case(8), signature="shared-1"))  # larger here
    save(first, entry(small_case(4), signature="shared-2"))  # smaller here
    save(second, entry(small_case(5), signature="shared-1"))  # smaller here
    save(second, entry(small_case(7), signature="shared-2"))  # larger here
    save(second, entry(small_case(6), signature="b"))  # only here
    sources_before = snapshot(tmp_path)

    counts, errors = merge(target, [first, second])

    assert errors == []
    # first: a, shared-1, shared-2 all new; second: shared-1 smaller, shared-2 larger, b new.
    assert counts == {"added": 4, "replaced": 1, "kept": 1}
    merged = load(target)
    assert merged.errors == []
    heights = {e.verdict.signature: e.case.height for _, e in merged.entries}
    assert heights == {"a": 3, "shared-1": 5, "shared-2": 4, "b": 6}
    assert len(files_under(target)) == 4
    assert {p: v for p, v in snapshot(tmp_path).items() if target not in p.parents} == sources_before


def test_merging_the_same_source_twice_adds_nothing(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    for height, signature in ((3, "a"), (4, "b"), (5, "c")):
        save(source, entry(small_case(height), signature=signature))

    assert merge(target, [source]) == ({"added": 3, "replaced": 0, "kept": 0}, [])
    after_first = snapshot(target)
    assert merge(target, [source]) == ({"added": 0, "replaced": 0, "kept": 3}, [])
    assert snapshot(target) == after_first


def test_merging_reports_bad_source_files_and_merges_the_good_ones(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    save(source, entry(small_case(3), signature="a"))
    bad = source / corpus.FAILURES / "broken.json"
    bad.write_text('{"schema": 1, "kind": "fail')

    counts, errors = merge(target, [source])

    assert counts == {"added": 1, "replaced": 0, "kept": 0}
    assert len(errors) == 1 and str(bad) in errors[0]


# -- writing into a corpus that is not as expected --------------------------------------


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["umask-022", "umask-077", "umask-002"]
)
def test_a_saved_file_gets_the_mode_an_ordinary_file_gets_under_the_umask(
    tmp_path: Path, umask: int, mode: int
) -> None:
    previous = os.umask(umask)
    try:
        save(tmp_path, entry(small_case(4)))
        save(tmp_path, entry(small_case(3)))  # a replacement too
    finally:
        os.umask(previous)

    [path] = files_under(tmp_path)
    assert _load_finding(path).case == small_case(3)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def _in_the_way(directory: Path, saved: Finding) -> Path:
    """A directory where ``saved``'s file would go."""
    path = directory / corpus.FAILURES / filename(saved)
    path.mkdir(parents=True)
    return path


def test_a_directory_where_a_file_would_be_saved_is_a_corpus_error_naming_it(tmp_path: Path) -> None:
    blocked = entry(small_case(3))
    path = _in_the_way(tmp_path, blocked)

    with pytest.raises(CorpusError) as raised:
        save(tmp_path, blocked)

    assert_names_file_and_problem(str(raised.value), path, ["cannot save", "directory"])
    assert path.is_dir() and not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_merging_carries_on_past_an_entry_that_cannot_be_saved(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    entries = [entry(small_case(3 + i), signature=f"values:{i}") for i in range(3)]
    for saved in entries:
        save(source, saved)
    path = _in_the_way(target, entries[1])

    counts, errors = merge(target, [source])

    assert counts == {"added": 2, "replaced": 0, "kept": 0}
    [error] = errors
    assert_names_file_and_problem(error, path, ["cannot save"])
    assert sorted(e.verdict.signature for _, e in load(target).entries) == ["values:0", "values:2"]


def test_saving_findings_says_which_could_not_be_saved_and_saves_the_others(tmp_path: Path) -> None:
    found = [Finding("loop", small_case(3 + i), failure("values", "wrong values", f"rows {i}")) for i in range(2)]
    result = CampaignResult(seed=1, findings=found)
    blocked = Finding("loop", found[0].case, Verdict(FAILED, Kind.VALUES, "", found[0].verdict.signature))
    path = _in_the_way(tmp_path, blocked)

    lines = save_findings(result.findings, result.seed, tmp_path)

    assert lines[0].startswith(f"corpus: NOT saved: {path}: cannot save")
    assert lines[1].startswith("corpus: added ")
    assert [e.case for _, e in load(tmp_path).entries] == [found[1].case]


# -- concurrency -----------------------------------------------------------------------


def _save_all(directory: str, entries: list[Finding], barrier: Any, results: Any) -> None:
    barrier.wait()  # every process starts saving at the same moment
    results.put(("saver", [save(Path(directory), e) for e in entries]))


def _read_until(directory: str, barrier: Any, stop: Any, results: Any) -> None:
    """Parse every stored entry over and over while the savers run: none may ever be torn."""
    folder, errors, reads = Path(directory) / corpus.FAILURES, [], 0
    barrier.wait()
    while not stop.is_set() or not reads:
        for path in folder.glob("[!.]*.json"):  # the entries, not a save's temporary file
            try:
                load_file(path)
                reads += 1
            except CorpusError as error:
                errors.append(str(error))
            except FileNotFoundError:
                pass
    results.put(("reader", errors, reads))


def _random_entries(rng: random.Random, signatures: list[str], count: int) -> list[Finding]:
    entries = []
    for _ in range(count):
        case = small_case(
            rng.randint(1, 12), rng.randint(1, 12), channels=rng.randint(1, 4), seed=rng.randint(0, 10**6)
        )
        entries.append(entry(case, "loop", rng.choice(signatures)))
    return entries


def test_concurrent_saves_from_several_processes_keep_one_smallest_file_per_signature_and_never_tear_one(
    tmp_path: Path,
) -> None:
    processes, saves = 4, 100
    signatures = [f"values:sig{i}" for i in range(6)]
    rng = random.Random(20240501)
    batches = [_random_entries(rng, signatures, saves) for _ in range(processes)]
    # fork: a spawned child spends seconds importing torch; these children only touch files.
    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else multiprocessing.get_context("spawn")
    )
    barrier, stop, results = context.Barrier(processes + 1), context.Event(), context.Queue()
    workers = [context.Process(target=_save_all, args=(str(tmp_path), batch, barrier, results)) for batch in batches]
    workers.append(context.Process(target=_read_until, args=(str(tmp_path), barrier, stop, results)))
    with warnings.catch_warnings():  # Python >= 3.12 warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        for worker in workers:
            worker.start()
    outcomes = [results.get(timeout=120)[1] for _ in batches]
    stop.set()
    _, read_errors, reads = results.get(timeout=60)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    assert reads > 0 and read_errors == []  # readers never see a torn file

    saved = [e for batch in batches for e in batch]
    used = {e.verdict.signature for e in saved}
    flat = [outcome for batch in outcomes for outcome in batch]
    assert len(flat) == processes * saves
    assert flat.count("added") == len(used)  # the lock: no two processes both "added" one file

    paths = files_under(tmp_path)
    assert all(p.parent == tmp_path / corpus.FAILURES for p in paths)
    assert sorted(p.name for p in paths) == sorted({filename(e) for e in saved})  # no temp files
    assert not [p for p in (tmp_path / corpus.FAILURES).iterdir() if p.name.startswith(".")]
    for path in paths:
        stored = _load_finding(path)
        candidates = [e.case for e in saved if e.verdict.signature == stored.verdict.signature]
        smallest = min(size(case) for case in candidates)
        assert size(stored.case) == smallest, stored.verdict.signature
        assert stored.case in candidates


def test_load_while_a_save_is_in_flight_does_not_read_its_temporary_file(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(3)))
    # What _write_atomically has on disk between mkstemp() and os.replace(): an empty temp file.
    handle, _ = tempfile.mkstemp(dir=tmp_path / corpus.FAILURES, prefix=".tmp-", suffix=".json")
    os.close(handle)

    loaded = load(tmp_path)

    assert len(loaded.entries) == 1
    assert loaded.errors == []


# -- bad files -------------------------------------------------------------------------

GOOD = to_json(entry(small_case(3)))


def with_changes(change: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(json.dumps(GOOD))
    change(data)
    return json.dumps(data, indent=2)


def without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def case_with(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["case"].update(fields)


def case_without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["case"].pop(key)


def shapes(*cases: Any) -> str:
    return json.dumps({"schema": SCHEMA, "kind": "shapes", "name": "resnet", "cases": list(cases)})


# (name, file contents, words the error must contain)
BAD_FILES: list[Any] = [
    ("truncated", json.dumps(GOOD, indent=2)[:57], ["not valid JSON"]),
    ("empty", "", ["not valid JSON"]),
    ("not-json", "schema = 1\nkind = failure\n", ["not valid JSON"]),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x80garbage", ["not a text file"]),
    ("array", json.dumps([GOOD]), ["JSON object"]),
    ("string", json.dumps("failure"), ["JSON object"]),
    ("schema-3", with_changes(lambda d: d.update(schema=3)), ["schema", "3"]),
    ("schema-string", with_changes(lambda d: d.update(schema="1")), ["schema"]),
    ("unknown-kind", with_changes(lambda d: d.update(kind="crash")), ["kind", "crash"]),
    *[
        (f"missing-{key}", with_changes(without(key)), [key])
        for key in ("schema", "kind", "implementation", "signature", "failure", "case")
    ],
    ("failure-without-kind", with_changes(lambda d: d["failure"].pop("kind")), ["failure", "kind"]),
    ("failure-not-object", with_changes(lambda d: d.update(failure="values")), ["failure"]),
    ("case-not-object", with_changes(lambda d: d.update(case=7)), ["case"]),
    ("case-missing-height", with_changes(case_without("height")), ["case", "height"]),
    ("case-unknown-field", with_changes(case_with(colour="red")), ["case", "colour"]),
    (
        "groups-not-dividing",
        with_changes(case_with(in_channels=3, out_channels=4, groups=2)),
        ["out of range", "groups"],
    ),
    ("negative-padding", with_changes(case_with(padding=-1)), ["out of range", "padding"]),
    ("zero-kernel", with_changes(case_with(kernel=[0, 1])), ["out of range", "kernel"]),
    ("kernel-too-large", with_changes(case_with(kernel=[5, 5])), ["out of range", "kernel"]),
    ("unknown-dtype", with_changes(case_with(dtype="float8")), ["out of range", "dtype"]),
    ("unknown-layout", with_changes(case_with(layout="sparse")), ["out of range", "layout"]),
    ("bad-case-id", with_changes(lambda d: d.update(case="mb1ic1oc1")), ["case id", "mb1ic1oc1"]),
    ("height-string", with_changes(case_with(height="3")), ["case"]),
    ("kernel-int", with_changes(case_with(kernel=3)), ["case"]),
    ("padding-null", with_changes(case_with(padding=None)), ["case"]),
    ("stride-triple", with_changes(case_with(stride=[1, 1, 1])), ["case"]),
    (
        "shapes-bad-id",
        shapes(small_case(3).id, "mb1ic1oc1g1ih3iw3kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seedx"),
        ["case id", "seedx"],
    ),
    ("shapes-not-an-id", shapes("resnet50-layer1"), ["case id", "resnet50-layer1"]),
    ("shapes-empty", shapes(), ["cases"]),
    (
        "shapes-invalid-problem",
        shapes("mb1ic3oc4g2ih3iw3kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"),
        ["groups"],
    ),
    ("seed-string", with_changes(case_with(seed="12")), ["seed"]),
    ("seed-negative", with_changes(case_with(seed=-5)), ["seed"]),
    ("bias-string", with_changes(case_with(bias="no")), ["bias"]),
    ("channels-float", with_changes(case_with(in_channels=2.0, out_channels=2.0)), ["in_channels"]),
    ("found-not-object", with_changes(lambda d: d.update(found="yesterday")), ["found"]),
    ("found-number", with_changes(lambda d: d.update(found=5)), ["found"]),
    ("deeply-nested", '{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}", ["JSON"]),
    ("huge-integer", with_changes(case_with(seed=0)).replace('"seed": 0', '"seed": ' + "9" * 5000), ["JSON"]),
    ("newline-in-field-name", with_changes(case_with(**{"col\nour": 1})), ["col\\nour"]),
    # Every field checked: none missing (not even one a Case has a default for), none
    # unknown, each of its JSON type, the copies of the case agreeing with it.
    *[
        (f"case-missing-{key}", with_changes(case_without(key)), ["case", "missing", key])
        for key in ("seed", "dtype", "bias", "stride", "layout", "device")
    ],
    ("schema-true", with_changes(lambda d: d.update(schema=True)), ["schema"]),
    ("kind-list", with_changes(lambda d: d.update(kind=["failure"])), ["kind"]),
    ("implementation-list", with_changes(lambda d: d.update(implementation=["loop"])), ["implementation", "string"]),
    ("signature-number", with_changes(lambda d: d.update(signature=3)), ["signature", "string"]),
    ("failure-message-number", with_changes(lambda d: d["failure"].update(message=3)), ["failure", "message"]),
    ("failure-unknown-field", with_changes(lambda d: d["failure"].update(colour="red")), ["failure"]),
    ("unknown-field", with_changes(lambda d: d.update(colour="red")), ["unknown", "colour"]),
    ("needs-numbers", with_changes(lambda d: d.update(needs=[1])), ["needs"]),
    ("id-not-the-case", with_changes(lambda d: d.update(id=small_case(4).id)), ["id", "case"]),
    ("data-other-generator", with_changes(lambda d: d["data"].update(generator="hash32-v0")), ["data", "hash32-v0"]),
    ("data-other-seed", with_changes(lambda d: d["data"].update(seed=99)), ["data", "99"]),
    (
        "shapes-name-number",
        json.dumps({"schema": SCHEMA, "kind": "shapes", "name": 5, "cases": [small_case(3).id]}),
        ["name", "string"],
    ),
    ("shapes-case-number", shapes(small_case(3).id, 7), ["cases[1]"]),
    ("stride-beyond-int64", with_changes(case_with(stride=2**63)), ["stride", "2**63"]),
    # Within range but too large to run: refused on the numbers, before anything is allocated.
    ("too-many-elements", with_changes(case_with(height=100_000, width=100_000)), ["too large", "--max-elements"]),
    (
        "too-many-macs",
        with_changes(case_with(in_channels=512, out_channels=512, height=90, width=90, kernel=[3, 3], padding=1)),
        ["too large", "--max-macs"],
    ),
    (
        "shapes-too-large",
        shapes(small_case(3).id, small_case(100_000, 100_000).id),
        ["cases[1]", "too large", "--max-elements"],
    ),
]


def write(path: Path, contents: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        path.write_text(contents)
    return path


def assert_names_file_and_problem(message: str, path: Path, words: list[str]) -> None:
    assert str(path) in message
    assert "\n" not in message, message
    for word in words:
        assert word.lower() in message.lower(), (word, message)


@pytest.mark.parametrize(
    ("name", "contents", "words"), BAD_FILES, ids=[p[0] if type(p) is tuple else p.values[0] for p in BAD_FILES]
)
def test_a_bad_file_raises_corpus_error_naming_the_file_and_the_problem(
    tmp_path: Path, name: str, contents: str | bytes, words: list[str]
) -> None:
    path = write(tmp_path / f"{name}.json", contents)

    with pytest.raises(CorpusError) as raised:
        load_file(path)

    assert_names_file_and_problem(str(raised.value), path, words)


def _device(path: Path) -> None:
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")


@pytest.mark.parametrize(
    ("kind", "make"), [("directory", Path.mkdir), ("character device", _device)], ids=["directory", "device"]
)
def test_a_device_or_directory_named_json_is_skipped_with_a_line_naming_it(
    tmp_path: Path, kind: str, make: Callable[[Path], Any]
) -> None:
    save(tmp_path, entry(small_case(3)))
    path = tmp_path / corpus.FAILURES / "0-odd.json"
    make(path)

    with pytest.raises(CorpusError) as raised:
        load_file(path)
    loaded = load(tmp_path)

    assert_names_file_and_problem(str(raised.value), path, ["skipped", kind])
    assert [e.case for _, e in loaded.entries] == [small_case(3)]
    assert loaded.errors == [str(raised.value)]


LOAD_A_FIFO = """
import json, sys
from pathlib import Path
from harness.store.corpus import CorpusError, load, load_file
try:
    load_file(Path(sys.argv[2]))
except CorpusError as error:
    raised = str(error)
loaded = load(Path(sys.argv[1]))
print(json.dumps([raised, [e.case.id for _, e in loaded.entries], loaded.errors]))
"""


def test_a_fifo_named_json_is_skipped_with_a_line_naming_it_without_waiting_for_a_writer(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(3)))
    fifo = tmp_path / corpus.FAILURES / "0-odd.json"
    os.mkfifo(fifo)

    # In a child: a plain open() of a FIFO waits for a writer forever, and no signal is sure
    # to reach the thread it waits in.
    ran = subprocess.run(
        [sys.executable, "-c", LOAD_A_FIFO, str(tmp_path), str(fifo)], capture_output=True, text=True, timeout=60
    )
    raised, cases, errors = json.loads(ran.stdout)

    assert_names_file_and_problem(raised, fifo, ["skipped", "FIFO"])
    assert cases == [small_case(3).id] and errors == [raised]


def test_a_symbolic_link_out_of_the_corpus_is_skipped_and_one_inside_it_is_followed(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    save(elsewhere, entry(small_case(3), signature="outside"))
    save(root, entry(small_case(4), signature="inside"))
    [outside] = (elsewhere / corpus.FAILURES).iterdir()
    [inside] = (root / corpus.FAILURES).iterdir()
    out_link, in_link = root / corpus.SHAPES / "out.json", root / corpus.SHAPES / "in.json"
    out_link.parent.mkdir()
    out_link.symlink_to(outside)
    in_link.symlink_to(Path("..") / corpus.FAILURES / inside.name)

    loaded = load(root)

    assert sorted(path.name for path, _ in loaded.entries) == sorted([inside.name, "in.json"])
    [error] = loaded.errors
    assert_names_file_and_problem(error, out_link, ["skipped", "link out of the corpus"])


def test_load_reads_only_the_corpus_folders_never_the_crash_journal_or_dot_files(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(3)))
    write(tmp_path / corpus.SHAPES / "net.json", shapes(small_case(4).id))
    journal = Journal(tmp_path)  # what a running (or killed) campaign leaves in the corpus
    journal.running("loop", small_case(5))
    ignored = [
        write(tmp_path / ".hidden" / corpus.FAILURES / "x.json", "{"),
        write(tmp_path / corpus.FAILURES / ".x.json", "{"),
        write(tmp_path / corpus.FAILURES / "notes.txt", "{"),
        write(tmp_path / "stray.json", "{"),
        write(tmp_path / corpus.FAILURES / "nested" / "x.json", "{"),
    ]
    try:
        loaded = load(tmp_path)
    finally:
        journal.close()

    assert loaded.errors == []
    assert [e.case for _, e in loaded.entries] == [small_case(3)]
    assert [s.cases for _, s in loaded.shape_sets] == [(small_case(4),)]
    assert all(path.exists() for path in ignored)


def test_the_size_limits_are_the_callers_to_raise_or_lower(tmp_path: Path) -> None:
    large = small_case(5000, 5000)  # 50,000,001 elements: over the default limit
    save(tmp_path, entry(large, signature="large"))
    save(tmp_path, entry(small_case(3), signature="small"))

    by_default = load(tmp_path)
    raised = load(tmp_path, Limits(elements=large.elements))
    lowered = load(tmp_path, Limits(elements=large.elements, macs=large.macs - 1))

    assert [e.verdict.signature for _, e in by_default.entries] == ["small"]
    assert len(by_default.errors) == 1 and "--max-elements" in by_default.errors[0]
    assert sorted(e.verdict.signature for _, e in raised.entries) == ["large", "small"] and raised.errors == []
    assert [e.verdict.signature for _, e in lowered.entries] == ["small"]
    assert len(lowered.errors) == 1 and "--max-macs" in lowered.errors[0]


def test_the_shipped_shape_sets_are_within_the_default_limits_as_replayed() -> None:
    shipped = load(SHIPPED)

    assert shipped.errors == [] and len(shipped.shape_sets) == 3
    for target in targets_from(shipped):  # at batch 1
        Limits().check(target.case)


@pytest.mark.parametrize(
    "contents",
    [
        with_changes(lambda d: d.update(case="mb1" + "x" * 100_000)),
        shapes("mb1ic1oc1g1ih3iw3kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0" + "0" * 100_000),
        with_changes(lambda d: d.update(implementation="i" * 100_000, id="x" * 100_000)),
    ],
    ids=["bad-id", "long-number", "long-id-field"],
)
def test_an_error_about_a_long_field_is_one_short_line(tmp_path: Path, contents: str) -> None:
    path = write(tmp_path / "long.json", contents)

    with pytest.raises(CorpusError) as raised:
        load_file(path)

    assert "\n" not in str(raised.value) and len(str(raised.value)) < 1000
    assert "more characters" in str(raised.value) or "digits" in str(raised.value)


def test_a_file_larger_than_any_corpus_file_is_an_error_and_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.json", with_changes(lambda d: d.update(found={"pad": "x" * corpus.MAX_FILE_BYTES})))

    with pytest.raises(CorpusError) as raised:
        load_file(path)

    assert_names_file_and_problem(str(raised.value), path, ["too large"])


def test_load_reports_every_bad_file_loads_every_good_one_and_changes_nothing(tmp_path: Path) -> None:
    good = [entry(small_case(3 + i), signature=f"values:{i}") for i in range(3)]
    for e in good:
        save(tmp_path, e)
    write(tmp_path / "shapes" / "resnet.json", shapes(small_case(3).id, RICH_CASES[0].id))
    plain = BAD_FILES
    bad = [write(tmp_path / corpus.FAILURES / f"bad-{name}.json", contents) for name, contents, _ in plain]
    before = snapshot(tmp_path)

    loaded = load(tmp_path)

    assert snapshot(tmp_path) == before
    assert {e.verdict.signature: e for _, e in loaded.entries} == {e.verdict.signature: e for e in good}
    [(_, shape_set)] = loaded.shape_sets
    assert shape_set == ShapeSet("resnet", (small_case(3), RICH_CASES[0]))
    assert len(loaded.errors) == len(bad)
    for path, (_, _, words) in zip(bad, plain):
        [error] = [error for error in loaded.errors if error.startswith(f"{path}:")]
        assert_names_file_and_problem(error, path, words)


@pytest.mark.parametrize(
    "contents", [with_changes(lambda d: d.update(found=5)), "[" * 100_000], ids=["found-number", "deeply-nested"]
)
def test_load_survives_a_file_that_load_file_cannot_classify(tmp_path: Path, contents: str) -> None:
    save(tmp_path, entry(small_case(3)))
    bad = write(tmp_path / corpus.FAILURES / "bad.json", contents)

    loaded = load(tmp_path)

    assert len(loaded.entries) == 1
    assert len(loaded.errors) == 1 and loaded.errors[0].startswith(str(bad))


def test_load_is_in_a_stable_order(tmp_path: Path) -> None:
    for i in range(5):
        save(tmp_path, entry(small_case(3 + i), signature=f"values:{i}"))
    paths = [path for path, _ in load(tmp_path).entries]
    assert paths == sorted(paths)
    assert paths == [path for path, _ in load(tmp_path).entries]


class _Touch:
    """Unpickling this creates ``marker``: proof that a loader executed the payload."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_payload_is_an_error_and_is_never_unpickled(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "executed"
    path = write(
        tmp_path / "corpus" / corpus.FAILURES / "payload.json", pickle.dumps(_Touch(str(marker)), protocol=protocol)
    )

    with pytest.raises(CorpusError) as raised:
        load_file(path)
    loaded = load(tmp_path / "corpus")

    assert str(path) in str(raised.value)
    assert loaded.entries == [] and len(loaded.errors) == 1
    assert not marker.exists()


def test_python_code_in_a_corpus_file_is_an_error_and_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    path = write(tmp_path / "corpus" / corpus.FAILURES / "code.json", code)
    as_string = write(
        tmp_path / "corpus" / corpus.FAILURES / "string.json",
        with_changes(lambda d: d.update(case=f"__import__('os').system('touch {marker}')")),
    )

    loaded = load(tmp_path / "corpus")

    assert loaded.entries == []
    assert sorted(loaded.errors)[0].startswith(str(path))
    assert sorted(loaded.errors)[1].startswith(str(as_string))
    assert not marker.exists()


def test_loading_a_missing_directory_reports_an_error_instead_of_raising(tmp_path: Path) -> None:
    missing = tmp_path / "no-corpus-here"

    loaded = load(missing)

    assert loaded.entries == [] and loaded.shape_sets == []
    assert len(loaded.errors) == 1
    assert str(missing) in loaded.errors[0] and "no such" in loaded.errors[0]
    assert not missing.exists()


# -- replay ----------------------------------------------------------------------------


def _correct(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups) + 1


@declare(known_buggy=True)
def _known_off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups) + 1


CORRECT = implementation_from("correct", _correct)
BROKEN = implementation_from("broken", _off_by_one)
CANARY = implementation_from("canary", _known_off_by_one)
REPLAY_CASE = Case(
    batch=1, in_channels=2, out_channels=3, groups=1, height=5, width=4, kernel=(3, 3), padding=1, bias=True, seed=7
)


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Any]:
    found = check_case(REPLAY_CASE, [CORRECT, BROKEN, CANARY])
    assert not found["correct"].failed and found["broken"].failed and found["canary"].failed
    assert found["broken"].signature == found["canary"].signature
    return found


def recorded(implementation: str, verdict: Any) -> Target:
    saved = entry(REPLAY_CASE, implementation, verdict.signature, verdict.kind, verdict.message)
    return Target("corpus/failures/x.json", REPLAY_CASE, saved)


def test_a_known_buggy_implementation_failing_the_same_way_is_still_failing_as_expected(
    verdicts: dict[str, Any],
) -> None:
    row = judge_row(recorded("canary", verdicts["canary"]), CANARY, verdicts["canary"])
    assert (row.implementation, row.outcome, row.expected) == ("canary", STILL_FAILING, True)


def test_a_correct_claiming_implementation_still_failing_is_unexpected(verdicts: dict[str, Any]) -> None:
    row = judge_row(recorded("broken", verdicts["broken"]), BROKEN, verdicts["broken"])
    assert (row.outcome, row.expected) == (STILL_FAILING, False)


def test_a_recorded_implementation_that_now_passes_is_fixed(verdicts: dict[str, Any]) -> None:
    was_broken = implementation_from("broken", _correct)  # the same name, now the fixed code
    target = recorded("broken", verdicts["broken"])
    now = check_case(REPLAY_CASE, [was_broken])["broken"]

    row = judge_row(target, was_broken, now)

    assert (row.outcome, row.expected) == (FIXED, True)


def test_a_recorded_implementation_failing_differently_is_reported_by_its_new_kind(verdicts: dict[str, Any]) -> None:
    target = Target("x.json", REPLAY_CASE, entry(REPLAY_CASE, "broken", "exception:IndexError@x.py:1", "exception"))
    row = judge_row(target, BROKEN, verdicts["broken"])
    assert (row.outcome, row.expected) == ("failed (values)", False)


def _raises(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    raise IndexError("index 3 is out of bounds")


def test_a_recorded_implementation_failing_with_the_same_kind_but_another_signature_is_not_still_failing() -> None:
    raising = implementation_from("raising", _raises)
    verdict = check_case(REPLAY_CASE, [raising])["raising"]
    assert verdict.kind == "exception" and verdict.signature.startswith("exception:IndexError@")
    # Recorded: a different bug of the same kind (another exception, raised elsewhere).
    elsewhere = Target(
        "x.json",
        REPLAY_CASE,
        entry(REPLAY_CASE, "raising", "exception:KeyError@other.py:9", "exception", "KeyError: 3 (at other.py:9)"),
    )
    same = Target("x.json", REPLAY_CASE, entry(REPLAY_CASE, "raising", verdict.signature, "exception"))

    assert judge_row(same, raising, verdict).outcome == STILL_FAILING
    assert judge_row(elsewhere, raising, verdict).outcome == "failed (exception)"


def test_other_implementations_on_a_recorded_case_are_judged_by_their_own_verdicts(verdicts: dict[str, Any]) -> None:
    target = recorded("canary", verdicts["canary"])

    passing = judge_row(target, CORRECT, verdicts["correct"])
    failing = judge_row(target, BROKEN, verdicts["broken"])

    assert (passing.outcome, passing.expected) == ("passed", True)
    assert (failing.outcome, failing.expected) == ("failed (values)", False)


def test_cases_of_an_implementation_not_replayed_are_a_note_and_still_run(tmp_path: Path) -> None:
    save(tmp_path, entry(small_case(3), "canary", "values:a"))
    save(tmp_path, entry(small_case(4), "gone.py:conv2d", "values:b"))
    save(tmp_path, entry(small_case(5), "gone.py:conv2d", "values:c"))
    loaded = load(tmp_path)

    assert absent(loaded, [CORRECT, CANARY]) == [
        "2 case(s) recorded against 'gone.py:conv2d', which this replay does not run; they are run against the others"
    ]
    rows = replay(targets_from(loaded), [CORRECT])
    assert sorted(row.target.case.id for row in rows) == sorted(e.case.id for _, e in loaded.entries)
    assert all(row.expected and row.outcome == "passed" for row in rows)


@pytest.mark.parametrize(
    "spelling",
    [
        "/home/someone/work/my_conv.py:conv2d",
        "./my_conv.py:conv2d",
        "my_conv.py:conv2d",
        "../elsewhere/my_conv.py:conv2d",
    ],
)
def test_a_file_implementation_is_the_same_implementation_however_its_path_is_spelled(
    spelling: str, verdicts: dict[str, Any]
) -> None:
    recorded = entry(REPLAY_CASE, "/tmp/x/my_conv.py:conv2d", verdicts["broken"].signature, "values")
    target = Target("corpus", REPLAY_CASE, recorded)
    row = judge_row(target, dataclasses.replace(BROKEN, name=spelling), verdicts["broken"])
    assert row.outcome == STILL_FAILING
    assert identity(spelling) == "my_conv.py:conv2d"


def test_a_saved_file_implementation_is_recorded_without_its_folder(tmp_path: Path) -> None:
    result = CampaignResult(
        seed=1, findings=[Finding("/home/me/proj/my_conv.py:conv2d", small_case(3), failure("values", "wrong"))]
    )
    save_findings(result.findings, result.seed, tmp_path)
    ((_, saved),) = load(tmp_path).entries
    assert saved.implementation == "my_conv.py:conv2d"


def test_replaying_a_saved_corpus_says_still_failing_and_fixed(tmp_path: Path, verdicts: dict[str, Any]) -> None:
    save(tmp_path, entry(REPLAY_CASE, "canary", verdicts["canary"].signature, "values"))
    save(tmp_path, entry(REPLAY_CASE, "correct", "values:old bug", "values"))

    rows = replay(targets_from(load(tmp_path)), [CORRECT, CANARY])

    outcomes = {}
    for row in rows:
        assert row.target.entry is not None  # every target is a saved finding
        outcomes[(row.target.entry.implementation, row.implementation)] = (row.outcome, row.expected)
    assert outcomes == {
        ("canary", "canary"): (STILL_FAILING, True),
        ("canary", "correct"): ("passed", True),
        ("correct", "canary"): ("failed (values)", True),
        ("correct", "correct"): (FIXED, True),
    }
