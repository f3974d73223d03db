"""The shard plan as the command line states it (harness.backends.plan)."""

from __future__ import annotations

import pytest

from harness.backends.plan import Shard, parse_shard


def test_a_shard_reads_as_i_of_n_and_parses_back_to_itself() -> None:
    shard = parse_shard("2/4")
    assert shard == Shard(2, 4) and str(shard) == "2/4" and Shard.parse(str(shard)) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "2/", "/4", "a/4", "-1/4", "2/4/8"])
def test_a_shard_that_is_not_one_of_its_campaign_s_is_refused_with_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match=f"expected I/N with 1 <= I <= N, got '{text}'"):
        Shard.parse(text)


def test_a_campaign_s_shards_are_every_one_of_them_in_order() -> None:
    assert Shard.every(3) == (Shard(1, 3), Shard(2, 3), Shard(3, 3))
    assert [str(shard) for shard in Shard.every(1)] == ["1/1"]
