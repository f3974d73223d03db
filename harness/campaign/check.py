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

from harness.campaign.crosscheck import REFERENCE, cross_checked
from harness.execute.process_state import reference_untrusted
from harness.execute.supervisor import Supervisor
from harness.generate.support import unavailable
from harness.generate.tensors import Inputs, make_inputs
from harness.judge.compare import ABNORMAL, judge, judge_outside, judge_repeat
from harness.judge.gradients import ExpectedGradients, applies, expect_gradients, judge_gradients
from harness.judge.oracle import Expected, expect, for_algorithm
from harness.model.capabilities import Capabilities, refusal
from harness.model.case import Case
from harness.model.registry import Implementation
from harness.model.verdict import EXPECTED, SKIPPED, UNSUPPORTED, Verdict


def check_case(
    case: Case,
    implementations: Iterable[Implementation],
    inputs: Inputs | None = None,
    supervisor: Supervisor | None = None,
    beyond: bool = False,
) -> dict[str, Verdict]:
    """Verdicts by implementation name, every check made; ``inputs`` overrides the case's
    generated data; ``supervisor``: how to call them (default: in this process, with a
    supervisor of its own); ``beyond``: see `check_prepared`."""
    implementations = list(implementations)
    reason = unavailable(case.dtype, case.device)
    if reason:
        return {i.name: Verdict(SKIPPED, message=f"cannot run here: {reason}") for i in implementations}
    if supervisor is None:  # one of its own, its children ended with the check
        supervisor = Supervisor()
        try:
            return check_case(case, implementations, inputs, supervisor, beyond)
        finally:
            supervisor.close()

    def checked() -> dict[str, Verdict]:  # the reference too is made again if a call changed what it runs on
        pristine = make_inputs(case) if inputs is None else inputs
        return check_prepared(
            case,
            implementations,
            pristine.clone,
            pristine,
            expect(case, pristine),
            supervisor,
            beyond=beyond,
            watched=False,
        )

    return supervisor.watched(checked)


def as_expected(capabilities: Capabilities, case: Case, verdict: Verdict) -> Verdict:
    """``verdict``, or, for a failure the implementation declares as a known disagreement
    on this case, an "expected" verdict naming the declaration (reason and link)."""
    if not verdict.failed:
        return verdict
    for index, entry in enumerate(capabilities.expected):
        if entry.explains(verdict.kind, case):
            return Verdict(
                EXPECTED,
                message=f"[{verdict.kind}] {verdict.message}; expected: {entry}",
                signature=f"expected:{index}",
            )
    return verdict


def check_prepared(
    case: Case,
    implementations: Iterable[Implementation],
    fresh: Callable[[], Inputs],
    pristine: Inputs,
    expected: Expected,
    supervisor: Supervisor,
    thorough: bool = True,
    beyond: bool = False,
    watched: bool = True,
    retry: bool = False,
) -> dict[str, Verdict]:
    """The loop itself, for callers that share the data and reference between cases.

    Each implementation gets ``fresh()`` inputs only after one has modified them: they are
    compared with ``pristine`` (never handed out) after every call. ``thorough`` adds, for
    a call that passed, a second call (determinism) and, where autograd is declared, a
    gradient check: the campaign makes them on some variants only, as each costs a call.
    ``beyond`` calls implementations on cases outside their declared capabilities too.
    The reference, and its gradients where some were judged, is cross-checked once for all of
    them where a failure or the case's size calls for it (`harness.campaign.crosscheck`):
    where it is wrong, the verdicts it decided are withheld and torch's reference fails,
    under `REFERENCE`'s name; ``implementations`` may hold `REFERENCE` itself, never called:
    its verdict is the cross-check's.
    ``watched``: the shared process state (`Supervisor.watched`) is checked
    once for these calls, and all are made again, each checked, if one changed it; a
    caller that checks it once for several cases says ``False``. ``retry``: a call that
    runs past its time limit is made again, with fresh inputs, before it counts as a
    timeout (`Supervisor.call`'s ``fresh``; the campaign, exploring, says ``True``).
    """

    def each() -> dict[str, Verdict]:
        # Made when first needed, in each round of calls: one made after a call that
        # changed what the reference runs on is not kept for the round that checks again.
        @functools.cache
        def gradients() -> ExpectedGradients:
            return expect_gradients(case, pristine)

        @functools.cache
        def against(algorithm: str) -> Expected:  # each implementation is judged by its own algorithm's bound
            return for_algorithm(case, pristine, expected, algorithm)

        inputs = fresh()

        def refreshed() -> Inputs:  # for a call made again: one that timed out may have half-written them
            nonlocal inputs
            inputs = fresh()
            return inputs

        refresh = refreshed if retry else None
        verdicts = {}
        graded = set()  # the implementations whose gradients were judged
        for implementation in called:
            reason = refusal(implementation.capabilities, case)
            if reason and not beyond:
                verdicts[implementation.name] = Verdict(UNSUPPORTED, message=f"unimplemented: {reason}")
                continue
            outcome = supervisor.call(implementation, case, inputs, pristine, fresh=refresh)
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
                again = supervisor.call(implementation, case, inputs, pristine, fresh=refresh)
                verdict = judge_repeat(case, reference, first, again) or verdict
                noise = noise or again.noise
                if again.modified:
                    inputs = fresh()
                if implementation.capabilities.autograd and applies(case) and not verdict.failed:
                    traced = supervisor.call(implementation, case, fresh(), pristine, gradients().upstream, refresh)
                    failed = judge_gradients(case, gradients(), traced)  # a declared disagreement, there too
                    verdict = verdict if failed is None else as_expected(implementation.capabilities, case, failed)
                    noise = noise or traced.noise
                    graded.add(implementation.name)
            verdicts[implementation.name] = verdict if noise is None else replace(verdict, noise=noise)
        verdicts = cross_checked(case, pristine, expected, verdicts, len(called) < len(listed), gradients, graded)
        return _unjudged(verdicts) if reference_untrusted() else verdicts

    listed = list(implementations)
    called = [implementation for implementation in listed if implementation.name != REFERENCE.name]
    return supervisor.watched(each) if watched else each()


def _unjudged(verdicts: dict[str, Verdict]) -> dict[str, Verdict]:
    """``verdicts`` made against a reference that cannot be trusted (`reference_untrusted`):
    only those that did not need it stand (the call itself went wrong: it crashed, hung,
    or changed the process's state); the others are skipped, saying why."""
    skipped = Verdict(SKIPPED, message=f"not judged: the reference cannot be trusted ({reference_untrusted()})")
    return {
        name: verdict if verdict.kind in (*ABNORMAL, "global-state") else skipped for name, verdict in verdicts.items()
    }
