"""Limits in the units that cost, declarations read as written, and reports that keep a
message whole and let none of it act: what `hostile_declared` and a few cases try.

Each limit is checked by what the harness says (the refusal, the note), never by the
memory or the time it would have cost had it not refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import hostile_declared
import pytest

from harness.cli import main
from harness.model import registry as registry_module
from harness.model.capabilities import Capabilities, Declaration, declaration_of, declare
from harness.model.case import Case, CaseError, Limits
from harness.model.registry import ENTRY_POINT_GROUP, discover

HOSTILE = str(Path(hostile_declared.__file__).resolve())
# Six elements as written (1 input, 4 weight, 1 output), 512 million once padded and dilated:
# replaying it peaked at 4.3 GB.
SPREAD = "mb1ic1oc1g1ih1iw1kh2kw2s1p8000d16000-nobias-float32-contiguous-uniform-cpu-seed0"


def _harness(*arguments: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# -- the element limit counts what is allocated --------------------------------------------


def test_padding_and_dilation_count_toward_the_element_limit() -> None:
    case = Case.from_id(SPREAD)
    padded, dilated, output = 16001 * 16001, 16001 * 16001, 1
    assert case.elements == padded + dilated + output
    with pytest.raises(CaseError) as refused:
        Limits().check(case)
    assert str(refused.value) == (
        f"case {SPREAD!r} is too large: 512,064,003 elements (padded input + dilated "
        "weight + output), over the limit of 16,777,216; raise the limit with "
        "--max-elements N"
    )


def test_a_case_small_as_written_but_padded_past_the_limit_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["show", SPREAD]) == 2  # show runs nothing, so the case cannot cost anything here either way
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "512,064,003 elements (padded input + dilated weight" in captured.err


# -- --shards and --scheduler local:N are capped, with a note ------------------------------


def test_more_shards_than_cases_are_capped_with_a_note(tmp_path: Path) -> None:
    ran = _harness(
        "fuzz",
        "--impl",
        "loop",
        "--max-examples",
        "3",
        "--shards",
        "1000000",
        "--seed",
        "1",
        "--no-save",
        cwd=tmp_path,
        timeout=180,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert (
        "shards: --shards 1000000 is more than the campaign's 3 case(s) per implementation (each shard "
        "runs at least one); using 3"
    ) in ran.stdout
    assert "3 shard(s) with 1 worker(s)" in ran.stdout


def test_a_local_dask_cluster_is_capped_like_workers_with_a_note(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    # One shard: two local workers are one too many whatever the cores (and few enough to start
    # without the cap).
    ran = _harness(
        "fuzz",
        "--impl",
        "loop",
        "--max-examples",
        "1",
        "--scheduler",
        "local:2",
        "--seed",
        "1",
        "--no-save",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "workers: --scheduler local:2 is more than the campaign's 1 shard(s); using 1" in ran.stdout
    assert "1 shard(s) on Dask (local:1) with 1 worker(s)" in ran.stdout


# -- declarations are read as written, or refused naming the field -------------------------


@pytest.mark.parametrize("name", [function.__name__ for function in hostile_declared.DECLARED])
def test_a_declaration_of_the_wrong_type_or_range_is_a_one_line_usage_error_naming_the_field(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    declared, field = hostile_declared.DECLARED[getattr(hostile_declared, name)]
    assert main(["list", "--impl", f"{HOSTILE}:{name}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert f"capabilities: {field} must be " in captured.err and repr(declared[field]) in captured.err


def test_a_canary_declared_with_the_string_false_is_refused_not_taken_for_a_canary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = f"{HOSTILE}:off_by_one_known_buggy_as_a_string"
    assert main(["fuzz", "--impl", spec, "--max-examples", "20", "--seed", "1", "--no-save"]) == 2
    assert "known_buggy must be true or false, not 'false' (of type str)" in capsys.readouterr().err


def test_an_installed_plugin_declaring_what_cannot_be_read_is_not_loaded_and_the_others_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint("broken", "hostile_declared:groups_as_a_string", ENTRY_POINT_GROUP)
    installed = list(entry_points(group=ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*installed, broken])
    registry = discover()
    assert "broken" not in registry.implementations and "loop" in registry.implementations
    [error] = [e for e in registry.errors if e.name == "broken"]
    assert error.reason == "DeclarationError: capabilities: groups must be true or false, not 'false' (of type str)"


@pytest.mark.parametrize(
    "declared, field",
    [
        pytest.param({"known_buggy": "false"}, "known_buggy", id="known-buggy-string"),
        pytest.param({"groups": "false"}, "groups", id="groups-string"),
        pytest.param({"groups": 1}, "groups", id="groups-one"),
        pytest.param({"bias": None}, "bias", id="bias-null"),
        pytest.param({"max_in_channels": -1}, "max_in_channels", id="negative-count"),
        pytest.param({"max_in_channels": 0}, "max_in_channels", id="zero-count"),
        pytest.param({"max_out_channels": 2.5}, "max_out_channels", id="fractional-count"),
        pytest.param({"max_out_channels": True}, "max_out_channels", id="boolean-count"),
        pytest.param({"max_in_channels": "4"}, "max_in_channels", id="count-string"),
        pytest.param({"layouts": 1}, "layouts", id="choices-number"),
        pytest.param({"expected": "none"}, "expected", id="disagreements-string"),
        pytest.param({"limits": [{"require": {"dilation": 1}, "why": 3}]}, "limits[0].why", id="why-number"),
    ],
)
def test_declare_and_a_plain_dict_refuse_the_same_values_naming_the_field(declared: dict[str, Any], field: str) -> None:
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return input

    conv.__conv2d_declaration__ = declared  # type: ignore[attr-defined]
    for attempt in (lambda: declare(**declared), lambda: declaration_of(conv)):
        with pytest.raises(ValueError) as refused:
            attempt()
        assert str(refused.value).startswith(f"capabilities: {field} must be ") and "\n" not in str(refused.value)


def test_values_of_the_right_type_are_taken_as_they_were() -> None:
    assert declaration_of(
        declare(known_buggy=False, groups=False, max_in_channels=4)(lambda *a, **k: None)
    ) == Declaration(Capabilities(groups=False, max_in_channels=4), known_buggy=False)
    assert Capabilities.from_mapping({"max_out_channels": None, "dtypes": "float64"}).dtypes == ("float64",)


def test_unknown_fields_of_any_type_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError) as refused:
        Capabilities.from_mapping({1: True, "colour": "red"})  # type: ignore[dict-item]
    assert str(refused.value).startswith("capabilities: unknown field(s) 'colour', 1; known: algorithm, ")


# -- the JSON report keeps a message whole; the text shows both of its ends ---------------


def test_the_json_report_keeps_a_long_message_whole_and_the_text_line_keeps_its_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long, flood = f"{HOSTILE}:raises_a_long_message", f"{HOSTILE}:raises_a_flood"
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "fuzz",
                "--impl",
                long,
                "--impl",
                flood,
                "--max-examples",
                "100",
                "--seed",
                "1",
                "--no-save",
                "--report",
                str(report),
            ]
        )
        == 1
    )
    found = json.loads(report.read_text())["implementations"]
    (failure,) = found[long]["failures"]
    whole = "ValueError: " + "x" * 3000 + "\\nsecond line: the end (at hostile_declared.py:"
    assert failure["message"].startswith(whole)
    (failure,) = found[flood]["failures"]  # kept up to its limit, and said to be longer
    assert "y" * 4096 + "... (95904 more characters) (at hostile_declared.py:" in failure["message"]
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("    ValueError: xxx")]
    assert len(line) < 1100 and "more characters) ... " in line
    assert re.search(r"second line: the end \(at hostile_declared\.py:\d+\); fails this way only with bias$", line)


# -- the conformance table lets no name or message act --------------------------------------


def _hostile_table(tmp_path: Path) -> str:
    """The conformance table of `raises_a_hostile_message`, from a file whose name a terminal,
    HTML and a Markdown table would all act on."""
    name = "evil\x1b]0;title\x07 <script>alert(1)</script> | x ` y.py"  # a folder, "/", and a file
    (tmp_path / name).parent.mkdir()
    shutil.copy(HOSTILE, tmp_path / name)
    output = tmp_path / "table.md"
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert (
            main(
                [
                    "conformance",
                    "--impl",
                    f"{name}:raises_a_hostile_message",
                    "--max-examples",
                    "60",
                    "--seed",
                    "1",
                    "--output",
                    str(output),
                ]
            )
            == 1
        )
    finally:
        os.chdir(previous)
    return output.read_text()


def test_conformance_markdown_carries_no_control_character_html_or_stray_pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _hostile_table(tmp_path)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", table)
    assert "<script>" not in table and "</script>" not in table
    header, rule, row, *rest = table.splitlines()
    cells = header.count("|")
    assert len(re.findall(r"(?<!\\)\|", row)) == cells and rule.count("|") == cells
    (bug,) = [line for line in rest if line.startswith("1. ")]
    assert r"1. evil\\x1b\]0;title\\x07 \<script\>alert\(1\)\</script\> \| x \` y.py:raises\_a\_hostile\_message" in bug


def test_conformance_markdown_renders_each_name_and_message_as_the_text_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    table = _hostile_table(tmp_path)
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(table)
    assert "<script>" not in html
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.DOTALL)
    assert len({row.count("<t") for row in rows}) == 1  # every row as many cells as the header
    shown = "evil\\x1b]0;title\\x07 &lt;script&gt;alert(1)&lt;/script&gt; | x ` y.py"
    assert shown in rows[1] and "<li>" in html and shown in html.split("<li>")[1]
