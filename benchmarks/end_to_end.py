"""A campaign from the command line against a plain @given test, end to end on one core.

    python benchmarks/end_to_end.py                   # default: loop and original, 3 rounds, ~3 minutes
    python benchmarks/end_to_end.py --impl unfold --examples 3000 --rounds 5 --cpu 1

A benchmark, not a timed test: it prints numbers and always exits 0 (2 on bad arguments).
What a user pays for one implementation, each command a fresh process pinned to one core
(``os.sched_setaffinity``), interpreter start-up and imports included:

(a) the harness: ``python -m harness fuzz --impl IMPL --max-examples N --seed S --no-save``,
    its checks as the command counts them (its last line: "seed S: C checks in ...": every
    layout and data kind of every draw, and for an implementation that declares less than
    everything, the quarter more cases just outside its declaration), over the command's
    time.
(b) a plain Hypothesis test, as a user would write it for that implementation: the one
    ``benchmarks/throughput.py`` measures as its mode (b) (`throughput._plain_test`:
    ``@settings(max_examples=N, deadline=None, database=None)`` over
    ``harness.generate.strategies.cases()`` in the implementation's declared domain, the
    implementation against ``torch.nn.functional.conv2d`` (in float64) by ``torch.testing.assert_close``),
    run as a script in a process of its own: its examples (calls of the test body) over the
    process's time. A plain test stops at its first failure and shrinks it: for a buggy
    implementation its examples are those it ran before failing plus its shrinking steps,
    and the ratio compares what each costs per check, not how far each got.

Both run single-threaded (`process_state.one_thread`, as the harness does). Rounds
alternate (a) and (b), the order rotating, and the ratio a/b is the median of the per-round
ratios of examples per second (the two of a round run back to back, under the same load);
each mode gets one untimed run first (the file system's caches). Rates are per second of the
command's CPU time (what it got of its core on a shared machine; wall time beside it). The target is
a/b >= 2 at 3,000 examples.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from throughput import cpu_model, plain_given  # this folder: the plain test is written once, there

from harness.execute.process_state import one_thread
from harness.model.registry import discover

DEFAULT_IMPLEMENTATIONS = ("loop", "original")  # a correct one, and the known-buggy canary: bugs cost shrinking
DEFAULT_EXAMPLES = 3000
DEFAULT_ROUNDS = 3
DEFAULT_SEED = 20240601
TARGET = 2.0
CHECKS = re.compile(r"seed \d+: (\d+) checks in")
PLAIN = re.compile(r"plain: (\d+) examples(.*)")
MODES = {"a": "(a) harness fuzz", "b": "(b) plain @given"}


def harness_command(implementation: str, examples: int, seed: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness",
        "fuzz",
        "--impl",
        implementation,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--no-save",
    ]


def plain_command(implementation: str, examples: int, seed: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--plain-child", implementation, str(examples), str(seed)]


@dataclass
class Run:
    examples: int
    wall: float
    cpu: float  # the child's user and system time
    note: str


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], pattern: re.Pattern[str], cpu: int) -> Run:
    """One command run on core ``cpu``: its examples, wall and CPU seconds."""
    started, cpu_before = time.perf_counter(), _cpu_of_children()
    finished = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )
    wall, used = time.perf_counter() - started, _cpu_of_children() - cpu_before
    found = pattern.search(finished.stdout)
    if not found:
        sys.exit(f"no count from {' '.join(command)}:\n{finished.stdout}\n{finished.stderr}")
    note = found.group(2).strip(" ;") if pattern is PLAIN else ""
    return Run(int(found.group(1)), wall, used, note)


def plain_child(implementation: str, examples: int, seed: int) -> None:
    """Mode (b) in this process: throughput.py's plain test, once; prints its count."""
    one_thread()
    checks, note = plain_given(list(discover([implementation]).implementations.values()), examples, seed)
    print(f"plain: {checks} examples" + (f"; {note}" if note else ""))


