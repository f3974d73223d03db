"""The derived features: each present where it says, gone from the case without it (and
nothing else of what the failure may need taken with it), and said in words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model.case import Case
from harness.model.features import DERIVED, Attribution, describe, features, fitted, needed

PLAIN = Case(batch=1, in_channels=2, out_channels=2, groups=1, height=5, width=5, kernel=(3, 3))
EXAMPLES = {
    # derived feature -> a case that has it, and what the case without it must keep
    "padding='same' uneven": (replace(PLAIN, kernel=(2, 3), padding="same"), {"kernel>1", "padding='same'"}),
    "output_h=1": (replace(PLAIN, height=3), {"kernel>1"}),
    "output_w=1": (replace(PLAIN, width=3, stride=2), {"stride>1"}),
    "stride>reach": (replace(PLAIN, kernel=(1, 1), stride=(3, 1)), {"stride>1", "stride_h!=stride_w"}),
    "rows left over": (replace(PLAIN, height=6, stride=2), {"stride>1"}),
    "padding one side": (replace(PLAIN, height=6, stride=2, padding=1), {"stride>1", "padding>0"}),
    "in_channels=1": (replace(PLAIN, in_channels=1), {"kernel>1"}),
    "depthwise": (replace(PLAIN, groups=2), {"groups>1"}),
}


@pytest.mark.parametrize("feature", DERIVED, ids=lambda f: f.name)
def test_a_derived_feature_is_gone_from_the_case_without_it_and_that_case_keeps_the_rest(feature) -> None:
    case, kept = EXAMPLES[feature.name]
    assert not case.problems() and feature.name in features(case)
    without = fitted(feature.simplest(case))
    assert not without.problems()
    assert feature.name not in features(without)
    assert kept <= features(without), features(without)


def test_the_simplest_case_says_it_fails_on_the_simplest_case_only_when_every_feature_was_tried() -> None:
    case = replace(PLAIN, kernel=(2, 2), padding="same")
    everything = needed(case, lambda simpler: True)
    assert everything == Attribution(frozenset(), frozenset())
    assert describe(everything.needs) == "fails on the simplest case it can"
    untried = needed(case, lambda simpler: None if simpler.padding == "same" else True)
    assert untried.needs == frozenset() and "kernel>1" in untried.untried
    assert describe(untried.needs, untried.untried).startswith("no feature found that it needs (not tried without ")


def test_an_even_same_kernel_is_named_in_words_and_what_it_implies_is_left_unsaid() -> None:
    case = replace(PLAIN, kernel=(2, 2), padding="same")
    found = needed(case, lambda simpler: simpler.paddings[0] != simpler.paddings[1])
    assert found.needs == {"kernel>1", "padding='same'", "padding='same' uneven"}
    assert describe(found.needs) == (
        "fails this way only with an even kernel with padding='same' (torch pads one more on the bottom/right)"
    )
