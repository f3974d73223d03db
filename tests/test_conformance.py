"""The conformance table: one row per implementation, each cell what the campaign found there."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.campaign.engine import fuzz
from harness.cli import main
from harness.model.capabilities import Capabilities
from harness.model.registry import Unavailable, discover
from harness.reporting.conformance import COLUMNS, declared_out, markdown
from harness.reporting.report import campaign_report

NAMES = ["loop", "original"]


@pytest.fixture(scope="module")
def table() -> str:
    registry = discover(NAMES)
    result = fuzz(list(registry.implementations.values()), 60, 3)
    report = campaign_report(result, registry, 60)
    return markdown(report, [Unavailable("jax", ("jax", "jaxlib"), "pip install -e '.[jax]'")])


def _row(table: str, name: str) -> dict[str, str]:
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    (line,) = [line for line in table.splitlines() if line.startswith(f"| `{name}`")]
    return dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))


def test_a_correct_implementation_is_ok_or_not_reached_everywhere(table: str) -> None:
    row = _row(table, "loop")
    assert {row[heading] for heading, _ in COLUMNS} <= {"ok", "not reached"}
    assert row["float32"] == "ok" and row["verdict"] == "ok" and row["other"] == ""


def test_what_a_declaration_leaves_out_is_unsupported_and_its_bugs_are_numbered_with_a_repro(table: str) -> None:
    row = _row(table, "original")  # declares float32, contiguous, no groups, no dilation
    assert row["float64"] == row["groups"] == row["channels_last"] == "unsupported"
    bugs = [cell for cell in row.values() if cell.startswith("bug [")]
    assert bugs and row["verdict"] == "canary caught"
    listed = [line for line in table.splitlines() if line.startswith(("1. ", "2. ", "3. "))]
    assert listed and all("`original`" in line and "repro: `python -m harness replay mb" in line for line in listed)


def test_an_unavailable_implementation_gets_its_install_command(table: str) -> None:
    assert "| `jax` | unavailable: `pip install -e '.[jax]'` |" in table


def test_declared_out_reads_each_field_of_the_declaration() -> None:
    narrow = Capabilities(dtypes=("float32",), groups=False, padding_modes=("valid",), unbatched=False)
    assert declared_out(narrow, "dtype=float64") and not declared_out(narrow, "dtype=float32")
    assert declared_out(narrow, "groups>1") and declared_out(narrow, "unbatched")
    assert declared_out(narrow, "padding='same'") and not declared_out(narrow, "padding='valid'")
    assert not declared_out(Capabilities(), "data=special")


def test_the_command_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "conformance.md"
    status = main(
        [
            "conformance",
            *(a for name in NAMES for a in ("--impl", name)),
            "--max-examples",
            "30",
            "--seed",
            "3",
            "--output",
            str(output),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    text = output.read_text()
    assert text.startswith("| implementation | float32 |") and "| `loop` |" in text
    assert f"conformance: wrote {output}" in out
