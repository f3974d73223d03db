"""What a campaign found, as JSON for machines and as text for people.

Every failure is printed the benchdnn way: its kind, its one-line case id, a message, and a
command that re-runs exactly that case; then what its check's calls warned or wrote to
stderr or stdout, if anything (`harness.model.noise`). The summary counts, per implementation,
the checks that did. The text holds untrusted strings as they are, each on its line, long
messages clipped; the command line escapes what a terminal would act on as it prints.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.campaign.crosscheck import REFERENCE
from harness.campaign.engine import SKIPPED_VERDICT, CampaignResult, Tally
from harness.model.files import write_atomically
from harness.model.finding import Finding
from harness.model.noise import STDERR, STDOUT, WARNED, Noise
from harness.model.provenance import provenance
from harness.model.registry import Implementation, LoadError, Registry
from harness.model.text import MESSAGE_LIMIT, clipped, one_line
from harness.model.verdict import EXPECTED, FAILED, MISTRUSTED, PASSED, SKIPPED, UNSUPPORTED

SYMPTOMS_SHOWN = 3  # the other ways a bug was seen, listed under it
NOISE_SHOWN = 200  # characters of one thing an implementation said, on its line (the JSON keeps all caught)


def repro(implementation: str, case_id: str) -> str:
    """A command that re-runs exactly that case; for torch's own reference, one that runs
    its torch-only check script (`harness.reporting.standalone.reference_script`)."""
    if implementation == REFERENCE.name:
        code = (
            f"from harness import Case; from harness.reporting.standalone import reference_script; "
            f"exec(reference_script(Case.from_id({case_id!r})))"
        )
        return f"python -c {shlex.quote(code)}"
    return f"python -m harness replay {case_id} --impl {shlex.quote(implementation)}"


@dataclass(frozen=True)
class Row:
    """One implementation's part of a campaign: what it was checked on, and what it failed."""

    implementation: Implementation
    tally: Tally
    findings: tuple[Finding, ...]
    checked: bool  # the campaign it was promised ran to its end, and it passed some case

    @property
    def as_registered(self) -> bool:
        """A canary must be caught; a correct implementation must not fail, and must have
        been checked: "ok" is never said of work that was not done. Either way, a known
        disagreement it declares must still happen where it was checked (strict xfail)."""
        if self.gone:
            return False
        return bool(self.findings) if self.implementation.known_buggy else not self.findings and self.checked

    def expectations(self) -> list[tuple[int, str, int, int]]:
        """Each declared known disagreement: (index, "happened" / "gone" / "not seen" (a
        non-strict one, reached and not seen) / "not reached", matching checks, disagreements)."""
        rows = []
        for index, entry in enumerate(self.implementation.capabilities.expected):
            reached, happened = (self.tally.expectations[index, key] for key in ("reached", "happened"))
            state = "happened" if happened else "not reached" if not reached else "gone" if entry.strict else "not seen"
            rows.append((index, state, reached, happened))
        return rows

    @property
    def gone(self) -> bool:
        """A declared known disagreement that did not happen on the cases meeting its ``when``."""
        return any(state == "gone" for _, state, *_ in self.expectations())

    def verdict(self, stopped: str = "") -> str:
        """The summary's last column; ``stopped``: why the campaign did not run to its end,
        if it did not ("interrupted", "INCOMPLETE")."""
        if self.gone and not stopped:
            return "FAILED"
        if self.findings:
            return "canary caught" if self.implementation.known_buggy else "FAILED"
        if stopped:
            return stopped
        if not self.checked:
            return "NOT CHECKED"
        return "CANARY MISSED" if self.implementation.known_buggy else "ok"


@dataclass
class CampaignReport:
    """A campaign's result with what each implementation was registered as."""

    result: CampaignResult
    rows: dict[str, Row]
    load_errors: list[LoadError]
    max_examples: int
    seconds: float = 0.0
    workers: int = 1
    shards: int = 1  # the campaign's, however many of them this run ran
    shard: tuple[int, int] | None = None  # (index, count) of the one this run ran, if only one

    @property
    def stopped(self) -> str:
        return "interrupted" if self.result.interrupted else "INCOMPLETE" if self.result.incomplete else ""

    @property
    def checks(self) -> int:
        return sum(row.tally.examples for row in self.rows.values())

    def exit_status(self) -> int:
        ok = not self.load_errors and not self.stopped and all(row.as_registered for row in self.rows.values())
        return 0 if ok else 1

    def to_json(self) -> dict[str, Any]:
        """The report as `write` keeps it: every message whole, nothing escaped (JSON does)."""
        return {
            "seed": self.result.seed,
            "max_examples": self.max_examples,
            "interrupted": self.result.interrupted,
            "incomplete": self.result.incomplete,
            "seconds": round(self.seconds, 2),
            "workers": self.workers,
            "shards": self.shards,
            "shard": list(self.shard) if self.shard else None,
            "environment": provenance(),
            "load_errors": [{"name": e.name, "reason": e.reason} for e in self.load_errors],
            "implementations": {name: _row_json(row) for name, row in self.rows.items()},
        }


