"""The matrix: findings by torch version, each cell the replay of that case under that version.

The table is built from fabricated reports (what the children write), and once for real over
two interpreters that tox.ini names: /work/venv's own torch, and the same Python as a second
"version" that sets PLANTED_FAKE_TORCH, under which tests/planted_bugs.py's
`wrong_on_fake_torch` ignores the bias (the issue's "fake the second with a declared
disagreement"): no tox env has to exist.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import matrix_cli
from harness.arguments import build_parser
from harness.backends.versions import Env, tox_envs
from harness.matrix_cli import command_matrix
from harness.model.case import Case
from harness.model.finding import Finding
from harness.model.verdict import failure
from harness.reporting.matrix import (
    BUG,
    CRASH,
    NOT_REACHED,
    NOT_RUN,
    OK,
    Cell,
    Column,
    Found,
    Matrix,
    ReportError,
    cells_from,
    findings_from,
    markdown,
    rows_of,
    to_json,
)
from harness.store.corpus import save_findings

PLANTED = str(Path(__file__).parent / "planted_bugs.py")
CASE = "mb1ic1oc1g1ih3iw3kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"
OTHER = "mb1ic1oc1g1ih4iw4kh1kw1s2p0d1-nobias-float32-contiguous-uniform-cpu-seed0"


def _campaign(name: str, *failures: tuple[str, str, str], expected: tuple[str, str] | None = None) -> dict[str, Any]:
    """A campaign report as `CampaignReport.to_json` writes it, with only what the matrix reads."""
    return {
        "environment": {"torch": "2.13.0+cpu"},
        "implementations": {
            name: {
                "failures": [{"kind": kind, "case": case, "message": message} for kind, case, message in failures],
                "expected": [] if expected is None else [{"case": expected[0], "reason": expected[1], "happened": 2}],
            }
        },
    }


def _replay(*rows: tuple[str, str, str, str | None]) -> dict[str, Any]:
    return {
        "rows": [
            {"implementation": name, "case": case, "status": status, "kind": kind, "message": "m"}
            for name, case, status, kind in rows
        ],
        "errors": [],
    }


def test_a_campaign_report_gives_its_failures_and_the_known_disagreements_it_saw() -> None:
    report = _campaign("x.py:f", ("values", CASE, "wrong"), expected=(OTHER, "torch's own bug"))
    assert findings_from(report) == [
        Found("x.py:f", CASE, "values", "wrong"),
        Found("x.py:f", OTHER, "expected", "known: torch's own bug"),
    ]


@pytest.mark.parametrize(
    "report",
    [
        [],
        {"implementations": []},
        {"implementations": {"f": {"failures": {}}}},
        {"implementations": {"f": {"failures": [{"kind": "values", "case": 7, "message": ""}]}}},
        {"implementations": {"f": {"failures": [], "expected": [{"case": CASE, "reason": "r", "happened": True}]}}},
    ],
)
def test_a_report_that_is_not_the_harnesss_is_refused(report: Any) -> None:
    with pytest.raises(ReportError):
        findings_from(report)


def test_each_replay_status_is_a_cell() -> None:
    cells = cells_from(
        _replay(
            ("/a/x.py:f", CASE, "failed", "values"),
            ("/a/x.py:f", OTHER, "failed", "crash"),
            ("g", CASE, "passed", None),
            ("g", OTHER, "skipped", None),
            ("h", CASE, "expected", None),
        )
    )
    # keyed by identity: the same file's function however its path is spelled
    assert cells[("x.py:f", CASE)] == Cell(BUG, "values") and str(cells[("x.py:f", CASE)]) == "bug (values)"
    assert cells[("x.py:f", OTHER)] == Cell(CRASH) and cells[("g", CASE)] == Cell(OK)
    assert cells[("g", OTHER)].state == NOT_REACHED and cells[("h", CASE)].state == "expected"
    with pytest.raises(ReportError):
        cells_from({"rows": [{"implementation": "g", "case": CASE, "status": "failed", "kind": None}]})


def _matrix() -> Matrix:
    columns = [
        Column("torch2.5", "2.5.1"),
        Column("torch2.8", "2.8.0"),
        Column("torch2.10", "2.10.0"),
        Column("torch2.12", "2.12.1"),
        Column("torch2.14", "2.14.1"),
    ]
    found = [
        ("torch2.10", Found("f", CASE, "values", "wrong")),
        ("torch2.12", Found("f", CASE, "values", "again")),
        ("torch2.5", Found("g", OTHER, "crash", "died")),
        ("corpus", Found("h", CASE, "shape", "short")),
    ]
    rows = rows_of(found)
    cells = {
        "f": [Cell(OK), Cell(NOT_REACHED), Cell(BUG, "values"), Cell(BUG, "values"), Cell(OK)],
        "g": [Cell(CRASH), Cell(CRASH), Cell(BUG, "values"), Cell(BUG, "values"), Cell(BUG, "values")],
        "h": [Cell(BUG, "shape")] * 4 + [Cell(NOT_RUN)],
    }
    for row in rows:
        row.cells = cells[row.found.implementation]
    return Matrix(1, 50, columns, rows)


def test_a_finding_that_flips_names_where_it_appears_and_where_it_is_gone() -> None:
    matrix = _matrix()
    f, g, h = matrix.rows
    assert f.origins == ["torch2.10", "torch2.12"] and f.found.diagnosis == "wrong"  # the first to find it
    # 2.8 did not reach it: 2.10 is where it appears after 2.5 passed
    assert f.changes(matrix.columns) == ["appears in 2.10.0", "gone in 2.14.1"]
    assert g.changes(matrix.columns) == ["crash -> bug (values) in 2.10.0"]
    assert h.changes(matrix.columns) == [] and h.origins == ["corpus"]
    data = to_json(matrix)
    assert data["findings"][0]["cells"]["torch2.8"] == {"state": NOT_REACHED}
    assert data["findings"][0]["changes"] == ["appears in 2.10.0", "gone in 2.14.1"]
    table = markdown(matrix)
    assert (
        "| `f` | `" + CASE + "` | values | wrong | ok | not reached | bug (values) | bug (values) | ok | "
        "appears in 2.10.0; gone in 2.14.1 |" in table
    )
    assert "| `2.5.1` | `2.8.0` | `2.10.0` | `2.12.1` | `2.14.1` | changes |" in table


def test_a_column_is_named_by_its_torch_unless_its_env_says_another() -> None:
    assert Column("torch2.14", "2.14.1").name == "2.14.1"
    assert Column("torch2.1", "2.14.1").name == "torch2.1 (torch 2.14.1)"
    assert Column("torch9.9", "2.13.0+cpu").name == "torch9.9 (torch 2.13.0+cpu)"
    assert Column("torch2.8").name == "torch2.8"


def test_hostile_names_and_messages_are_shown_and_do_nothing() -> None:
    name = "evil|`<script>alert(1)</script>\x1b[2J\nfake | row |"
    rows = rows_of([("torch2.13", Found(name, "id|`x", "values", "a | b <img src=x>\x1b]0;title\x07"))])
    rows[0].cells = [Cell(BUG, "values")]
    table = markdown(Matrix(1, 10, [Column("torch2.13", "2.13.0+`|", problem="x\ny|z")], rows))
    assert "\x1b" not in table and "\x07" not in table and "evil\\|" in table and "\\x1b" in table
    assert not re.search(r"(?<!\\)[<`]script", table) and "\\<img" in table  # escaped, never HTML
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| implementation"))
    (row,) = [line for line in lines if line.startswith("| evil")]
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == len(re.split(r"(?<!\\)\|", header)) == 8  # nothing added a cell
    assert "fake" in row and len([line for line in lines if "fake" in line]) == 1  # the newline made no line


def test_tox_ini_names_the_torch_envs_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "tox.ini").write_text(
        "[tox]\nenv_list = lint, torch2.13\n[testenv]\ndeps =\n"
        "    torch2.13: torch==2.13.0+cpu\n    torch2.10: torch==2.10.0\n"
        "[testenv:torch2.9]\ndeps = torch==2.9.1\n[testenv:fuzz]\ndeps = torch\n"
    )
    (tmp_path / ".tox" / "torch2.10" / "bin").mkdir(parents=True)
    (tmp_path / ".tox" / "torch2.10" / "bin" / "python").write_text("")
    envs = tox_envs(tmp_path / "tox.ini")
    assert [(env.name, env.pin, env.created) for env in envs] == [
        ("torch2.9", "torch==2.9.1", False),
        ("torch2.10", "torch==2.10.0", True),
        ("torch2.13", "torch==2.13.0+cpu", False),
    ]
    assert [env.download_gb for env in envs] == [5, 5, 0.3]


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["matrix", *argv])


def test_usage_errors_are_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command_matrix(_args("--tox-ini", str(tmp_path / "none.ini"))) == 2
    (tmp_path / "tox.ini").write_text("[testenv]\ndeps =\n    torch2.13: torch==2.13.0\n")
    assert command_matrix(_args("--tox-ini", str(tmp_path / "tox.ini"), "--env", "torch1.0")) == 2
    assert command_matrix(_args("--tox-ini", str(tmp_path / "tox.ini"), "--corpus", str(tmp_path / "none"))) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "none.ini: cannot read it" in lines[0] and "--env torch1.0" in lines[1]
    assert "--corpus" in lines[2] and "not a directory" in lines[2]


def _interpreter(root: Path, env: str, variables: str = "") -> None:
    python = root / ".tox" / env / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\n{variables} exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)


def test_a_real_matrix_over_two_interpreters_shows_the_flip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tox.ini").write_text(
        "[tox]\nenv_list = torch2.13, torch9.9\n[testenv]\ndeps =\n"
        "    torch2.13: torch==2.13.0+cpu\n    torch9.9: torch==9.9\n"
        "    torch9.10: torch==9.10\n"
    )
    _interpreter(tmp_path, "torch2.13")
    _interpreter(tmp_path, "torch9.9", "PLANTED_FAKE_TORCH=1")  # torch9.10 is not created: skipped, said so
    status = command_matrix(
        _args(
            "--tox-ini",
            str(tmp_path / "tox.ini"),
            "--seed",
            "1",
            "--max-examples",
            "50",
            "--impl",
            f"{PLANTED}:wrong_on_fake_torch",
            "--impl",
            f"{PLANTED}:drops_last_row",
            "--output",
            str(tmp_path / "m.md"),
            "--report",
            str(tmp_path / "m.json"),
        )
    )
    assert status == 0
    data = json.loads((tmp_path / "m.json").read_text())
    assert [v["env"] for v in data["versions"]] == ["torch2.13", "torch9.9"] and data["complete"]
    assert data["notes"] == ["torch9.10: not created: run with --create (downloads ~5 GB)"]
    rows = {Path(row["implementation"]).name: row for row in data["findings"]}
    flips = rows["planted_bugs.py:wrong_on_fake_torch"]
    # found by torch9.9's campaign only; replayed under torch2.13, the same case passes
    assert flips["found_by"] == ["torch9.9"] and flips["kind"] == "values"
    assert flips["cells"] == {"torch2.13": {"state": OK}, "torch9.9": {"state": BUG, "kind": "values"}}
    # Both interpreters are this one: each reports the torch installed here.
    here = torch.__version__
    assert flips["changes"] == [f"appears in torch9.9 (torch {here})"]
    stays = rows["planted_bugs.py:drops_last_row"]
    assert {cell["state"] for cell in stays["cells"].values()} == {BUG} and stays["changes"] == []
    table = (tmp_path / "m.md").read_text()
    assert f"| ok | bug (values) | appears in torch9.9 \\(torch {here}\\) |" in table
    progress = capsys.readouterr().err
    assert re.search(rf"torch9\.9: torch {re.escape(here)}: 1 finding\(s\) in \d+\.\ds", progress)


FAKE_HARNESS = '''#!{python}
"""Stands in for `python -m harness replay CASE... --impl=I --report R`: several cases at once
die without a report, as a crash takes the whole child; one case at a time, CASE passes,
OTHER dies, anything else is refused as a usage error."""
import json, os, sys
arguments = sys.argv[4:]  # after -m harness replay
cases = [a for a in arguments if not a.startswith("--") and a != arguments[-1]]
implementation = next(a for a in arguments if a.startswith("--impl=")).removeprefix("--impl=")
if len(cases) > 1 or cases == ["{other}"]:
    os._exit(1)
if cases != ["{case}"]:
    sys.exit(2)
row = {{"implementation": implementation, "case": cases[0], "status": "passed", "kind": None, "message": ""}}
open(arguments[-1], "w").write(json.dumps({{"rows": [row], "errors": []}}))
'''


def test_a_replay_that_dies_is_replayed_case_by_case_and_the_case_that_kills_it_is_a_crash(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text(FAKE_HARNESS.format(python=sys.executable, case=CASE, other=OTHER))
    python.chmod(0o755)
    cells, seconds = matrix_cli._replay(Env("torch2.13", "", python), "f", [CASE, OTHER, "refused"], tmp_path)
    assert cells == {
        ("f", CASE): Cell(OK),
        ("f", OTHER): Cell(CRASH, why="exit status 1"),
        ("f", "refused"): Cell(NOT_REACHED, why="exit status 2"),
    }
    assert seconds > 0


def test_a_version_that_cannot_be_run_is_said_and_the_status_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tox.ini").write_text("[testenv]\ndeps =\n    torch2.8: torch==2.8.0\n    torch2.13: torch==2.13.0\n")
    _interpreter(tmp_path, "torch2.13", "exit 3;")  # its campaign writes no report
    monkeypatch.setattr(matrix_cli, "create", lambda env, tox_ini: f"tox -e {env.name} --notest exited 1")
    status = command_matrix(
        _args("--tox-ini", str(tmp_path / "tox.ini"), "--create", "--seed", "1", "--report", str(tmp_path / "m.json"))
    )
    assert status == 1
    data = json.loads((tmp_path / "m.json").read_text())
    assert [(v["env"], v["problem"]) for v in data["versions"]] == [
        ("torch2.8", "tox -e torch2.8 --notest exited 1"),
        ("torch2.13", "its campaign wrote no report (exit status 3)"),
    ]
    assert not data["complete"] and "NOT RUN: its campaign wrote no report" in capsys.readouterr().out


def test_the_corpus_gives_rows_of_the_implementations_run(tmp_path: Path) -> None:
    """A saved failure is a row, under the spec given for its implementation (the corpus keeps
    a file's name only); one of an implementation not named is left out; all are kept when
    none is named."""
    mine, theirs = Case.from_id(CASE), Case.from_id(OTHER)
    save_findings(
        [
            Finding("/elsewhere/planted_bugs.py:ignores_bias", mine, failure("values", "wrong", "bias")),
            Finding("loop", theirs, failure("shape", "short")),
        ],
        1,
        tmp_path,
    )
    rows = matrix_cli._corpus(tmp_path, [f"{PLANTED}:ignores_bias"])
    assert [(f.implementation, f.case, f.kind) for f in rows] == [(f"{PLANTED}:ignores_bias", CASE, "values")]
    assert {f.implementation for f in matrix_cli._corpus(tmp_path, [])} == {"planted_bugs.py:ignores_bias", "loop"}
    assert matrix_cli._corpus(None, []) == []
