"""Judge one call against the reference: the checks, in the order a person would make them.

Crash/timeout/memory, process-wide state changed, exception, modified inputs, type,
aliasing, device, shape, dtype, then values; then, for a call that passed, the same call
again (determinism). Each failed check returns at once with its kind and a one-line message; the first failing check is
the one a user has to fix first. Outside its declared capabilities an implementation may
raise; anything else wrong there is an ``outside-declared`` failure.
"""

from __future__ import annotations

import torch

from harness.generate.tensors import same_bits
from harness.judge.diagnose import rearrangement, where_wrong, worst
from harness.judge.oracle import Expected
from harness.model.case import Case
from harness.model.outcome import Outcome
from harness.model.verdict import MISTRUSTED, OUTSIDE, PASSED, UNSUPPORTED, Verdict, failure

ABNORMAL = ("crash", "timeout", "memory")
# Made once: most checks end in one of these, and a Verdict costs more to make than to share.
_PASSED = Verdict(PASSED)
_MISTRUSTED = Verdict(
    MISTRUSTED,
    message="most outputs are zero, or NaN or inf, by construction (or, for "
    "a transform, may round by as much as their terms add up to): "
    "the check could see little",
)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def how_the_call_went(outcome: Outcome, during: str = "") -> Verdict | None:
    """A failure of the call itself, whatever it returned: it did not end normally, or it
    changed state that everything after it depends on (put back since)."""
    if outcome.abnormal:
        what = f"{outcome.error_type}: " if outcome.error_type else ""
        return failure(outcome.abnormal, f"{during}{what}{outcome.error_message}")
    if outcome.changed:
        return failure(
            "global-state",
            f"{during}changed {', '.join(map(str, outcome.changed))} (put back after the call)",
            "+".join(sorted({change.what for change in outcome.changed})),
        )
    return None


def judge(case: Case, expected: Expected, outcome: Outcome) -> Verdict:
    went_wrong = how_the_call_went(outcome)
    if went_wrong:
        return went_wrong
    if outcome.error_type:
        site = outcome.error_site
        return failure(
            "exception", f"{outcome.error_type}: {outcome.error_message} (at {site})", f"{outcome.error_type}@{site}"
        )
    if outcome.modified:
        return failure(
            "mutated-input", f"modified its {', '.join(outcome.modified)} in place", "+".join(outcome.modified)
        )
    result = outcome.result
    if result is None:
        return failure("not-a-tensor", f"returned {outcome.returned}, {outcome.error_message or 'not a torch.Tensor'}")
    if outcome.aliased:
        return failure("aliased-input", "returned a tensor that shares memory with an input")
    if outcome.device != case.device and not outcome.device.startswith(f"{case.device}:"):
        return failure("device", f"returned a tensor on {outcome.device}, input is on {case.device}")
    got_shape = tuple(result.shape)
    if got_shape != expected.shape:
        layout = rearrangement(result.detach().cpu(), expected) if result.is_floating_point() else None
        message = f"shape {_shape(got_shape)}, expected {_shape(expected.shape)}"
        if layout:
            return failure("layout", f"{message}: {layout}")
        return failure("shape", message)
    if result.dtype != expected.dtype:
        return failure("dtype", f"returned {str(result.dtype)[6:]} for {case.dtype} input")
    return _judge_values(case, expected, result.detach())


