"""A conformance table: implementations against the dimensions of conv2d, from one campaign.

Each cell says what the campaign found there: ``bug [n]`` when a failure needs that dimension
("fails this way only with ..."), ``unsupported`` when the implementation's declaration leaves
it out, ``ok`` when cases reached it and nothing there failed, ``not reached`` otherwise; a
bug that needs none of these dimensions (it fails on the simplest case, or needs another
feature, as stride_h!=stride_w) is in the column "other". Each bug is listed under the
table with its minimal case id, its one-line diagnosis and the command that replays it.
Built only from a `CampaignReport` (the tallies' coverage, the
findings and each implementation's declaration); nothing is run here.

Implementation names and failure messages are untrusted text, and a Markdown file is read
rendered, where a ``|`` starts a new cell, ``<script>`` is HTML and a backtick ends a code
span, and raw, where an escape sequence acts on the terminal that shows it: each is written
through `inline`, which shows it as it is and lets it do nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.model.capabilities import Capabilities
from harness.model.case import DTYPES, LAYOUTS
from harness.model.finding import Finding
from harness.model.registry import Unavailable
from harness.model.text import clipped, one_line, printable
from harness.reporting.report import CampaignReport, repro

# (column heading, the coverage feature it counts)
COLUMNS: tuple[tuple[str, str], ...] = (
    *((dtype, f"dtype={dtype}") for dtype in DTYPES),
    *((layout, f"layout={layout}") for layout in LAYOUTS if layout != "contiguous"),
    ("groups", "groups>1"),
    ("dilation", "dilation>1"),
    ("stride", "stride>1"),
    ("padding", "padding>0"),
    ("'same'", "padding='same'"),
    ("'valid'", "padding='valid'"),
    ("bias", "bias"),
    ("special values", "data=special"),
    ("batch 0", "batch=0"),
    ("unbatched", "unbatched"),
)
DIAGNOSIS_LIMIT = 200
# What Markdown (GitHub's included: tables, strikethrough, math) or HTML acts on inline,
# and what ends a code span or a table cell.
_ACTIVE = re.compile(r"[\\`*_{}\[\]<>()#!|&~$]")
_ACTIVE_IN_CODE = re.compile(r"[`|<>]")


def inline(text: str, code: bool = False) -> str:
    """``text`` as Markdown that shows it and does nothing else, on one line: control and
    reordering characters and line breaks as visible escapes (`harness.model.text`), then, as
    ``code``, in a code span if nothing in it would end the span or the cell or read as
    HTML, and otherwise (or not as code) with every character Markdown or HTML would act on
    backslash-escaped."""
    shown = printable(one_line(text))
    if code and not _ACTIVE_IN_CODE.search(shown):
        return f"`{shown}`"
    return _ACTIVE.sub(r"\\\g<0>", shown)


def declared_out(capabilities: Capabilities, feature: str) -> bool:
    """Whether ``capabilities`` leaves out every case with ``feature``."""
    c = capabilities
    if feature.startswith("dtype="):
        return feature.removeprefix("dtype=") not in c.dtypes
    if feature.startswith("layout="):
        return feature.removeprefix("layout=") not in c.layouts
    if feature.startswith("padding='"):
        return feature.removeprefix("padding='").rstrip("'") not in c.padding_modes
    return {
        "groups>1": not c.groups,
        "dilation>1": not c.dilation,
        "bias": not c.bias,
        "batch=0": not c.batched,
        "unbatched": not c.unbatched,
    }.get(feature, False)


def markdown(report: CampaignReport, unavailable: Sequence[Unavailable] = ()) -> str:
    """The table and its list of bugs, as Markdown."""
    findings = [finding for row in report.rows.values() for finding in row.findings]
    number = {id(finding): index for index, finding in enumerate(findings, 1)}
    header = ["implementation", *(heading for heading, _ in COLUMNS), "other", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in report.rows.items():
        cells: list[str] = []
        placed: set[int] = set()
        for _, feature in COLUMNS:
            bugs = [finding for finding in row.findings if feature in finding.needs]
            placed.update(id(finding) for finding in bugs)
            if bugs:
                cells.append("bug " + ", ".join(f"[{number[id(finding)]}]" for finding in bugs))
            elif declared_out(row.implementation.capabilities, feature):
                cells.append("unsupported")
            elif row.tally.coverage.get(feature, 0):
                cells.append("ok")
            else:
                cells.append("not reached")
        others = [finding for finding in row.findings if id(finding) not in placed]
        cells.append("bug " + ", ".join(f"[{number[id(f)]}]" for f in others) if others else "")
        lines.append("| " + " | ".join([inline(name, code=True), *cells, row.verdict(report.stopped)]) + " |")
    for missing in unavailable:
        lines.append(
            f"| {inline(missing.name, code=True)} | unavailable: {inline(missing.install, code=True)} |"
            + " |" * (len(header) - 2)
        )
    if findings:
        lines += ["", "Bugs (each its minimal case, what is wrong, and the command that replays it):", ""]
        lines += [_bug(number[id(finding)], finding) for finding in findings]
    return "\n".join(lines) + "\n"


def _bug(index: int, finding: Finding) -> str:
    return (
        f"{index}. {inline(finding.implementation, code=True)} [{finding.verdict.kind}] "
        f"{inline(finding.case.id, code=True)}: {inline(clipped(finding.diagnosis, DIAGNOSIS_LIMIT))}; "
        f"repro: {inline(repro(finding.implementation, finding.case.id), code=True)}"
    )
