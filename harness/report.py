"""What a campaign found, as JSON for machines and as text for people.

Every failure is printed the benchdnn way: its kind, its one-line case id, a message, and a
command that re-runs exactly that case. The text holds untrusted strings as they are, long
messages clipped; the command line escapes what a terminal would act on as it prints.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from harness.campaign import CampaignResult, Finding
from harness.corpus import provenance
from harness.registry import Registry
from harness.text import clipped, one_line
from harness.verdict import FAILED, MISTRUSTED, PASSED, SKIPPED, UNSUPPORTED

# The most of one untrusted message (an exception's, a plugin's load error) a text line
# shows: every message the harness writes fits, the 100 kB an implementation may raise
# does not. The JSON report keeps it whole.
MESSAGE_LIMIT = 1000
SYMPTOMS_SHOWN = 3  # the other ways a bug was seen, listed under it


def repro(implementation: str, case_id: str) -> str:
    return f"python -m harness replay {case_id} --impl {shlex.quote(implementation)}"


def behaved(known_buggy: bool, failures: int, checked: bool) -> bool:
    """A canary must be caught; a correct implementation must not fail, and must have been
    checked: "ok" is never said of work that was not done."""
    return failures > 0 if known_buggy else failures == 0 and checked


def verdict_word(known_buggy: bool, failures: int, checked: bool, stopped: str = "") -> str:
    """``checked``: the campaign it promised ran, and passed at least one of its cases;
    ``stopped``: why it did not run to its end, if it did not ("interrupted", "INCOMPLETE")."""
    if failures:
        return "canary caught" if known_buggy else "FAILED"
    if stopped:
        return stopped
    if not checked:
        return "NOT CHECKED"
    return "CANARY MISSED" if known_buggy else "ok"


def _failure(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.verdict.kind,
        "case": finding.case.id,
        "message": finding.diagnosis,
        "signature": finding.signature,
        "needs": sorted(finding.needs),
        "shrunk": finding.shrunk,
        "reproducible": finding.reproducible,
        "also_seen_as": [{"kind": symptom.verdict.kind, "case": symptom.case.id, "message": symptom.verdict.message}
                         for symptom in finding.symptoms],
        "repro": repro(finding.implementation, finding.case.id),
    }


def campaign_report(result: CampaignResult, registry: Registry, max_examples: int) -> dict[str, Any]:
    implementations = {}
    complete = not result.interrupted and not result.incomplete
    for name, implementation in registry.implementations.items():
        tally = result.tallies.get(name)
        failures = [_failure(f) for f in result.findings if f.implementation == name]
        checked = complete and tally is not None and tally.statuses[PASSED] > 0
        implementations[name] = {
            "examples": tally.examples if tally else 0,
            "statuses": dict(tally.statuses) if tally else {},
            "coverage": dict(sorted(tally.coverage.items())) if tally else {},
            "failures": failures,
            "known_buggy": implementation.known_buggy,
            "checked": checked,
            "as_registered": behaved(implementation.known_buggy, len(failures), checked),
            "origin": implementation.origin,
            "capabilities": implementation.capabilities.differences(),
        }
    return {
        "seed": result.seed,
        "max_examples": max_examples,
        "interrupted": result.interrupted,
        "incomplete": result.incomplete,
        "environment": provenance(),
        "load_errors": [{"name": e.name, "reason": e.reason} for e in registry.errors],
        "implementations": implementations,
    }


def exit_status(report: dict[str, Any]) -> int:
    ok = not report["load_errors"] and not report["incomplete"] and all(
        entry["as_registered"] for entry in report["implementations"].values())
    return 0 if ok else 1


def format_failures(report: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in report["implementations"].items():
        for failure in entry["failures"]:
            tag = (" (did not reproduce)" if not failure["reproducible"]
                   else "" if failure["shrunk"] else " (not shrunk)")
            lines += [
                f"FAILED {name} [{failure['kind']}] {failure['case']}{tag}",
                f"    {clipped(failure['message'], MESSAGE_LIMIT)}",
                f"    repro: {failure['repro']}",
            ]
            symptoms = failure["also_seen_as"]
            lines += [f"    also seen as [{symptom['kind']}] {symptom['case']}" for symptom in symptoms[:SYMPTOMS_SHOWN]]
            if len(symptoms) > SYMPTOMS_SHOWN:
                lines.append(f"    ... and {len(symptoms) - SYMPTOMS_SHOWN} more (all in the JSON report)")
    return lines


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_summary(report: dict[str, Any]) -> str:
    header = ["implementation", "examples", PASSED, MISTRUSTED, FAILED, UNSUPPORTED, SKIPPED, "bugs", "verdict"]
    stopped = "interrupted" if report["interrupted"] else "INCOMPLETE" if report["incomplete"] else ""
    rows = []
    for name, entry in report["implementations"].items():
        statuses = entry["statuses"]
        rows.append([name, str(entry["examples"]), *(str(statuses.get(s, 0)) for s in
                     (PASSED, MISTRUSTED, FAILED, UNSUPPORTED, SKIPPED)), str(len(entry["failures"])),
                     verdict_word(entry["known_buggy"], len(entry["failures"]), entry["checked"], stopped)])
    lines = [format_table(header, rows)]
    lines += format_coverage(report)
    lines += [f"INCOMPLETE: {reason}" for reason in report["incomplete"]]
    lines += [format_load_error(error["name"], error["reason"]) for error in report["load_errors"]]
    return "\n".join(lines)


def format_load_error(name: str, reason: str) -> str:
    return one_line(f"NOT LOADED {name}: {clipped(reason, MESSAGE_LIMIT)}")


def format_coverage(report: dict[str, Any]) -> list[str]:
    """How often each dimension was reached, once per group of implementations that shared cases."""
    groups: dict[str, list[str]] = {}
    for name, entry in report["implementations"].items():
        if entry["examples"]:
            groups.setdefault(json.dumps(entry["coverage"], sort_keys=True), []).append(name)
    lines = []
    for key, names in groups.items():
        counts = json.loads(key)
        reached = ", ".join(f"{feature} {count}" for feature, count in counts.items())
        lines.append(f"reached ({', '.join(names)}): {reached}")
    return lines


def write(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")
