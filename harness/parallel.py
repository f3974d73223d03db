"""Spread a campaign over processes and machines: shards with their own seed streams.

A campaign of N cases per implementation split into n shards is n campaigns of N/n cases,
shard i drawing from a seed derived from (seed, i, n) the same way everywhere. So
``fuzz --shard i/n`` on n machines (a CI matrix, a batch scheduler) and ``fuzz --workers n``
on one machine run exactly the same cases; results merge by keeping, for each bug, the
smallest case any shard found (what ``corpus merge`` does for corpora).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from harness.campaign import CampaignResult, Finding, Progress, Tally, derive_seed, fuzz
from harness.corpus import save_findings, size
from harness.journal import Journal
from harness.registry import discover
from harness.supervisor import Supervisor


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); shards count from 1 so that 'i/n' reads as 'i of n'."""
    index, slash, count = text.partition("/")
    if not slash or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise ValueError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return int(index), int(count)


def shard_plan(max_examples: int, seed: int, shard: tuple[int, int]) -> tuple[int, int]:
    """(cases per implementation, seed) for one shard of a campaign."""
    index, count = shard
    if count == 1:
        return max_examples, seed
    return -(-max_examples // count), derive_seed(seed, "shard", index, count)


def merge(results: list[CampaignResult], seed: int) -> CampaignResult:
    """One result from the shards': tallies added up, the smallest case kept for each bug."""
    merged = CampaignResult(seed=seed, interrupted=any(r.interrupted for r in results))
    smallest: dict[tuple[str, str], Finding] = {}
    for result in results:
        for name, tally in result.tallies.items():
            total = merged.tallies.setdefault(name, Tally())
            total.examples += tally.examples
            total.statuses.update(tally.statuses)
            total.coverage.update(tally.coverage)
        for finding in result.findings:
            key = (finding.implementation, finding.signature)
            if key not in smallest or size(finding.case) < size(smallest[key].case):
                smallest[key] = finding
    merged.findings = list(smallest.values())
    return merged


def run_shard(specs: list[str], max_examples: int, seed: int, shard: tuple[int, int], isolate: bool | set[str],
              max_seconds: float | None, corpus: Path | None, progress: Progress | None = None
              ) -> tuple[CampaignResult, list[str]]:
    """One shard, start to finish: load the implementations here (functions travel badly
    between processes), fuzz, and save what was found before returning, so that a
    worker's findings survive whatever happens to the others."""
    registry = discover(specs)
    examples, shard_seed = shard_plan(max_examples, seed, shard)
    # Only a campaign isolating everything has no in-process call to journal.
    supervisor = Supervisor(isolate=isolate, journal=None if isolate is True or corpus is None else Journal(corpus))
    try:
        result = fuzz(registry.implementations.values(), examples, shard_seed, progress, supervisor, max_seconds)
    finally:
        supervisor.close()
    saved = save_findings(result, corpus) if corpus is not None else []
    return replace(result, seed=seed), saved


# More shards than workers: shards differ in cost (cases differ in size), and a worker that
# finishes early takes the next shard instead of waiting for the slowest.
SHARDS_PER_WORKER = 4


def fuzz_in_workers(specs: list[str], max_examples: int, seed: int, workers: int, isolate: bool | set[str],
                    max_seconds: float | None, corpus: Path | None) -> tuple[CampaignResult, list[str]]:
    """The campaign as ``SHARDS_PER_WORKER * workers`` shards over ``workers`` processes, merged."""
    # Fork: this process has imported torch but run nothing on it yet, so the workers
    # start in milliseconds instead of importing torch again each.
    context = multiprocessing.get_context("fork")
    results, saved = [], []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        shards = SHARDS_PER_WORKER * workers
        futures = [pool.submit(run_shard, specs, max_examples, seed, (index, shards), isolate,
                               max_seconds, corpus) for index in range(1, shards + 1)]
        for future in futures:
            while True:
                try:
                    result, lines = future.result()
                except KeyboardInterrupt:
                    continue  # the workers got the Ctrl-C too: wait for what they saved
                except BrokenProcessPool:
                    # A worker died (an implementation killed it); its crash journal stays
                    # in the corpus, and the caller rescues it.
                    saved.append("a worker process died: the case it was running is rescued below")
                    break
                results.append(result)
                saved += lines
                break
    return merge(results, seed), saved