def measure(implementation: str, examples: int, seed: int, rounds: int, cpu: int) -> dict[str, list[Run]]:
    """Each mode's runs, rounds alternating (a) and (b), after one untimed run of each."""
    commands = {
        "a": (harness_command(implementation, examples, seed), CHECKS),
        "b": (plain_command(implementation, examples, seed), PLAIN),
    }
    for command, pattern in commands.values():
        timed(command, pattern, cpu)  # warm-up
    runs: dict[str, list[Run]] = {mode: [] for mode in commands}
    for round_ in range(rounds):
        for mode in ("a", "b") if round_ % 2 == 0 else ("b", "a"):
            run = timed(*commands[mode], cpu)
            runs[mode].append(run)
            print(
                f"  {implementation} round {round_ + 1}/{rounds} {MODES[mode]:<18} {run.examples:>6} examples "
                f"{run.wall:7.2f} s wall {run.cpu:7.2f} s cpu {run.examples / run.cpu:8.1f}/cpu s"
                + (f"  ({run.note})" if run.note else ""),
                flush=True,
            )
    return runs


def ratio(runs: dict[str, list[Run]], seconds: str) -> float:
    """The median over rounds of a/b in examples per second (``seconds``: "cpu" or "wall")."""

    def rate(run: Run) -> float:
        return run.examples / (run.cpu if seconds == "cpu" else run.wall)

    return statistics.median(rate(a) / rate(b) for a, b in zip(runs["a"], runs["b"]))


def table(figures: dict[str, dict[str, list[Run]]]) -> None:
    header = (
        f"{'implementation':<16}{'(a) examples':>13}{'(b) examples':>13}{'(a) /cpu s':>11}{'(b) /cpu s':>11}"
        f"{'a/b cpu':>9}{'a/b wall':>10}  target a/b >= {TARGET:g}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for name, runs in figures.items():
        count = {mode: int(statistics.median(run.examples for run in runs[mode])) for mode in runs}
        rate = {mode: statistics.median(run.examples / run.cpu for run in runs[mode]) for mode in runs}
        by_cpu = ratio(runs, "cpu")
        print(
            f"{name:<16}{count['a']:>13}{count['b']:>13}{rate['a']:>11.1f}{rate['b']:>11.1f}{by_cpu:>9.2f}"
            f"{ratio(runs, 'wall'):>10.2f}  {'met' if by_cpu >= TARGET else 'NOT met'}"
        )
    print(
        "\nexamples per second of the command's CPU time (user + system: what it got of its core, on a "
        "shared machine), start-up included; medians over rounds; a/b: the median of the per-round ratios, "
        "by CPU time and by wall time"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"--max-examples of (a), max_examples of (b) (default {DEFAULT_EXAMPLES})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds; medians are reported (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the campaign's and the plain test's seed")
    parser.add_argument(
        "--impl",
        action="append",
        metavar="NAME",
        help="implementation to measure (repeatable; default: " + ", ".join(DEFAULT_IMPLEMENTATIONS) + ")",
    )
    parser.add_argument("--cpu", type=int, default=0, help="the core every command runs on (default 0)")
    parser.add_argument("--plain-child", nargs=3, metavar=("NAME", "N", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_child:
        name, examples, seed = args.plain_child
        plain_child(name, int(examples), int(seed))
        return 0
    if args.examples < 1 or args.rounds < 1:
        parser.error("--examples and --rounds must be >= 1")
    if args.cpu not in os.sched_getaffinity(0):
        parser.error(f"--cpu {args.cpu} is not a core this process may run on")
    implementations = args.impl or list(DEFAULT_IMPLEMENTATIONS)
    print(__doc__.split("\n\n")[0])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"CPU: {cpu_model()} | core {args.cpu} of {os.cpu_count()} | load average {load} | "
        f"python {sys.version.split()[0]}"
    )
    print(f"--examples {args.examples}; --rounds {args.rounds}; --seed {args.seed}\n", flush=True)
    table({name: measure(name, args.examples, args.seed, args.rounds, args.cpu) for name in implementations})
    return 0


if __name__ == "__main__":
    sys.exit(main())
