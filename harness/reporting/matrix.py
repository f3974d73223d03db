"""The matrix: what a seeded campaign found, case by case, under each torch version.

Rows are findings (an implementation and a minimal case id, the kind and diagnosis it was
found with), columns are torch versions, and each cell is what replaying that very case id
under that version said: ``ok``, ``bug (kind)``, ``crash``, ``expected`` (a known
disagreement the implementation declares), ``not reached`` (the implementation is not
available there, or the case is outside what that torch runs) or ``not run`` (that
version's replay could not be run). Replaying the same case everywhere, rather than
comparing what each version's campaign happened to find, is what makes a cell exact: a
campaign that did not find a bug under a version has not shown it is gone.

A row whose verdict changes says where, in column order (oldest torch first): "appears in"
the first version that fails after one that passed, "gone in" the first that passes after
one that failed, and "X -> Y in" any other change; cells not reached are stepped over.

Everything here is pure: the reports of the children that ran each version are read as
untrusted JSON (`findings_from`, `cells_from` check every type and clip every string, and
raise `ReportError` for anything else), and the table is written as Markdown through
`conformance.inline` and as JSON for machines. Nothing is run or imported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.model.finding import identity
from harness.model.text import clipped
from harness.model.verdict import EXPECTED, FAILED, PASSED
from harness.reporting.conformance import DIAGNOSIS_LIMIT, inline

OK, BUG, CRASH, NOT_REACHED, NOT_RUN = "ok", "bug", "crash", "not reached", "not run"
TEXT_LIMIT = 1000  # of one string read from a child's report: a name, a case id, a message
CORPUS = "corpus"  # a row's origin when it came from the saved corpus, not a campaign


class ReportError(ValueError):
    """A child's report that is not what the harness writes; the message says where."""


@dataclass(frozen=True)
class Found:
    """One row: a failure as one campaign (or the corpus) found it."""

    implementation: str
    case: str
    kind: str
    diagnosis: str

    @property
    def key(self) -> tuple[str, str]:
        """The same bug of the same implementation, however its file was spelled."""
        return identity(self.implementation), self.case


@dataclass(frozen=True)
class Cell:
    """What replaying a row's case said under one version; ``why`` for a cell not reached
    or not run (JSON only)."""

    state: str
    kind: str = ""
    why: str = ""

    def __str__(self) -> str:
        return f"{BUG} ({self.kind})" if self.state == BUG else self.state

    @property
    def reached(self) -> bool:
        return self.state not in (NOT_REACHED, NOT_RUN)


@dataclass(frozen=True)
class Column:
    """One torch version: its tox env, the torch its campaign reported, how long its campaign
    and replays took, and why it could not be run, if it could not ("" when it ran)."""

    env: str
    torch: str = ""
    seconds: float = 0.0
    problem: str = ""

    @property
    def name(self) -> str:
        """The torch version, when the env's name says the same (``torch2.14``: ``2.14.1``),
        else both: an env is only a name, and two may hold one torch."""
        if not self.torch:
            return self.env
        if self.env.startswith("torch") and self.torch.startswith(self.env.removeprefix("torch") + "."):
            return self.torch
        return f"{self.env} (torch {self.torch})"


@dataclass
class Row:
    found: Found
    origins: list[str] = field(default_factory=list)  # the columns' envs whose campaign found it, or CORPUS
    cells: list[Cell] = field(default_factory=list)

    def changes(self, columns: Sequence[Column]) -> list[str]:
        """Where this row's verdict changes, from one reached cell to the next."""
        said: list[str] = []
        before: Cell | None = None
        for column, cell in zip(columns, self.cells, strict=True):
            if not cell.reached:
                continue
            if before is not None and str(before) != str(cell):
                if before.state == OK:
                    said.append(f"appears in {column.name}")
                elif cell.state == OK:
                    said.append(f"gone in {column.name}")
                else:
                    said.append(f"{before} -> {cell} in {column.name}")
            before = cell
        return said


@dataclass
class Matrix:
    seed: int
    max_examples: int | None
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # envs skipped and why

    @property
    def complete(self) -> bool:
        """Every column ran and every cell says what that version did."""
        return not any(column.problem for column in self.columns) and not any(
            cell.state == NOT_RUN for row in self.rows for cell in row.cells
        )


# -- reading a child's report --------------------------------------------------------------