def _judge_values(case: Case, expected: Expected, result: torch.Tensor) -> Verdict:
    result = result.cpu()
    reference = expected.values
    # The common case first, in as few tensor operations as it takes (the subtraction
    # promotes to float64): any NaN or inf on either side fails this test and is sorted
    # out below.
    if bool(((result - reference).abs_() <= expected.allowed_error).all()):
        if expected.mistrusted:
            return _MISTRUSTED
        return _PASSED
    got = result.to(torch.float64)
    error = (got - reference).abs().nan_to_num(0.0)  # inf - inf where both agree on inf
    nonfinite = _misplaced(expected, got)
    wrong = error > expected.allowed_error
    if not (nonfinite.any() or wrong.any()):
        return _MISTRUSTED if expected.mistrusted else _PASSED
    # The right values (NaN and inf included) elsewhere? A rearrangement moves most of them:
    # a few wrong elements are wrong values, however sorting might pair them up within a
    # loose (bfloat16) rounding bound.
    anywhere = wrong | nonfinite
    layout = rearrangement(result, expected) if float(anywhere.double().mean()) >= 0.5 else None
    if layout:
        return failure("layout", layout)
    where = where_wrong(case, expected, got, anywhere)
    if nonfinite.any():
        more = int((wrong & ~nonfinite).sum())  # finite values beyond their bound
        also = f", and {more} more wrong value{'' if more == 1 else 's'}" if more else ""
        return failure(
            "nonfinite",
            f"NaN/inf in the wrong place in {int(nonfinite.sum())} of {nonfinite.numel()} output elements{also}{where}",
        )
    return failure(
        "values",
        f"{int(wrong.sum())} of {wrong.numel()} output elements wrong{where}; {worst(case, expected, got, wrong)}",
    )


def _misplaced(expected: Expected, got: torch.Tensor) -> torch.Tensor:
    """Where ``got`` has NaN or an infinity it should not, or lacks one it should have."""
    reference = expected.values
    if expected.spread is None:  # direct summation: exactly where the reference has them
        return (
            (got.isnan() != reference.isnan())
            | (got.isinf() != reference.isinf())
            | (reference.isinf() & (got != reference))
        )
    # A transform: non-finite wherever the reference is, and NaN also where it spreads.
    return torch.where(reference.isfinite(), got.isinf() | (got.isnan() & ~expected.spread), got.isfinite())


def judge_repeat(case: Case, expected: Expected, first: torch.Tensor, second: Outcome) -> Verdict | None:
    """A failure if calling again with the same inputs did not give ``first`` (the first
    call's result, copied) again, bit for bit."""
    if second.abnormal or second.changed:
        return judge(case, expected, second)
    if second.result is None:
        what = (
            f"raised {second.error_type}: {second.error_message}"
            if second.error_type
            else f"returned {second.returned}"
        )
        return failure("nondeterministic", f"called again with the same inputs, it {what}", "second-call")
    again = second.result.detach().cpu()
    if same_bits(first, again):
        return None
    if again.shape != first.shape or again.dtype != first.dtype:
        return failure(
            "nondeterministic",
            f"called again with the same inputs, it returned {again.dtype} {_shape(tuple(again.shape))}",
            "second-call",
        )
    before, after = first.reshape(-1), again.reshape(-1)
    differs = (before != after) & ~(before.isnan() & after.isnan())
    if not differs.any():
        return failure(
            "nondeterministic",
            "called again with the same inputs, it returned the same values "
            "with different bits (signed zeros or NaN payloads)",
        )
    change = (before.double() - after.double()).abs()[differs]
    appeared = change.isnan()  # NaN in one call only: a change of no size, not an infinite one
    how = [f"largest change {change[~appeared].max().item():.3g}"] if not appeared.all() else []
    how += [f"{int(appeared.sum())} NaN in one call only"] if appeared.any() else []
    return failure(
        "nondeterministic",
        f"called again with the same inputs, {int(differs.sum())} of "
        f"{differs.numel()} elements came out different ({'; '.join(how)})",
    )


def judge_outside(verdict: Verdict, reason: str) -> Verdict:
    """What a verdict means for a case outside the declared capabilities (``reason``):
    raising is the right answer there; crashing, hanging or a wrong result is not."""
    if verdict.kind == "exception":
        return Verdict(UNSUPPORTED, message=f"raised outside its declared capabilities ({reason}): {verdict.message}")
    if not verdict.failed or verdict.kind in ABNORMAL:
        return verdict
    return failure(
        OUTSIDE, f"outside its declared capabilities ({reason}), {verdict.kind}: {verdict.message}", verdict.signature
    )
