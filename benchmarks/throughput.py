"""Checks per second per core: the harness against a bare loop and a plain @given test.

    python benchmarks/throughput.py                   # default: ~1-2 minutes
    python benchmarks/throughput.py --examples 200 --rounds 5 --impl unfold --impl loop
    python benchmarks/throughput.py --profile         # only the harness, under cProfile

A benchmark, not a timed test: it prints numbers and always exits 0 (2 on bad arguments).
One *check* is one case checked against one implementation. Three modes, measured side by
side in one process, on the same machine, in the same run:

(a) bare loop, "the limit": no Hypothesis, no harness. A fixed list of cases is drawn up
    front from the harness's own strategy (``harness.generate.strategies.cases()``, via a @given
    function under a fixed ``@seed`` that appends each case to a list; drawing is not
    timed). The timed loop then does, per case, what a bare loop would: ``torch.randn``
    input/weight/bias in the case's dtype, the reference once (``torch.nn.functional.conv2d``,
    which is ``torch.nn.Conv2d``'s forward, in the case's dtype, on the contiguous tensors),
    then one call per implementation on copies in the case's memory layout
    (``harness.generate.tensors.lay_out``: the layout is part of the case). No comparison at all.
(b) plain @given test, as a user would write it today for ONE implementation:
    ``@settings(max_examples=N, deadline=None, database=None) @seed(S)
    @given(harness.generate.strategies.cases())``; the body makes ``torch.randn`` tensors (case dtype),
    runs ``F.conv2d`` as the reference (on float64 copies), calls the implementation on copies in the case's
    memory layout and
    ``torch.testing.assert_close`` (looser for float16/bfloat16). Run once per implementation. Under the same seed and
    strategy it draws the same cases as (a).
(c) the harness: ``harness.campaign.engine.fuzz(implementations, max_examples=N, seed=S)``;
    checks = sum of ``result.tallies[name].examples``. The harness draws from the same
    strategy, restricted to the group's first layout, and checks each draw in every layout
    of the group, so (c) sees the same distribution of shapes, arguments and dtypes as (a)
    and (b), with layouts enumerated rather than drawn. It generates its own data
    (``harness.generate.tensors.make_inputs``), runs a float64 reference (``torch.nn.Conv2d``'s
    forward, ``F.conv2d``) plus a magnitude conv for the derived tolerance, and judges every
    output; on one layout of each draw it also calls each implementation a second time
    (determinism) and checks gradients where autograd is declared; around every call it
    checks the process-wide state the call could have changed (``harness.execute.process_state``);
    an implementation that declares less than everything also gets a quarter more cases
    just outside its declaration. None of that extra work is in (a) or (b).

Fairness: everything runs single-threaded (``harness.execute.process_state.one_thread()``: one process is
one core), each mode checks every case against the same implementations (checks are
counted per (case, implementation), about N per implementation in every mode), and all
three modes get one untimed warm-up. Because other jobs share these machines, the modes are
interleaved over several rounds (the order rotates each round) and the median per mode is
reported. The rate per core is computed from the process's CPU time (what this
one-threaded process actually got of a core); wall-clock rates are shown beside it. The
ratios c/a and c/b are the medians of the per-round ratios (the modes of one round run
back to back, under the same load), judged against the issue's targets: c/b >= 4 and
c/a >= 0.5.

``--profile`` runs only (c), once, under cProfile with a CPU-time clock, and prints the top
25 functions by cumulative time (and the top 15 by own time), each also as ms per check.
Profiling inflates Python-heavy code more than torch kernels: read it for where the time
goes, and the table above for how much there is.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed

import harness
from harness.campaign.engine import fuzz, group_by_domain
from harness.execute.process_state import one_thread
from harness.generate.strategies import cases
from harness.generate.support import runnable
from harness.generate.tensors import lay_out
from harness.model.capabilities import ARG_FORMS, Capabilities, call_arguments
from harness.model.case import Case
from harness.model.registry import Implementation, SpecError, discover

DEFAULT_IMPLEMENTATIONS = ("loop", "unfold", "strided", "gather", "numpy")  # vectorised, full semantics
DEFAULT_EXAMPLES = 1000  # per implementation per mode per round
DEFAULT_ROUNDS = 3
DEFAULT_SEED = 20240601
WARMUP_EXAMPLES = 20
TARGET_C_OVER_B = 4.0
TARGET_C_OVER_A = 0.5
MODES = ("a", "b", "c")
# What a user of (b) would reach for where assert_close's defaults are too tight for the
# half types' rounding (and the bare loop has no reference at all to fail).
PLAIN_TOLERANCES: dict[str, dict[str, Any]] = {
    "float16": {"rtol": 2e-2, "atol": 2e-2},
    "bfloat16": {"rtol": 1e-1, "atol": 1e-1},
}
PROJECT = Path(harness.__file__).resolve().parents[1]  # where harness/ and implementations/ are
MODE_NAMES = {"a": "(a) bare loop (limit)", "b": "(b) plain @given", "c": "(c) harness"}


@dataclass
class Timing:
    checks: int
    wall: float
    cpu: float
    note: str = ""


def _timed(work: Callable[[], tuple[int, str]]) -> Timing:
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    checks, note = work()
    return Timing(checks, time.perf_counter() - wall0, time.process_time() - cpu0, note)


def _kwargs(implementation: Implementation, case: Case) -> dict[str, Any]:
    """stride/padding/dilation/groups as a user passes them: straight from the case.

    Only an implementation that takes ints or pairs but not both needs them converted.
    """
    if implementation.capabilities.arg_forms == ARG_FORMS:
        return {"stride": case.stride, "padding": case.padding, "dilation": case.dilation, "groups": case.groups}
    return call_arguments(implementation.capabilities, case)


def _randn(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    dtype = getattr(torch, case.dtype)
    x = torch.randn(case.input_shape, dtype=dtype)
    w = torch.randn(case.weight_shape, dtype=dtype)
    b = torch.randn(case.out_channels, dtype=dtype) if case.bias else None
    return x, w, b


def draw_cases(domain: Capabilities, n: int, seed: int) -> list[Case]:
    """The first ``n`` cases a @given test over ``cases(domain)`` sees under ``seed``."""
    drawn: list[Case] = []

    @settings(max_examples=n, deadline=None, database=None)
    @hypothesis_seed(seed)
    @given(cases(domain))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


# -- (a) the bare loop ------------------------------------------------------------------


def bare_loop(groups: list[tuple[list[Implementation], list[Case]]]) -> tuple[int, str]:
    checks = errors = 0
    for members, drawn in groups:
        for case in drawn:
            x, w, b = _randn(case)
            F.conv2d(x, w, b, case.stride, case.padding, case.dilation, case.groups)  # the reference
            xl, wl = lay_out(x, case.layout), lay_out(w, case.layout)
            for implementation in members:
                try:
                    implementation.fn(xl, wl, b, **_kwargs(implementation, case))
                except Exception:
                    errors += 1
                checks += 1
    return checks, f"{errors} calls raised" if errors else ""


# -- (b) a plain hand-written @given test, one per implementation ------------------------


def plain_given(implementations: list[Implementation], n: int, seed: int) -> tuple[int, str]:
    checks = 0
    failed = []
    for implementation in implementations:
        ran = [0]
        try:
            _plain_test(implementation, n, seed, ran)()
        except Exception as error:  # a failing plain test shrinks: its time is not comparable
            failed.append(f"{implementation.name} failed ({type(error).__name__})")
        checks += ran[0]
    return checks, "; ".join(failed)


def _plain_test(implementation: Implementation, n: int, seed: int, ran: list[int]) -> Callable[[], None]:
    """The test a user would write for one implementation; ``ran[0]`` counts its examples."""
    fn = implementation.fn
    domain = runnable(implementation.capabilities) or implementation.capabilities

    @settings(max_examples=n, deadline=None, database=None)
    @hypothesis_seed(seed)
    @given(cases(domain))
    def test_matches_conv2d(case: Case) -> None:
        ran[0] += 1
        dtype = getattr(torch, case.dtype)
        x = torch.randn(case.input_shape, dtype=dtype)
        w = torch.randn(case.weight_shape, dtype=dtype)
        b = torch.randn(case.out_channels, dtype=dtype) if case.bias else None
        x, w = lay_out(x, case.layout), lay_out(w, case.layout)  # "expanded" repeats values
        # On float64 copies with standard strides, as the harness does: torch's oneDNN path
        # segfaults on some channels_last weights (README, "A torch bug") and on some bfloat16
        # 'same'-padded dilated grouped ones (seed 20240601, 3,000 examples).
        x64, w64 = (t.to(torch.float64, memory_format=torch.contiguous_format) for t in (x, w))
        expected = F.conv2d(
            x64, w64, None if b is None else b.double(), case.stride, case.padding, case.dilation, case.groups
        ).to(dtype)
        actual = fn(x, w, b, **_kwargs(implementation, case))
        torch.testing.assert_close(actual, expected, **PLAIN_TOLERANCES.get(case.dtype, {}))

    return test_matches_conv2d


# -- (c) the harness ---------------------------------------------------------------------


def harness_fuzz(implementations: list[Implementation], n: int, seed: int) -> tuple[int, str]:
    result = fuzz(implementations, max_examples=n, seed=seed)
    checks = sum(result.tallies[impl.name].examples for impl in implementations)
    note = f"{len(result.findings)} findings" if result.findings else ""
    return checks, note


# -- reporting ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"python {platform.python_version()} | torch {torch.__version__} | hypothesis "
        f"{hypothesis.__version__} | torch threads {torch.get_num_threads()}\n"
        f"CPU: {cpu_model()} | {os.cpu_count()} cores | load average {load}"
    )


def report(
    timings: dict[str, list[Timing]], implementations: list[Implementation], examples: int, rounds: int, seed: int
) -> None:
    names = ", ".join(impl.name for impl in implementations)
    print(f"\nimplementations: {names}; --examples {examples} per implementation; --rounds {rounds}; --seed {seed}")
    print(
        "one check = one case against one implementation; medians over rounds; "
        "per core = per CPU-second of this single-threaded process\n"
    )
    header = f"{'mode':<24}{'checks':>8}{'wall s':>9}{'cpu s':>9}{'checks/s/core':>15}{'checks/s wall':>15}"
    print(header)
    print("-" * len(header))
    rate_cpu, rate_wall = {}, {}
    for mode in MODES:
        runs = timings[mode]
        checks = int(statistics.median(t.checks for t in runs))
        wall = statistics.median(t.wall for t in runs)
        cpu = statistics.median(t.cpu for t in runs)
        rate_cpu[mode] = statistics.median(t.checks / t.cpu for t in runs)
        rate_wall[mode] = statistics.median(t.checks / t.wall for t in runs)
        notes = sorted({t.note for t in runs if t.note})
        print(
            f"{MODE_NAMES[mode]:<24}{checks:>8}{wall:>9.2f}{cpu:>9.2f}{rate_cpu[mode]:>15.0f}"
            f"{rate_wall[mode]:>15.0f}" + (f"   ({'; '.join(notes)})" if notes else "")
        )
    spread = {m: (min(t.checks / t.cpu for t in timings[m]), max(t.checks / t.cpu for t in timings[m])) for m in MODES}
    print(
        "range over rounds (checks/s/core): " + ", ".join(f"{m}: {lo:.0f}-{hi:.0f}" for m, (lo, hi) in spread.items())
    )
    print()
    for label, numerator, denominator, target in (
        ("c/b", "c", "b", TARGET_C_OVER_B),
        ("c/a", "c", "a", TARGET_C_OVER_A),
    ):
        per_round = [(c.checks / c.cpu) / (d.checks / d.cpu) for c, d in zip(timings[numerator], timings[denominator])]
        per_round_wall = [
            (c.checks / c.wall) / (d.checks / d.wall) for c, d in zip(timings[numerator], timings[denominator])
        ]
        by_cpu, by_wall = statistics.median(per_round), statistics.median(per_round_wall)
        verdict = "met" if by_cpu >= target else "NOT met"
        print(
            f"{label} = {by_cpu:.2f} per core (rounds: {', '.join(f'{r:.2f}' for r in per_round)}; "
            f"wall: {by_wall:.2f}); target >= {target:g}: {verdict}"
        )
    print()
    print(environment())


def profile(implementations: list[Implementation], examples: int, seed: int, top: int = 25) -> None:
    harness_fuzz(implementations, WARMUP_EXAMPLES, seed + 1)  # warm-up, not profiled
    profiler = cProfile.Profile(time.process_time)  # CPU time: other jobs share the machine
    gc.collect()
    start = time.process_time()
    profiler.enable()
    checks, note = harness_fuzz(implementations, examples, seed)
    profiler.disable()
    cpu = time.process_time() - start
    names = ", ".join(impl.name for impl in implementations)
    print(
        f"(c) harness under cProfile: {names}; {checks} checks in {cpu:.2f} CPU s "
        f"({1000 * cpu / max(checks, 1):.3f} ms per check, profiler overhead included)" + (f"; {note}" if note else "")
    )
    stats = pstats.Stats(profiler)
    entries = list(stats.stats.items())  # type: ignore[attr-defined]
    total = sum(tottime for (_, _, _), (_, _, tottime, _, _) in entries)
    body = sum(
        cumtime
        for (filename, _, function), (_, _, _, cumtime, _) in entries
        if function == "check_variants" and filename.endswith("engine.py")
    )
    examples = sum(
        ncalls
        for (filename, _, function), (_, ncalls, _, _, _) in entries
        if function == "_explore_step" and filename.endswith("engine.py")
    )
    print(
        f"checking the drawn cases (engine.check_variants): {body:.2f} s, "
        f"{1000 * body / max(checks, 1):.3f} ms per check; everything else (Hypothesis: "
        f"generation, engine; the campaign's bookkeeping): {total - body:.2f} s, "
        f"{1000 * (total - body) / max(examples, 1):.2f} ms per drawn example, "
        f"{1000 * (total - body) / max(checks, 1):.3f} ms per check ({examples} examples)"
    )
    in_project = [entry for entry in entries if entry[0][0].startswith(str(PROJECT))]
    for title, rows_of, column, count in (
        ("functions by cumulative time", entries, 3, top),
        ("functions by own time (tottime)", entries, 2, 15),
        ("harness and implementation functions by cumulative time", in_project, 3, 15),
    ):
        rows = sorted(rows_of, key=lambda item: item[1][column], reverse=True)[:count]
        print(f"\ntop {count} {title}")
        print(f"{'ncalls':>9}{'tottime':>9}{'cumtime':>9}{'ms/check':>10}  function")
        for (filename, line, function), (_, ncalls, tottime, cumtime, _) in rows:
            where = function if filename == "~" else f"{_short(filename)}:{line}({function})"
            per_check = 1000 * (cumtime if column == 3 else tottime) / max(checks, 1)
            print(f"{ncalls:>9}{tottime:>9.3f}{cumtime:>9.3f}{per_check:>10.4f}  {where}")
    print()
    print(environment())


def _short(filename: str) -> str:
    if filename.startswith(str(PROJECT)):
        return filename[len(str(PROJECT)) + 1 :]
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    parts = filename.split("/")
    return "/".join(parts[-2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"checks per implementation per mode per round (default {DEFAULT_EXAMPLES})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"interleaved rounds; medians are reported (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Hypothesis and campaign seed")
    parser.add_argument(
        "--impl",
        action="append",
        metavar="NAME",
        help="implementation to check (repeatable; default: " + ", ".join(DEFAULT_IMPLEMENTATIONS) + ")",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run only (c) under cProfile and print the top 25 functions by cumulative time",
    )
    args = parser.parse_args(argv)
    if args.examples < 1 or args.rounds < 1:
        parser.error("--examples and --rounds must be >= 1")
    try:
        registry = discover(args.impl or DEFAULT_IMPLEMENTATIONS)
    except SpecError as error:
        parser.error(str(error))
    if registry.errors:
        parser.error("; ".join(f"{e.name}: {e.reason}" for e in registry.errors))
    implementations = list(registry.implementations.values())
    if not implementations:
        parser.error("no implementations to check")

    one_thread()
    if args.profile:
        profile(implementations, args.examples, args.seed)
        return 0

    # Same cases for (a) as (b) draws: per group of implementations claiming the same domain.
    groups = [
        (members, draw_cases(runnable(domain) or domain, args.examples, args.seed))
        for domain, members in group_by_domain(implementations).items()
    ]
    warm_groups = [(members, drawn[:WARMUP_EXAMPLES]) for members, drawn in groups]
    warm_up: dict[str, Callable[[], tuple[int, str]]] = {
        "a": lambda: bare_loop(warm_groups),
        "b": lambda: plain_given(implementations, WARMUP_EXAMPLES, args.seed + 1),
        "c": lambda: harness_fuzz(implementations, WARMUP_EXAMPLES, args.seed + 1),
    }
    work: dict[str, Callable[[], tuple[int, str]]] = {
        "a": lambda: bare_loop(groups),
        "b": lambda: plain_given(implementations, args.examples, args.seed),
        "c": lambda: harness_fuzz(implementations, args.examples, args.seed),
    }
    print(__doc__.split("\n\n")[0])
    print(environment())
    print("warming up...", flush=True)
    for mode in MODES:
        warm_up[mode]()
    timings: dict[str, list[Timing]] = {mode: [] for mode in MODES}
    for round_ in range(args.rounds):
        order = MODES[round_ % 3 :] + MODES[: round_ % 3]  # rotate, so no mode always runs first
        for mode in order:
            timing = _timed(work[mode])
            timings[mode].append(timing)
            print(
                f"round {round_ + 1}/{args.rounds} {MODE_NAMES[mode]:<24} {timing.checks:>6} checks "
                f"{timing.wall:7.2f} s wall {timing.cpu:7.2f} s cpu {timing.checks / timing.cpu:8.0f} checks/s/core"
                + (f"  ({timing.note})" if timing.note else ""),
                flush=True,
            )
    report(timings, implementations, args.examples, args.rounds, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