def _get(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``data[key]`` if it is a ``kind`` (a bool is no int here), a string clipped."""
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReportError(f"{where}: {key!r} is not {kind.__name__}")
    return clipped(value, TEXT_LIMIT) if isinstance(value, str) else value


def _objects(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ReportError(f"{where}: not a list of objects")
    return value


def torch_of(report: Any) -> str:
    """The torch version a campaign's report names ("" when it names none)."""
    environment = report.get("environment") if isinstance(report, dict) else None
    version = environment.get("torch") if isinstance(environment, dict) else None
    return clipped(version, 100) if isinstance(version, str) else ""


def findings_from(report: Any) -> list[Found]:
    """Every failure a campaign's JSON report (`CampaignReport.to_json`) holds, and every
    known disagreement it saw happen (kind ``expected``, the declaration's reason as the
    diagnosis)."""
    if not isinstance(report, dict) or not isinstance(report.get("implementations"), dict):
        raise ReportError("a campaign report: no 'implementations' object")
    found = []
    for name, row in report["implementations"].items():
        if not isinstance(row, dict):
            raise ReportError(f"implementation {clipped(name)!r}: not an object")
        name = clipped(name, TEXT_LIMIT)
        for failure in _objects(row.get("failures"), f"{name}: failures"):
            found.append(
                Found(
                    name,
                    _get(failure, "case", str, name),
                    _get(failure, "kind", str, name),
                    _get(failure, "message", str, name),
                )
            )
        for expected in _objects(row.get("expected", []), f"{name}: expected"):
            if isinstance(expected.get("case"), str) and _get(expected, "happened", int, name) > 0:
                found.append(
                    Found(
                        name,
                        _get(expected, "case", str, name),
                        EXPECTED,
                        "known: " + _get(expected, "reason", str, name),
                    )
                )
    return found


def cells_from(report: Any) -> dict[tuple[str, str], Cell]:
    """What a replay's JSON report (``python -m harness replay --report``) says of each
    (implementation, case) it ran, keyed as `Found.key`."""
    if not isinstance(report, dict):
        raise ReportError("a replay report: not an object")
    cells = {}
    for row in _objects(report.get("rows"), "replay rows"):
        name, case = _get(row, "implementation", str, "replay row"), _get(row, "case", str, "replay row")
        status = _get(row, "status", str, name)
        kind = row.get("kind")
        if status == FAILED:
            kind = _get(row, "kind", str, name)
            cell = Cell(CRASH) if kind == CRASH else Cell(BUG, kind)
        elif status == PASSED:
            cell = Cell(OK)
        elif status == EXPECTED:
            cell = Cell(EXPECTED)
        else:  # unsupported, skipped, mistrusted: this version did not judge it
            cell = Cell(NOT_REACHED, why=f"{status}: {clipped(str(row.get('message', '')), DIAGNOSIS_LIMIT)}")
        cells[(identity(name), case)] = cell
    return cells


# -- the table -----------------------------------------------------------------------------


def rows_of(found: Iterable[tuple[str, Found]]) -> list[Row]:
    """One row per (implementation, case), from (origin, finding) pairs in the order found:
    a finding met again (another version's campaign, the corpus) adds its origin, and the
    first to find it gives the row its kind and diagnosis. Sorted by implementation, case."""
    rows: dict[tuple[str, str], Row] = {}
    for origin, finding in found:
        row = rows.setdefault(finding.key, Row(finding))
        if origin not in row.origins:
            row.origins.append(origin)
    return sorted(rows.values(), key=lambda row: row.found.key)


def markdown(matrix: Matrix) -> str:
    """The versions (each with how long it took), the table, and the notes, as Markdown."""
    lines = [
        f"Seed {matrix.seed}, "
        + (f"{matrix.max_examples} cases per implementation" if matrix.max_examples else "the default campaign")
        + f", under {len(matrix.columns)} torch version(s):",
        "",
    ]
    lines += [
        f"- {inline(column.env, code=True)}: torch {inline(column.torch or 'unknown', code=True)}, "
        f"{column.seconds:.0f}s" + (f"; NOT RUN: {inline(column.problem)}" if column.problem else "")
        for column in matrix.columns
    ]
    lines += [f"- {inline(note)}" for note in matrix.notes]
    header = [
        "implementation",
        "case",
        "kind",
        "diagnosis",
        *(inline(c.name, code=True) for c in matrix.columns),
        "changes",
    ]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in matrix.rows:
        found = row.found
        lines.append(
            "| "
            + " | ".join(
                [
                    inline(found.implementation, code=True),
                    inline(found.case, code=True),
                    inline(found.kind),
                    inline(clipped(found.diagnosis, DIAGNOSIS_LIMIT)),
                    *(str(cell) for cell in row.cells),
                    inline("; ".join(row.changes(matrix.columns)) or "none"),
                ]
            )
            + " |"
        )
    if not matrix.rows:
        lines.append("| (no findings) |" + " |" * (len(header) - 1))
    return "\n".join(lines) + "\n"


def to_json(matrix: Matrix) -> dict[str, Any]:
    """The matrix as data: every string whole as read (JSON escapes it), cells by env."""
    return {
        "seed": matrix.seed,
        "max_examples": matrix.max_examples,
        "complete": matrix.complete,
        "versions": [
            {"env": c.env, "torch": c.torch, "seconds": round(c.seconds, 1), "problem": c.problem}
            for c in matrix.columns
        ],
        "notes": matrix.notes,
        "findings": [
            {
                "implementation": row.found.implementation,
                "case": row.found.case,
                "kind": row.found.kind,
                "diagnosis": row.found.diagnosis,
                "found_by": row.origins,
                "cells": {
                    column.env: {
                        "state": cell.state,
                        **({"kind": cell.kind} if cell.kind else {}),
                        **({"why": cell.why} if cell.why else {}),
                    }
                    for column, cell in zip(matrix.columns, row.cells, strict=True)
                },
                "changes": row.changes(matrix.columns),
            }
            for row in matrix.rows
        ],
    }
