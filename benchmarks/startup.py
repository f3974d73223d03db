"""How long ``python -m harness`` takes to answer --help or a usage error, against a bare interpreter.

    python benchmarks/startup.py               # default: 9 runs of each
    python benchmarks/startup.py --runs 21

A benchmark, not a timed test: it prints numbers and always exits 0 (2 on bad arguments).
Each command is run as a fresh process with the interpreter running this script, in the
checkout this script is in (so that ``-m harness`` is that checkout's), in turns
(the commands of one round back to back, under the same load: other jobs share these
machines), and the median wall-clock time of each is reported, with its ratio to the
median of ``python -c pass`` (the interpreter's own start-up, the floor). The harness's
parent answers --help and usage errors itself (harness.arguments), before torch or a child
process: these times are that path's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # where the commands run: `-m harness` imports this checkout's
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -m harness --help": ["-m", "harness", "--help"],
    "python -m harness fuzz --help": ["-m", "harness", "fuzz", "--help"],
    "python -m harness fuzz --max-exampels 3": ["-m", "harness", "fuzz", "--max-exampels", "3"],
    "python -m harness fuzz --seed x": ["-m", "harness", "fuzz", "--seed", "x"],
}


def _seconds(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *arguments], cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (default %(default)s)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for arguments in COMMANDS.values():  # one untimed warm-up each: the file cache
        _seconds(arguments)
    for _ in range(args.runs):
        for name, arguments in COMMANDS.items():
            times[name].append(_seconds(arguments))
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':42} {'median':>8} {'min':>8} {'x python -c pass':>17}  ({args.runs} runs each)")
    for name, taken in times.items():
        median = statistics.median(taken)
        print(f"{name:42} {median:7.3f}s {min(taken):7.3f}s {median / floor:16.1f}x")
    print(
        f"python {sys.version.split()[0]} | {len(os.sched_getaffinity(0))} cores | load average "
        + " ".join(f"{load:.2f}" for load in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
