"""Torch's reference cross-checked on a case before anything judged by it is reported.

Every implementation is judged against torch's float64 conv2d (`harness.judge.oracle`). Were
that wrong on a case, every correct implementation would fail there, and one sharing torch's
bug would pass: the harness would blame torch's bug on the implementation under test. So the
reference is cross-checked against the independent one (`harness.judge.independent`: NumPy
direct summation, no torch kernel) once per case, whatever the number of implementations: on
every case where an implementation failed by the reference's values or shape, and on every
case of at most `CHEAP_MACS` multiply-adds, where the cross-check costs little.

Torch's float64 gradients, which judge the implementations that declare autograd, are
cross-checked the same way (`harness.judge.independent.cross_check_gradients`), once per
case: on every case where a gradient came out wrong by their values, and on every case of
at most `CHEAP_GRADIENT_MACS` multiply-adds where an implementation's gradients were judged.

When the two disagree, the finding is torch's: a ``reference`` failure of `REFERENCE`, the
name torch's reference goes by in a report ("torch (reference)"), its signature naming the
gradient where that is what is wrong (``reference:gradient:weight``). The implementations'
verdicts that the wrong reference decided are withheld (skipped, saying why), so nothing is
blamed on them, nor any pass credited: where torch's values are wrong, every verdict they
decided and every gradient verdict (a torch wrong on the case is not trusted for its
gradients); where only a gradient is, the verdicts of the implementations whose gradients
were judged, passes and wrong gradient values. What a call did wrong whatever the reference
says stands: it crashed, hung, raised, changed process state, modified or aliased its
inputs, returned something of the wrong type, dtype or device, different bits when called
again, or a gradient that is missing or of the wrong shape or dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch.nn.functional as F

from harness.generate.tensors import Inputs
from harness.judge.gradients import ExpectedGradients, applies, expect_gradients
from harness.judge.independent import CrossCheck, cross_check, cross_check_gradients
from harness.judge.oracle import Expected
from harness.model.case import Case
from harness.model.registry import Implementation
from harness.model.verdict import (
    EXPECTED,
    MISTRUSTED,
    PASSED,
    SKIPPED,
    WRONG_REFERENCE,
    Verdict,
    core_signature,
    failure,
)

# Torch's reference as a report names it: never called as an implementation (its verdict is the
# cross-check's), but it is torch's F.conv2d, and a script that imports it runs that.
REFERENCE = Implementation(
    "torch (reference)",
    F.conv2d,
    origin="torch's float64 F.conv2d, the harness's reference, cross-checked against direct "
    "summation (harness.judge.independent)",
    source="torch.nn.functional:conv2d",
)
# Cross-checked on every case up to this many multiply-adds (`Case.macs`), failing or not.
# Measured (benchmarks/independent_reference.py, docs/oracle.md): a cross-check costs about
# 3 times torch's reference, mostly a fixed cost per case on a campaign's small cases, so
# every case would add 11-15% to a default campaign's CPU time; the cases up to 30 MACs are
# 37% of its references and add about 4%. Larger cases are cross-checked where one fails.
CHEAP_MACS = 30
# Torch's gradients, where an implementation's were judged, cross-checked on every case up
# to this many multiply-adds. Measured (docs/oracle.md): a gradient cross-check costs 1.1 to
# 1.5 times torch's gradients up to 10^5 MACs, 2.7 to 4.1 times from 10^6; a campaign judges
# gradients on one variant in `engine.THOROUGH_EVERY` draws, and in benchmarks/throughput.py's
# (--examples 3000, seed 18) the largest such case had 2,880 MACs: all 83 cross-checked took
# 1.1% of its CPU time.
CHEAP_GRADIENT_MACS = 10**4
# The last reference cross-checked and what that found: a campaign checks each drawn case's
# data in several memory layouts against one reference (`campaign.engine.check_variants`),
# cross-checked once. Held, not just its id, so that no later reference can take its id.
_LAST: list[tuple[Expected, CrossCheck]] = []
# The same for torch's gradients of that reference's data: the first gradient wrong, if one is.
_LAST_GRADIENTS: list[tuple[Expected, tuple[str, CrossCheck] | None]] = []
# The failures that compare with the reference's values or shape: a wrong reference makes them.
DECIDED_BY_REFERENCE = frozenset({"values", "nonfinite", "layout", "shape"})


def decided_by_reference(verdict: Verdict) -> bool:
    """Whether ``verdict`` says what it says because of the reference's values or shape: a
    pass, a mistrusted or declared (expected) disagreement, or a failure of those kinds,
    inside the declaration or outside it."""
    if verdict.status in (PASSED, MISTRUSTED, EXPECTED):
        return True
    return verdict.failed and core_signature(verdict.signature).partition(":")[0] in DECIDED_BY_REFERENCE


def decided_by_gradients(verdict: Verdict) -> bool:
    """Whether ``verdict``, of an implementation whose gradients were judged, says what it
    says because of torch's reference gradients: a pass or mistrusted verdict (its gradients
    were found right), or gradient values found wrong."""
    return verdict.status in (PASSED, MISTRUSTED) or core_signature(verdict.signature).startswith("gradient:values:")


def cross_checked(
    case: Case,
    pristine: Inputs,
    expected: Expected,
    verdicts: dict[str, Verdict],
    asked: bool,
    gradients: Callable[[], ExpectedGradients] | None = None,
    graded: Collection[str] = (),
) -> dict[str, Verdict]:
    """``verdicts`` (by implementation name, made against ``expected``, the reference of
    ``pristine``) once torch's reference has been cross-checked where it must be: as they
    are where it agrees or was not cross-checked; withheld, with a `REFERENCE` failure
    added, where it is wrong. ``gradients``: torch's reference gradients (default: made
    here, when needed), against which the gradients of the implementations named in
    ``graded`` were judged. ``asked``: `REFERENCE` itself is among the implementations
    checked (a campaign shrinking a reference bug): always cross-checked, gradients too
    where the case has a gradient check (`harness.judge.gradients.applies`), and its
    verdict always given, a pass where the references agree."""
    failed = any(verdict.failed and decided_by_reference(verdict) for verdict in verdicts.values())
    if asked or failed or case.macs <= CHEAP_MACS:
        checked = _cross_check(case, pristine, expected)
        if not checked.agree:
            return _withheld(verdicts, graded, failure(WRONG_REFERENCE, checked.description), values=True)
    wrong = any(verdicts[name].failed and decided_by_gradients(verdicts[name]) for name in graded)
    if (asked and applies(case)) or wrong or (graded and case.macs <= CHEAP_GRADIENT_MACS):
        made = gradients or (lambda: expect_gradients(case, pristine))
        wrong_gradient = _cross_check_gradients(case, pristine, expected, made)
        if wrong_gradient is not None:
            name, checked = wrong_gradient
            wrong_one = failure(WRONG_REFERENCE, checked.description, f"gradient:{name}")
            return _withheld(verdicts, graded, wrong_one, values=False)
    return {**verdicts, REFERENCE.name: Verdict(PASSED)} if asked else verdicts


def _withheld(
    verdicts: dict[str, Verdict], graded: Collection[str], wrong: Verdict, values: bool
) -> dict[str, Verdict]:
    """``verdicts`` with `REFERENCE`'s failure ``wrong``, and those that the reference decided
    withheld: the gradient verdicts of the implementations in ``graded``, and, where torch's
    ``values`` are wrong (not only a gradient), every verdict they decided."""
    withheld = Verdict(
        SKIPPED,
        message=f"not judged: torch's float64 reference is wrong on this case, "
        f"reported as {REFERENCE.name!r}: {wrong.message}",
    )

    def decided(name: str, verdict: Verdict) -> bool:
        return (values and decided_by_reference(verdict)) or (name in graded and decided_by_gradients(verdict))

    return {
        **{name: withheld if decided(name, verdict) else verdict for name, verdict in verdicts.items()},
        REFERENCE.name: wrong,
    }


def _cross_check(case: Case, pristine: Inputs, expected: Expected) -> CrossCheck:
    """`cross_check` of ``expected``, made once however many variants share it (`_LAST`)."""
    if not (_LAST and _LAST[0][0] is expected):
        _LAST[:] = [(expected, cross_check(case, pristine, expected.values))]
    return _LAST[0][1]


def _cross_check_gradients(
    case: Case, pristine: Inputs, expected: Expected, gradients: Callable[[], ExpectedGradients]
) -> tuple[str, CrossCheck] | None:
    """The first of torch's gradients of ``pristine`` that `cross_check_gradients` finds
    wrong, with what it found, or None; made once however many variants share the data
    (`_LAST_GRADIENTS`, by their reference ``expected``)."""
    if not (_LAST_GRADIENTS and _LAST_GRADIENTS[0][0] is expected):
        made = gradients()
        checks = cross_check_gradients(case, pristine, made.upstream, made.values)
        wrong = next(((name, checked) for name, checked in checks.items() if not checked.agree), None)
        _LAST_GRADIENTS[:] = [(expected, wrong)]
    return _LAST_GRADIENTS[0][1]
