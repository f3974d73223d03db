"""What a campaign counts while it explores: the cases checked against each implementation,
by status, what of the domain they reached, what they said, and the known disagreements
they met. Counted on the cases drawn while exploring only: those tried while shrinking a
bug are not the campaign's sample."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.model.capabilities import Capabilities, refusal
from harness.model.case import Case
from harness.model.conditions import met
from harness.model.features import DERIVED_NAMES, features
from harness.model.noise import Heard
from harness.model.registry import Implementation
from harness.model.verdict import EXPECTED, PASSED, Verdict


@dataclass
class Tally:
    """How many cases were checked against one implementation, by status, and how often
    each dimension of the domain was reached (`coverage`: the features, each dtype, layout,
    data kind and device, and "thorough" for the variants chosen for a second call and a
    gradient check, made where the first call passed); and how many checks warned or wrote
    to stderr or stdout, with the first things said (`heard`); and how many of its calls ran
    past their time limit and then returned when made again (`slow`: checks judged on
    what they returned, and timeouts that did not happen again when their case was
    checked again, dropped: a busy machine is no evidence against an implementation)."""

    examples: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    coverage: Counter[str] = field(default_factory=Counter)
    heard: Heard = field(default_factory=Heard)
    # For each declared known disagreement (by its index): the checks inside the declaration
    # that met its ``when`` ("reached"), those that disagreed as declared ("happened"), and
    # the first case that did.
    expectations: Counter[tuple[int, str]] = field(default_factory=Counter)
    disagreed: dict[int, str] = field(default_factory=dict)
    slow: int = 0


def reached(declared: Capabilities, case: Case) -> list[int]:
    """The known disagreements ``declared`` (by index) whose ``when`` ``case`` meets, where
    the case is inside the declaration and has an output to disagree on (not an empty
    batch): those it could show, or show gone."""
    if not declared.expected or refusal(declared, case) is not None or 0 in case.output_shape:
        return []
    return [index for index, entry in enumerate(declared.expected) if met(case, entry.when)]


def coverage(case: Case) -> set[str]:
    """The dimensions ``case`` exercises, for the campaign's coverage summary: its features
    (those of the dimensions, not the derived ones), and its dtype, layout, data kind and
    device even where they are the simplest."""
    return {
        *(features(case) - DERIVED_NAMES),
        f"dtype={case.dtype}",
        f"layout={case.layout}",
        f"data={case.data}",
        f"device={case.device}",
    }


class GroupTally:
    """The counting for implementations fuzzed together: every member sees every case, so
    they share one coverage (the first member's), and each has its own tally."""

    def __init__(self, members: dict[str, Implementation], tallies: dict[str, Tally]) -> None:
        self.members, self.tallies = members, tallies
        self.examples = 0  # variants checked while exploring: what the budget counts
        self.coverage = tallies[next(iter(members))].coverage
        self._drawn: Case | None = None
        self._shared: set[str] = set()

    def checked(self, drawn: Case, variant: Case, verdicts: dict[str, Verdict], thorough: bool) -> None:
        """Count one variant of the case ``drawn``, with each member's verdict on it."""
        self.examples += 1
        if drawn is not self._drawn:
            # Most variants differ in data kind and layout only: the rest is worked out once.
            self._drawn, self._shared = drawn, coverage(drawn) - {f"data={drawn.data}", f"layout={drawn.layout}"}
        dimensions = (
            self._shared | {f"data={variant.data}", f"layout={variant.layout}"}
            if variant.batch == drawn.batch
            else coverage(variant)
        )
        self.coverage.update(dimensions | ({"thorough"} if thorough else set()))
        for name, verdict in verdicts.items():
            tally = self.tallies[name]
            tally.examples += 1
            tally.statuses[verdict.status] += 1
            if verdict.noise is not None:
                tally.heard.add(verdict.noise)
            declared = self.members[name].capabilities
            # Only a check judged on its values can show a disagreement there or gone.
            for index in reached(declared, variant) if verdict.status in (PASSED, EXPECTED) else ():
                tally.expectations[index, "reached"] += 1
                if verdict.signature == f"expected:{index}":
                    tally.expectations[index, "happened"] += 1
                    tally.disagreed.setdefault(index, variant.id)
