"""A conformance table: implementations against the dimensions of conv2d, from one campaign.

Each cell says what the campaign found there: ``bug [n]`` when a failure needs that dimension
("fails this way only with ..."), ``unsupported`` when the implementation's declaration leaves
it out, ``ok`` when cases reached it and nothing there failed, ``not reached`` otherwise; a
bug that needs none of these dimensions (it fails on the simplest case, or needs another
feature, as stride_h!=stride_w) is in the column "other". Each bug is listed under the
table with its minimal case id, its one-line diagnosis and the command that replays it.
Built only from a `CampaignReport` (the tallies' coverage, the
findings and each implementation's declaration); nothing is run here.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.capabilities import Capabilities
from harness.case import DTYPES, LAYOUTS
from harness.finding import Finding
from harness.registry import Unavailable
from harness.report import CampaignReport, repro
from harness.text import clipped, one_line

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


def declared_out(capabilities: Capabilities, feature: str) -> bool:
    """Whether ``capabilities`` leaves out every case with ``feature``."""
    c = capabilities
    if feature.startswith("dtype="):
        return feature.removeprefix("dtype=") not in c.dtypes
    if feature.startswith("layout="):
        return feature.removeprefix("layout=") not in c.layouts
    if feature.startswith("padding='"):
        return feature.removeprefix("padding='").rstrip("'") not in c.padding_modes
    return {"groups>1": not c.groups, "dilation>1": not c.dilation, "bias": not c.bias,
            "batch=0": not c.batched, "unbatched": not c.unbatched}.get(feature, False)


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
        lines.append("| " + " | ".join([f"`{name}`", *cells, row.verdict(report.stopped)]) + " |")
    for missing in unavailable:
        lines.append(f"| `{missing.name}` | unavailable: `{missing.install}` |" + " |" * (len(header) - 2))
    if findings:
        lines += ["", "Bugs (each its minimal case, what is wrong, and the command that replays it):", ""]
        lines += [_bug(number[id(finding)], finding) for finding in findings]
    return "\n".join(lines) + "\n"


def _bug(index: int, finding: Finding) -> str:
    diagnosis = one_line(clipped(finding.diagnosis, DIAGNOSIS_LIMIT)).replace("|", "\\|")
    return (f"{index}. `{finding.implementation}` [{finding.verdict.kind}] `{finding.case.id}`: {diagnosis}; "
            f"repro: `{repro(finding.implementation, finding.case.id)}`")
