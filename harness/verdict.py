"""The result of checking one case against one implementation, in a small fixed vocabulary.

benchdnn counts passed / failed / mistrusted / unimplemented; we do the same, and give
every failure a kind from `KINDS` plus a signature that tells distinct bugs apart: two
failures with the same (implementation, signature) are the same bug, and the corpus keeps
one, the smallest, case for each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.noise import Noise

PASSED, FAILED, MISTRUSTED, UNSUPPORTED, SKIPPED = "passed", "failed", "mistrusted", "unsupported", "skipped"
# A failure the implementation declares as a known, accepted disagreement (`capabilities.Disagreement`);
# its signature says which: "expected:<index in the declaration>".
EXPECTED = "expected"
STATUSES = (PASSED, FAILED, MISTRUSTED, UNSUPPORTED, SKIPPED, EXPECTED)

KINDS = {
    "crash": "killed the process running it (segfault, abort, os._exit)",
    "timeout": "did not return within the case's time limit",
    "memory": "ran out of memory",
    "global-state": "changed process-wide state (grad mode, default dtype, F.conv2d, signal handlers, "
                    "working directory, ...) or left processes running",
    "exception": "raised inside its declared domain",
    "not-a-tensor": "returned something that is not a torch.Tensor",
    "shape": "returned a tensor of the wrong shape, and not just a rearrangement",
    "layout": "returned the right values in the wrong shape or order",
    "dtype": "returned a different dtype than the input's",
    "device": "returned a tensor on a different device than the input's",
    "values": "returned wrong values (beyond the rounding bound)",
    "nonfinite": "put NaN or inf where the reference has a finite value, or the reverse",
    "mutated-input": "modified its input, weight or bias in place",
    "aliased-input": "returned a tensor sharing memory with its input",
    "nondeterministic": "returned different bits when called twice with the same inputs",
    "gradient": "declares autograd, but its gradients are wrong or missing",
    "outside-declared": "outside its declared capabilities, returned a wrong answer instead of raising",
}


@dataclass(frozen=True)
class Verdict:
    status: str
    kind: str | None = None
    message: str = ""
    signature: str = ""
    # What the check's calls warned or wrote (the first that said anything): reported with
    # the verdict, never part of it (not compared: the same failure whatever was said).
    noise: Noise | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status
        assert (self.kind in KINDS) == (self.status == FAILED), (self.status, self.kind)

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failure(kind: str, message: str, detail: str = "") -> Verdict:
    return Verdict(FAILED, kind, message, f"{kind}:{detail}" if detail else kind)


OUTSIDE = "outside-declared"


def core_signature(signature: str) -> str:
    """The failure itself, wherever it happened: a bug that shows inside the declared domain
    and outside it (where it is an ``outside-declared`` failure) is one bug."""
    return signature.removeprefix(f"{OUTSIDE}:")
