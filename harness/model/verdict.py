"""The result of checking one case against one implementation, in a small fixed vocabulary.

benchdnn counts passed / failed / mistrusted / unimplemented; we do the same, and give
every failure a kind from `KINDS` plus a signature that tells distinct bugs apart: two
failures with the same (implementation, signature) are the same bug, and the corpus keeps
one, the smallest, case for each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from harness.model.noise import Noise
from harness.model.template import template


class Status(StrEnum):
    """A check's outcome. Members are strings: they compare equal to, and serialise as,
    the words the reports and the corpus have always used."""

    PASSED = "passed"
    FAILED = "failed"
    MISTRUSTED = "mistrusted"
    UNSUPPORTED = "unsupported"
    SKIPPED = "skipped"
    # A failure the implementation declares as a known, accepted disagreement
    # (`capabilities.Disagreement`); its signature says which: "expected:<index in the declaration>".
    EXPECTED = "expected"


PASSED, FAILED, MISTRUSTED = Status.PASSED, Status.FAILED, Status.MISTRUSTED
UNSUPPORTED, SKIPPED, EXPECTED = Status.UNSUPPORTED, Status.SKIPPED, Status.EXPECTED
STATUSES = tuple(Status)


class Kind(StrEnum):
    """What went wrong in a failed check (`KINDS` says each in words). Members are strings,
    as `Status`'s are."""

    CRASH = "crash"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    GLOBAL_STATE = "global-state"
    EXCEPTION = "exception"
    NOT_A_TENSOR = "not-a-tensor"
    SHAPE = "shape"
    LAYOUT = "layout"
    DTYPE = "dtype"
    DEVICE = "device"
    VALUES = "values"
    NONFINITE = "nonfinite"
    MUTATED_INPUT = "mutated-input"
    ALIASED_INPUT = "aliased-input"
    NONDETERMINISTIC = "nondeterministic"
    GRADIENT = "gradient"
    OUTSIDE_DECLARED = "outside-declared"
    REFERENCE = "reference"


KINDS: dict[Kind, str] = {
    Kind.CRASH: "killed the process running it (segfault, abort, os._exit)",
    Kind.TIMEOUT: "did not return within the case's time limit",
    Kind.MEMORY: "ran out of memory",
    Kind.GLOBAL_STATE: "changed process-wide state (grad mode, default dtype, F.conv2d, signal handlers, "
    "working directory, ...) or left processes running",
    Kind.EXCEPTION: "raised inside its declared domain",
    Kind.NOT_A_TENSOR: "returned something that is not a torch.Tensor",
    Kind.SHAPE: "returned a tensor of the wrong shape, and not just a rearrangement",
    Kind.LAYOUT: "returned the right values in the wrong shape or order",
    Kind.DTYPE: "returned a different dtype than the input's",
    Kind.DEVICE: "returned a tensor on a different device than the input's",
    Kind.VALUES: "returned wrong values (beyond the rounding bound)",
    Kind.NONFINITE: "put NaN or inf where the reference has a finite value, or the reverse",
    Kind.MUTATED_INPUT: "modified its input, weight or bias in place",
    Kind.ALIASED_INPUT: "returned a tensor sharing memory with its input",
    Kind.NONDETERMINISTIC: "returned different bits when called twice with the same inputs",
    Kind.GRADIENT: "declares autograd, but its gradients are wrong or missing",
    Kind.OUTSIDE_DECLARED: "outside its declared capabilities, returned a wrong answer instead of raising",
    Kind.REFERENCE: "torch's own float64 reference disagreed with direct summation beyond the rounding bound: "
    "a torch bug, reported as torch's (the implementations' verdicts on the case are withheld)",
}


@dataclass(frozen=True)
class Verdict:
    status: Status
    kind: Kind | None = None
    message: str = ""
    signature: str = ""
    # What the check's calls warned or wrote (the first that said anything): reported with
    # the verdict, never part of it (not compared: the same failure whatever was said).
    noise: Noise | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        """The enums made from their words (a verdict read back from a corpus file or a
        report holds strings), and checked as a raise, not an assert (gone under -O): a
        failure has a kind, nothing else has one."""
        try:
            object.__setattr__(self, "status", Status(self.status))
            object.__setattr__(self, "kind", None if self.kind is None else Kind(self.kind))
        except ValueError:
            raise ValueError(f"verdict: unknown status {self.status!r} or kind {self.kind!r}") from None
        if (self.kind is None) == (self.status == Status.FAILED):
            raise ValueError(
                f"verdict: status {self.status} with kind {self.kind}: a failure, and only one, has a kind"
            )

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def failure(self) -> str:
        """The failure itself, as two are told to be the very same: the kind and message; for
        an exception, the type, place and message template (`template`: its numbers, shapes
        and addresses aside, which change with the case: one raise site with one message is
        one bug). Other messages are the harness's own, whose numbers (a count of wrong
        elements, how far off) are part of how it failed, so compared whole."""
        if self.kind == Kind.EXCEPTION:
            return f"{self.kind}|{self.signature}|{template(self.message)}"
        return f"{self.kind}|{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failure(kind: str, message: str, detail: str = "") -> Verdict:
    return Verdict(Status.FAILED, Kind(kind), message, f"{kind}:{detail}" if detail else kind)


OUTSIDE = Kind.OUTSIDE_DECLARED
WRONG_REFERENCE = Kind.REFERENCE


def core_signature(signature: str) -> str:
    """The failure itself, wherever it happened: a bug that shows inside the declared domain
    and outside it (where it is an ``outside-declared`` failure) is one bug."""
    return signature.removeprefix(f"{OUTSIDE}:")
