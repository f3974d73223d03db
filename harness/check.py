"""Check one case against several implementations, paying for the reference once.

This is the unit of work everywhere: the fuzz campaign, replay, and a single case on the
command line all come through `check_case`. Making the tensors and running the float64
reference cost as much as an implementation call, so one drawn case is checked against
every implementation that claims it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace

from harness.capabilities import Capabilities, refusal
from harness.case import Case
from harness.compare import judge, judge_outside, judge_repeat
from harness.gradients import ExpectedGradients, applies, expect_gradients, judge_gradients
from harness.oracle import Expected, expect, for_algorithm
from harness.registry import Implementation
from harness.supervisor import Supervisor
from harness.support import unavailable
from harness.tensors import Inputs, make_inputs
from harness.verdict import EXPECTED, SKIPPED, UNSUPPORTED, Verdict


def check_case(case: Case, implementations: Iterable[Implementation], inputs: Inputs | None = None,
               supervisor: Supervisor | None = None, beyond: bool = False) -> dict[str, Verdict]:
    """Verdicts by implementation name, every check made; ``inputs`` overrides the case's
    generated data; ``supervisor``: how to call them (default: in this process, with a
    supervisor of its own); ``beyond``: see `check_prepared`."""
    implementations = list(implementations)
    reason = unavailable(case.dtype, case.device)
    if reason:
        return {i.name: Verdict(SKIPPED, message=f"cannot run here: {reason}") for i in implementations}
    pristine = make_inputs(case) if inputs is None else inputs
    return check_prepared(case, implementations, pristine.clone, pristine, expect(case, pristine),
                          Supervisor() if supervisor is None else supervisor, beyond=beyond)


def as_expected(capabilities: Capabilities, case: Case, verdict: Verdict) -> Verdict:
    """``verdict``, or, for a failure the implementation declares as a known disagreement
    on this case, an "expected" verdict naming the declaration (reason and link)."""
    if not verdict.failed:
        return verdict
    for index, entry in enumerate(capabilities.expected):
        if entry.explains(verdict.kind, case):
            return Verdict(EXPECTED, message=f"[{verdict.kind}] {verdict.message}; expected: {entry}",
                           signature=f"expected:{index}")
    return verdict


def check_prepared(case: Case, implementations: Iterable[Implementation], fresh: Callable[[], Inputs],
                   pristine: Inputs, expected: Expected, supervisor: Supervisor,
                   thorough: bool = True, beyond: bool = False, watched: bool = True) -> dict[str, Verdict]:
    """The loop itself, for callers that share the data and reference between cases.

    Each implementation gets ``fresh()`` inputs only after one has modified them: they are
    compared with ``pristine`` (never handed out) after every call. ``thorough`` adds, for
    a call that passed, a second call (determinism) and, where autograd is declared, a
    gradient check: the campaign makes them on some variants only, as each costs a call.
    ``beyond`` calls implementations on cases outside their declared capabilities too.
    ``watched``: the shared process state (`Supervisor.watched`) is checked
    once for these calls, and all are made again, each checked, if one changed it; a
    caller that checks it once for several cases says ``False``.
    """
    @functools.cache
    def gradients() -> ExpectedGradients:  # made once, when first needed
        return expect_gradients(case, pristine)

    @functools.cache
    def against(algorithm: str) -> Expected:  # each implementation is judged by its own algorithm's bound
        return for_algorithm(case, pristine, expected, algorithm)

    def each() -> dict[str, Verdict]:
        inputs = fresh()
        verdicts = {}
        for implementation in implementations:
            reason = refusal(implementation.capabilities, case)
            if reason and not beyond:
                verdicts[implementation.name] = Verdict(UNSUPPORTED, message=f"unimplemented: {reason}")
                continue
            outcome = supervisor.call(implementation, case, inputs, pristine)
            reference = against(implementation.capabilities.algorithm)
            verdict = judge(case, reference, outcome)
            noise = outcome.noise  # what the check's calls said: the first that said anything
            if outcome.modified:  # the next implementation gets the case as drawn
                inputs = fresh()
            verdict = as_expected(implementation.capabilities, case, verdict)
            if reason:
                verdict = judge_outside(verdict, reason)
            elif thorough and not verdict.failed and verdict.status != EXPECTED and outcome.result is not None:
                first = outcome.result.detach().cpu().clone()  # the second call may reuse its memory
                again = supervisor.call(implementation, case, inputs, pristine)
                verdict = judge_repeat(case, reference, first, again) or verdict
                noise = noise or again.noise
                if again.modified:
                    inputs = fresh()
                if implementation.capabilities.autograd and applies(case) and not verdict.failed:
                    traced = supervisor.call(implementation, case, fresh(), pristine, gradients().upstream)
                    verdict = judge_gradients(case, gradients(), traced) or verdict
                    noise = noise or traced.noise
            verdicts[implementation.name] = verdict if noise is None else replace(verdict, noise=noise)
        return verdicts

    implementations = list(implementations)
    return supervisor.watched(each) if watched else each()