def campaign_report(result: CampaignResult, registry: Registry, max_examples: int) -> CampaignReport:
    """Each implementation's row; and torch's reference's, where the campaign found it wrong
    (`harness.campaign.crosscheck`): a bug like any other, that fails the run."""
    complete = not result.interrupted and not result.incomplete
    rows = {}
    wrong = any(finding.implementation == REFERENCE.name for finding in result.findings)
    for name, implementation in [*registry.implementations.items(), *([(REFERENCE.name, REFERENCE)] if wrong else [])]:
        tally = result.tallies.get(name, Tally())
        rows[name] = Row(
            implementation,
            tally,
            tuple(f for f in result.findings if f.implementation == name),
            complete and tally.statuses[PASSED] > 0,
        )
    return CampaignReport(result, rows, list(registry.errors), max_examples)


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "examples": row.tally.examples,
        "statuses": dict(row.tally.statuses),
        "slow": row.tally.slow,
        "coverage": dict(sorted(row.tally.coverage.items())),
        "noise": row.tally.heard.to_json(),
        "failures": [_finding_json(finding) for finding in row.findings],
        "known_buggy": row.implementation.known_buggy,
        "checked": row.checked,
        "as_registered": row.as_registered,
        "origin": row.implementation.origin,
        "capabilities": row.implementation.capabilities.differences(),
        "expected": [
            {
                **row.implementation.capabilities.expected[index].to_data(),
                "status": state,
                "reached": reached,
                "happened": happened,
                "case": row.tally.disagreed.get(index),
            }
            for index, state, reached, happened in row.expectations()
        ],
    }


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.verdict.kind,
        "case": finding.case.id,
        "message": finding.diagnosis,
        "signature": finding.verdict.signature,
        "needs": sorted(finding.needs),
        "untried": sorted(finding.untried),
        "shrunk": finding.shrunk,
        "reproducible": finding.reproducible,
        "also_seen_as": [
            {"kind": symptom.verdict.kind, "case": symptom.case.id, "message": symptom.verdict.message}
            for symptom in finding.symptoms
        ],
        "repro": repro(finding.implementation, finding.case.id),
        "noise": None if finding.verdict.noise is None else finding.verdict.noise.to_json(),
    }


def format_failures(report: CampaignReport) -> list[str]:
    lines = []
    for name, row in report.rows.items():
        for finding in row.findings:
            tag = " (did not reproduce)" if not finding.reproducible else "" if finding.shrunk else " (not shrunk)"
            lines += [
                f"FAILED {name} [{finding.verdict.kind}] {finding.case.id}{tag}",
                f"    {ends(finding.diagnosis)}",
                f"    repro: {repro(finding.implementation, finding.case.id)}",
            ]
            if finding.verdict.noise is not None:
                lines += [f"    {line}" for line in format_noise(finding.verdict.noise)]
            symptoms = finding.symptoms
            lines += [f"    also seen as [{s.verdict.kind}] {s.case.id}" for s in symptoms[:SYMPTOMS_SHOWN]]
            if len(symptoms) > SYMPTOMS_SHOWN:
                lines.append(f"    ... and {len(symptoms) - SYMPTOMS_SHOWN} more (all in the JSON report)")
        lines += format_expectations(name, row, report.stopped)
    return lines


