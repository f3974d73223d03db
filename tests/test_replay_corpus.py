"""Replay the committed corpus on every test run: one test per case x implementation.

Saved failures and real-network shape sets (corpus/) are checked against every registered
implementation; the expectations are `harness.campaign.replay`'s, so a regression in any
implementation, or a fixed canary, shows up here under every torch version tox runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.campaign.replay import FIXED, Target, check_target, judge_row, targets_from
from harness.model.registry import discover
from harness.store.corpus import load

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
REGISTRY = discover()
LOADED = load(CORPUS)
TARGETS = targets_from(LOADED)


def _id(target: Target, name: str) -> str:
    return f"{name}-{Path(target.source.split(' ')[0]).stem}-{target.case.id}"


# Sorted, so every pytest-xdist worker collects the same tests in the same order.
PARAMS = sorted(((t, n) for t in TARGETS for n in REGISTRY.implementations), key=lambda p: _id(*p))


@pytest.mark.parametrize(("target", "name"), PARAMS, ids=[_id(t, n) for t, n in PARAMS])
def test_a_corpus_case_gives_the_expected_result(target: Target, name: str) -> None:
    implementation = REGISTRY.implementations[name]
    verdict = check_target(target, [implementation])[name]
    row = judge_row(target, implementation, verdict)
    assert row.expected, f"{row.outcome}: {verdict.message}"
    assert not (row.outcome == FIXED and implementation.known_buggy), (
        f"the canary {name} no longer fails {target.case.id}: the harness or the canary changed"
    )


def test_the_corpus_loads_without_errors() -> None:
    assert LOADED.errors == []
    assert LOADED.shape_sets, "the real-network shape sets are part of the corpus"


def test_every_registered_implementation_is_loaded() -> None:
    assert REGISTRY.errors == []
