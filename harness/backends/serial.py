"""A campaign's shards run here, one after another (``--workers 1``, ``--shard i/n``, and
`harness.api`): the implementations loaded here, no process to lose."""

from __future__ import annotations

import time

from harness.backends.base import Ledger, run_shard


class Serial:
    """Every shard in this process, in order, while time lasts; Ctrl-C ends the shard
    running (`engine.fuzz` keeps what it found) and the campaign."""

    workers, place = 1, ""

    def run(self, ledger: Ledger) -> bool:
        options = ledger.options
        deadline = None if options.max_seconds is None else time.monotonic() + options.max_seconds
        for shard in options.shards:
            if deadline is not None and time.monotonic() >= deadline:
                break  # out of time: the shards left are not owed
            remaining = None if deadline is None else deadline - time.monotonic()
            result = run_shard(options, shard, ledger.isolating(), remaining, ledger.progress(shard))
            ledger.finished(shard, result)
            if result.interrupted:
                break
        return True