def ends(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message on its text line, its middle left out past ``limit`` characters: a
    failure's message ends with where it was raised and what the failure needs, which a
    long exception message (the JSON report keeps it whole) must not push off."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]} ... ({len(text) - head - tail} more characters) ... {text[-tail:]}"


def format_expectations(name: str, row: Row, stopped: str = "") -> list[str]:
    """One line per known disagreement ``row``'s implementation declares: seen as declared
    (with a case to replay), gone (a failure, as a strict xfail that passes), or not reached."""
    lines = []
    for index, state, reached, happened in row.expectations():
        entry = one_line(clipped(str(row.implementation.capabilities.expected[index]), MESSAGE_LIMIT))
        if state == "happened":
            case = row.tally.disagreed.get(index, "")
            lines += [
                f"EXPECTED {name} {entry}",
                f"    disagreed as declared on {happened} of {reached} matching checks, first {case}",
                f"    repro: {repro(name, case)}",
            ]
        elif state == "gone" and not stopped:
            lines.append(
                f"FAILED {name}: expected disagreement {entry} did not happen in {reached} matching "
                f"checks (fixed? remove it from the declaration)"
            )
        elif state == "not seen":
            lines.append(
                f"not seen {name}: expected disagreement {entry}: not in {reached} matching checks "
                f"(declared as happening on some such cases only)"
            )
        elif state == "not reached":
            lines.append(f"not reached {name}: expected disagreement {entry}: no case checked met its 'when'")
    return lines


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_summary(report: CampaignReport) -> str:
    # The "expected" column only where some implementation declares known disagreements.
    statuses = [PASSED, MISTRUSTED, FAILED, UNSUPPORTED, SKIPPED]
    if any(row.implementation.capabilities.expected for row in report.rows.values()):
        statuses.insert(3, EXPECTED)
    header = ["implementation", "examples", *statuses, "bugs", "verdict"]
    rows = [
        [
            name,
            str(row.tally.examples),
            *(str(row.tally.statuses.get(s, 0)) for s in statuses),
            str(len(row.findings)),
            row.verdict(report.stopped),
        ]
        for name, row in report.rows.items()
    ]
    lines = [format_table(header, rows)]
    lines += format_coverage(report)
    for name, row in report.rows.items():
        lines += format_heard(name, row.tally)
    for name, row in report.rows.items():
        lines += format_unjudged(name, row.tally)
    lines += [f"INCOMPLETE: {reason}" for reason in report.result.incomplete]
    lines += [format_load_error(error.name, error.reason) for error in report.load_errors]
    return "\n".join(lines)


def _said(channel: str, text: str) -> str:
    return f"{channel}: {one_line(clipped(text, NOISE_SHOWN))}"


def format_noise(noise: Noise) -> list[str]:
    """What one check's calls said, a line for each distinct warning and for each stream."""
    lines = [_said(WARNED, warning) for warning in noise.warnings]
    if noise.warned > len(noise.warnings):
        lines.append(f"{WARNED}: {noise.warned} warnings in all")
    return lines + [_said(channel, said[0]) for channel, said in noise.channels() if channel != WARNED]


def format_heard(name: str, tally: Tally) -> list[str]:
    """How many checks of ``name`` warned or wrote to stderr or stdout, and the first
    distinct things said on each; nothing for an implementation that said nothing."""
    heard = tally.heard
    if not heard.counts:
        return []
    counts = ", ".join(
        f"{heard.counts[channel]} {what}"
        for channel, what in (
            (WARNED, f"warned ({heard.warnings} warnings)"),
            (STDERR, "wrote to stderr"),
            (STDOUT, "wrote to stdout"),
        )
        if heard.counts[channel]
    )
    return [
        one_line(f"noise ({name}): of its {tally.examples} checks, {counts}; first said:"),
        *(
            f"    {_said(channel, text)}"
            for channel in (WARNED, STDERR, STDOUT)
            for text in heard.first.get(channel, [])
        ),
    ]


def format_unjudged(name: str, tally: Tally) -> list[str]:
    """What was not held against ``name``, and what it cost: calls that ran past their time
    limit and returned when made again (judged on what they returned: a busy machine is no
    evidence against an implementation), and the checks skipped once it was quarantined."""
    lines = []
    if tally.slow:
        calls = f"{tally.slow} call{'s' if tally.slow > 1 else ''}"
        lines.append(
            one_line(
                f"slow ({name}): {calls} ran past the time limit, then returned when made again or "
                "when the case was checked again; judged on what they returned, not counted as bugs"
            )
        )
    if tally.statuses[SKIPPED]:
        lines.append(
            one_line(
                f"skipped ({name}): {tally.statuses[SKIPPED]} of its {tally.examples} checks, {SKIPPED_VERDICT.message}"
            )
        )
    return lines


def format_load_error(name: str, reason: str) -> str:
    return one_line(f"NOT LOADED {name}: {clipped(reason, MESSAGE_LIMIT)}")


def format_coverage(report: CampaignReport) -> list[str]:
    """How often each dimension was reached, once per group of implementations that shared cases."""
    groups: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for name, row in report.rows.items():
        if row.tally.examples:
            groups.setdefault(tuple(sorted(row.tally.coverage.items())), []).append(name)
    return [
        f"reached ({', '.join(names)}): {', '.join(f'{feature} {count}' for feature, count in counts)}"
        for counts, names in groups.items()
    ]


def write(path: Path, report: dict[str, Any]) -> None:
    """The JSON edge: a report (`CampaignReport.to_json`, or replay's) as a file."""
    write_text(path, json.dumps(report, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """``text`` as the file at ``path``, all of it or none (`harness.model.files.write_atomically`,
    through a link to where it points): a full disk leaves the file as it was, never empty
    or cut short. What is there and is no regular file (``/dev/stdout``, a FIFO) is written
    to as it is. Raises the `OSError`."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        regular = True
    if not regular:
        with open(path, "w") as file:
            file.write(text)
        return
    write_atomically(Path(os.path.realpath(path)), text)
