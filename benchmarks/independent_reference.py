"""What cross-checking torch's float64 reference against the independent one costs.

    python benchmarks/independent_reference.py                 # ~1-2 minutes
    python benchmarks/independent_reference.py --max-examples 500 --rounds 3 --no-shapes

A benchmark, not a timed test: it prints numbers and always exits 0 (2 on bad arguments).
Everything runs single-threaded and is timed in CPU seconds of this process (other jobs
share the machine).

1. A default campaign runs (`harness.campaign.engine.fuzz`: every registered implementation that
   loads here, ``--max-examples 2000`` unless told otherwise, a fixed seed), with the
   oracle's `harness.judge.oracle.expect` wrapped where the campaign and its re-checks call it,
   to keep every (case, inputs, float64 values) it makes a reference for: the mix of
   cases a cross-check on every case would see, drawn exactly as the campaign draws them.
2. Over several rounds (the order alternating), each of those references is made again
   by torch (``expect``: what the campaign pays already) and cross-checked
   (`harness.judge.independent.cross_check`: the independent reference, its own M and the
   comparison: what checking every reference would add); medians over rounds.
3. Cross-checking the cheap references only: for each MAC count, what cross-checking every
   reference of a case with at most that many MACs costs (median round), and the share of
   the campaign's references that covers (`harness.campaign.crosscheck.CHEAP_MACS` is chosen
   from this table).
4. Cross-checking only failures costs one cross-check per failure reported: each of the
   campaign's findings is cross-checked on its case.
5. Each layer of a shipped shape set (default ResNet-50: the largest cases the harness
   replays) is made by torch and cross-checked once: a failure found there is
   cross-checked at that price.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from unittest.mock import patch

import numpy
import torch

import harness.campaign.check
import harness.campaign.engine
from harness.arguments import DEFAULT_MAX_EXAMPLES
from harness.campaign.engine import fuzz
from harness.execute.process_state import one_thread
from harness.generate.tensors import Inputs, make_inputs
from harness.judge.independent import cross_check
from harness.judge.oracle import Expected, expect
from harness.model.case import Case
from harness.model.registry import discover
from harness.store.corpus import ShapeSet, load_file

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_ROUNDS = 3
DEFAULT_SEED = 18
DEFAULT_SHAPES = PROJECT / "corpus" / "shapes" / "resnet50.json"
MAC_LIMITS = (30, 100, 300, 10**3, 3 * 10**3, 10**4, 10**5, 10**6)  # the cheap-case thresholds tabled
Reference = tuple[Case, Inputs, torch.Tensor]


def campaign(max_examples: int, seed: int) -> tuple[list[Reference], list[Case], float, int]:
    """Run a default campaign keeping every reference it makes: the references, the cases
    of its findings, its CPU seconds and its checks."""
    made: list[Reference] = []

    def recording(case: Case, inputs: Inputs) -> Expected:
        expected = expect(case, inputs)
        made.append((case, inputs, expected.values))
        return expected

    implementations = list(discover().implementations.values())
    # Where the campaign and its re-checks (attributing a finding) look the oracle up.
    with (
        patch.object(harness.campaign.engine, "expect", recording),
        patch.object(harness.campaign.check, "expect", recording),
    ):
        start = time.process_time()
        result = fuzz(implementations, max_examples, seed)
        seconds = time.process_time() - start
    checks = sum(tally.examples for tally in result.tallies.values())
    print(
        f"campaign: {', '.join(i.name for i in implementations)}; --max-examples {max_examples} --seed {seed}: "
        f"{checks} checks, {len(result.findings)} findings, {len(made)} references, {seconds:.1f} CPU s"
    )
    return made, [finding.case for finding in result.findings], seconds, checks


def seconds_each(mode: str, references: list[Reference]) -> list[float]:
    """The CPU seconds of each reference, made again by torch or cross-checked."""
    seconds = []
    for case, inputs, values in references:
        start = time.process_time()
        if mode == "torch":
            expect(case, inputs)
        else:
            cross_check(case, inputs, values)
        seconds.append(time.process_time() - start)
    return seconds


def rounds_of(references: list[Reference], rounds: int) -> dict[str, list[list[float]]]:
    """Per mode, per round, the CPU seconds of each reference (the modes' order alternates)."""
    runs: dict[str, list[list[float]]] = {"torch": [], "cross-check": []}
    for index in range(rounds):
        for mode in sorted(runs, reverse=bool(index % 2)):
            runs[mode].append(seconds_each(mode, references))
    return runs


def shape_set(path: Path) -> list[tuple[str, float, float]]:
    """Each layer of the shape set at ``path``: its id, torch's and the cross-check's CPU seconds."""
    loaded = load_file(path)
    assert isinstance(loaded, ShapeSet)
    rows = []
    for case in loaded.cases:
        inputs = make_inputs(case)
        start = time.process_time()
        values = expect(case, inputs).values
        rows.append((case.id, time.process_time() - start, cross_checked((case, inputs, values))))
    return rows


def cross_checked(reference: Reference) -> float:
    """The CPU seconds of cross-checking ``reference``; a disagreement is printed."""
    start = time.process_time()
    checked = cross_check(*reference)
    seconds = time.process_time() - start
    if not checked.agree:
        print(f"DISAGREEMENT on {reference[0].id}: {checked.description}")
    return seconds


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(
    references: list[Reference],
    runs: dict[str, list[list[float]]],
    failures: list[float],
    campaign_seconds: float,
    checks: int,
    shapes: list[tuple[str, float, float]] | None,
) -> None:
    count = len(references)
    totals = {mode: statistics.median(sum(run) for run in runs[mode]) for mode in runs}
    print(f"\n{count} references, medians over {len(runs['torch'])} rounds, CPU ms\n")
    print(f"{'mode':<14}{'total ms':>10}{'ms/reference':>14}{'max ms':>9}")
    for mode, total in totals.items():
        largest = statistics.median(max(run) for run in runs[mode])
        print(f"{mode:<14}{1000 * total:>10.1f}{1000 * total / count:>14.3f}{1000 * largest:>9.2f}")
    ratios = [sum(c) / sum(t) for c, t in zip(runs["cross-check"], runs["torch"])]
    print(
        f"\ncross-check / torch reference = {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"on every reference: +{totals['cross-check']:.2f} CPU s on a campaign of {campaign_seconds:.1f} CPU s "
        f"({100 * totals['cross-check'] / campaign_seconds:.1f}%; {checks} checks)"
    )
    print("\ncross-checking cases of at most N MACs: share of the references, CPU s added, % of the campaign")
    for limit in MAC_LIMITS:
        cheap = [i for i, (case, *_) in enumerate(references) if case.macs <= limit]
        added = statistics.median(sum(run[i] for i in cheap) for run in runs["cross-check"])
        print(
            f"  N = {limit:>9,}: {100 * len(cheap) / count:5.1f}% of references, +{added:.2f} CPU s "
            f"({100 * added / campaign_seconds:.1f}%)"
        )
    print(
        f"on failures only: {len(failures)} cross-checks, +{sum(failures):.3f} CPU s "
        f"({100 * sum(failures) / campaign_seconds:.2f}%)"
    )
    if shapes:
        print("\nshape set, each layer once: torch ms, cross-check ms, ratio")
        for case_id, torch_s, check_s in shapes:
            print(f"  {case_id:<80}{1000 * torch_s:>9.1f}{1000 * check_s:>10.1f}{check_s / torch_s:>7.1f}")
        torch_total, check_total = sum(s[1] for s in shapes), sum(s[2] for s in shapes)
        print(
            f"  all {len(shapes)} layers: torch {torch_total:.2f} s, cross-check {check_total:.2f} s "
            f"({check_total / torch_total:.1f}x)"
        )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\ntorch {torch.__version__} | numpy {numpy.__version__} | torch threads "
        f"{torch.get_num_threads()} | CPU: {cpu_model()} | {os.cpu_count()} cores | load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=DEFAULT_MAX_EXAMPLES,
        help=f"the campaign's --max-examples (default {DEFAULT_MAX_EXAMPLES})",
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"campaign seed (default {DEFAULT_SEED})")
    parser.add_argument("--shapes", type=Path, default=DEFAULT_SHAPES, help="shape set timed layer by layer")
    parser.add_argument("--no-shapes", action="store_true", help="skip the shape set")
    args = parser.parse_args(argv)
    if args.max_examples < 1 or args.rounds < 1:
        parser.error("--max-examples and --rounds must be at least 1")
    one_thread()
    references, failed, campaign_seconds, checks = campaign(args.max_examples, args.seed)
    disagreements = sum(1 for reference in references if not cross_check(*reference).agree)  # a warm-up too
    print(f"the campaign's references that disagree with the independent one: {disagreements}")
    runs = rounds_of(references, args.rounds)
    failures = [
        cross_checked((case, inputs, expect(case, inputs).values)) for case in failed for inputs in [make_inputs(case)]
    ]
    shapes = None if args.no_shapes else shape_set(args.shapes)
    report(references, runs, failures, campaign_seconds, checks, shapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
