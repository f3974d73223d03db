"""Bugs found by separate shards, told apart at the end as one campaign tells them
(`harness.campaign.reconcile`): one cause seen two ways by two shards is one report; two
causes stay two."""

from __future__ import annotations

from dataclasses import replace

import planted_bugs
import trigger_bugs

from harness.campaign.bugs import attributed
from harness.campaign.check import check_case
from harness.campaign.reconcile import could_be_one, reconciled
from harness.execute.supervisor import Supervisor
from harness.model.case import Case
from harness.model.finding import Finding
from harness.model.registry import Implementation, implementation_from
from harness.model.verdict import failure

# One column of output with a stride: where the kept rows are as many as they should be, the
# wrong ones (values); where they are not, a wrong shape. One cause, two ways.
ROWS_COUNT_RIGHT = "mb1ic1oc1g1ih4iw1kh1kw1s2p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
ROWS_COUNT_WRONG = "mb1ic1oc1g1ih1iw1kh1kw1s2p0d1-nobias-float32-contiguous-uniform-cpu-seed0"


def found(implementation: Implementation, case_id: str) -> Finding:
    """What a shard reports for ``case_id``: its failure, attributed the features it needs."""
    case = Case.from_id(case_id)
    verdict = check_case(case, [implementation])[implementation.name]
    supervisor = Supervisor()
    try:
        return attributed(Finding(implementation.name, case, verdict), implementation, supervisor)
    finally:
        supervisor.close()


def test_one_cause_that_two_shards_saw_two_ways_is_one_report() -> None:
    implementation = implementation_from("one_column_fast_path", trigger_bugs.one_column_fast_path)
    values, shape = found(implementation, ROWS_COUNT_RIGHT), found(implementation, ROWS_COUNT_WRONG)
    assert (values.verdict.kind, shape.verdict.kind) == ("values", "shape")
    assert shape.needs < values.needs  # shape's features set back, the values failure goes too
    for shards in ([values, shape], [shape, values]):
        (bug,) = reconciled(shards, {implementation.name: implementation})
        assert bug.verdict.kind == "shape" and [s.verdict.kind for s in bug.symptoms] == ["values"]


def test_two_causes_that_could_have_been_one_stay_two() -> None:
    # A bias ignored, and a kernel flipped on a case with a bias too: the second needs all the
    # first does, and still fails once the bias is set back, so it is a bug of its own.
    implementation = implementation_from("both", planted_bugs.flips_kernel_and_ignores_bias)
    bias = found(implementation, "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-bias-float32-contiguous-uniform-cpu-seed0")
    flipped = found(implementation, "mb1ic1oc1g1ih3iw3kh2kw2s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0")
    assert bias.needs == {"bias"} and "kernel>1" in flipped.needs
    flipped_with_bias = Finding(
        "both",
        Case.from_id("mb1ic1oc1g1ih3iw3kh2kw2s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"),
        flipped.verdict,
        needs=flipped.needs | {"bias"},
    )
    kept = reconciled([bias, flipped_with_bias], {"both": implementation})
    assert sorted(sorted(f.needs) for f in kept) == [["bias"], sorted(flipped_with_bias.needs)]
    assert all(not f.symptoms for f in kept)


def test_nothing_is_checked_between_bugs_that_cannot_be_one() -> None:
    # A bug needing nothing cannot be set back; two needing different features are two.
    case = Case.from_id(ROWS_COUNT_WRONG)
    anywhere = Finding("x", case, failure("layout", "wrong shape"))
    with_bias = Finding("x", case, failure("values", "wrong"), needs=frozenset({"bias"}))
    grouped = Finding("x", case, failure("shape", "short"), needs=frozenset({"groups>1", "kernel>1"}))
    assert not could_be_one([anywhere, with_bias, grouped])
    assert could_be_one([with_bias, replace(grouped, needs=grouped.needs | {"bias"})])
    findings = [anywhere, with_bias, grouped]
    assert reconciled(findings, {}) is findings  # no implementation called: none is given
