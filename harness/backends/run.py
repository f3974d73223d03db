"""A campaign from start to end, whatever asked for it (``fuzz``, ``conformance``,
`harness.api`) and whatever runs its shards (a `base.Backend`): calls an earlier run died
in isolated first, the shards run and merged (their bugs told apart as one campaign would,
`harness.campaign.reconcile`), and those calls re-checked at the end
(`harness.campaign.rescue`), what they show saved with the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.backends.base import Backend, Ledger, Options
from harness.campaign.engine import CampaignResult, explained
from harness.campaign.reconcile import reconciled
from harness.campaign.rescue import rescue, suspects
from harness.execute.journal import FOLDER, orphans


@dataclass
class Ran:
    """A campaign's merged result, and what happened on the way."""

    result: CampaignResult
    saved: list[str]  # what was saved to the corpus, one line per file (shards that found alike, alike)
    notes: list[str]  # shards run again, workers with other versions, calls earlier runs died in
    planned: int  # cases planned over every shard run here, all implementations together


def run_campaign(options: Options, backend: Backend, say: Callable[[str], None] = lambda line: None) -> Ran:
    """Run the campaign ``options`` describes on ``backend``. Journals that earlier runs left
    in the corpus (`harness.execute.journal`) say what they died in: those implementations
    run isolated this time (a line said for each), and each such call is checked again at
    the end, unless the campaign was interrupted or its ``--max-seconds`` are up."""
    end = None if options.max_seconds is None else time.monotonic() + options.max_seconds
    implementations = {implementation.name: implementation for implementation in options.loaded()}
    orphaned, skipped = ([], []) if options.corpus is None else orphans(options.corpus / FOLDER)
    suspected, notes = suspects(orphaned, implementations)
    for note in skipped + notes:
        say(note)
    if options.isolate is not True:
        options = replace(options, isolate=frozenset(options.isolate or ()) | suspected)
    ledger = Ledger(options)
    result = ledger.merged(backend.run(ledger))
    if len(options.shards) > 1 and not result.interrupted and (end is None or time.monotonic() < end):
        result.findings = reconciled(result.findings, implementations)
        ledger.recount(result.findings)
    if orphaned and not result.interrupted:
        rescued = rescue(orphaned, implementations, end)
        new = [finding for finding in rescued.findings if not explained(finding, result.findings)]
        result.findings += new
        ledger.saved += options.save(new)
        ledger.notes += rescued.notes
    return Ran(result, ledger.saved, ledger.notes, ledger.planned)
