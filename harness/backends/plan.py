"""The campaign's plan, as the command line states it: how many shards, which one, and where
they run. Standard library only: the command line's parser imports it before torch.

A campaign of N cases per implementation is n shards (`shard_count`, or ``--shards``), each
drawing from a seed of its own (`harness.backends.base.shard_plan`), so the same seed
draws the same cases whatever runs the shards.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTALL = "pip install 'im2col-harness[dask]'"  # what --scheduler needs

# Shards enough to share among workers (shards differ in cost, and a worker that finishes
# early takes the next one instead of waiting for the slowest), each worth starting: a
# shard re-finds and re-shrinks the bugs the others find too.
CASES_PER_SHARD = 250
MAX_SHARDS = 64


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` of a campaign's ``count``, written "i/n": they count from 1 so that
    it reads as "i of n"."""

    index: int
    count: int

    def __post_init__(self) -> None:
        assert 1 <= self.index <= self.count, f"no shard {self.index}/{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'2/4' -> Shard(2, 4)."""
        index, slash, count = text.partition("/")
        if not slash or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
            raise ValueError(f"expected I/N with 1 <= I <= N, got {text!r}")
        return cls(int(index), int(count))

    @classmethod
    def every(cls, count: int) -> tuple[Shard, ...]:
        """The ``count`` shards of a campaign, in order."""
        return tuple(cls(index, count) for index in range(1, count + 1))


def parse_shard(text: str) -> Shard:
    """'2/4' -> Shard(2, 4) (`Shard.parse`)."""
    return Shard.parse(text)


def shard_count(max_examples: int) -> int:
    """How many shards a campaign of ``max_examples`` cases per implementation is."""
    return max(1, min(MAX_SHARDS, max_examples // CASES_PER_SHARD))


@dataclass(frozen=True)
class Scheduler:
    """Where the shards run: a running scheduler, by address, or ``local`` worker
    processes started here."""

    address: str = ""
    local: int = 0

    def __str__(self) -> str:
        return self.address or f"local:{self.local}"


def parse_scheduler(text: str) -> Scheduler:
    """'tcp://10.0.0.5:8786' -> that scheduler; 'local:2' -> two worker processes here."""
    kind, colon, count = text.partition(":")
    if kind == "local" and colon:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"expected local:N with N at least 1, got {text!r}")
        return Scheduler(local=int(count))
    protocol, separator, where = text.partition("://")
    if not separator or not protocol.isalpha() or not where:
        raise ValueError(
            f"expected a Dask scheduler's address (tcp://HOST:PORT) or local:N (N worker processes here), got {text!r}"
        )
    return Scheduler(address=text)
