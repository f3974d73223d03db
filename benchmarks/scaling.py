"""Checks per second with 1 and with N worker processes: does a campaign scale over cores?

    python benchmarks/scaling.py                      # 1 vs 2 workers, ~2 minutes
    python benchmarks/scaling.py --examples 5000 --workers 2

Runs the same campaign (``python -m harness fuzz --no-save --seed S``, every registered
implementation) once with ``--workers 1`` and once with ``--workers N``, as a user would,
and prints the ratio of checks per second, both over the campaign as the harness times it
(worker start-up included) and over the whole command (interpreter and torch import too).
A benchmark, not a test: it always exits 0. Run it on an idle machine:
the point is to compare one busy core with N.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

CHECKS = re.compile(r"seed \d+: (\d+) checks in ([0-9.]+)s")


def run(workers: int, examples: int, seed: int) -> tuple[int, float, float]:
    command = [sys.executable, "-m", "harness", "fuzz", "--no-save", "--seed", str(seed),
               "--max-examples", str(examples), "--workers", str(workers)]
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    found = CHECKS.search(finished.stdout)
    if not found:
        sys.exit(f"no summary from {' '.join(command)}:\n{finished.stdout}\n{finished.stderr}")
    return int(found.group(1)), float(found.group(2)), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=6000, help="cases per implementation (default 6000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rates, walls = {}, {}
    for workers in (1, args.workers):
        checks, campaign, wall = run(workers, args.examples, args.seed)
        rates[workers], walls[workers] = checks / campaign, checks / wall
        print(f"--workers {workers}: {checks} checks; campaign {campaign:.1f} s = {rates[workers]:.0f} checks/s; "
              f"whole command {wall:.1f} s = {walls[workers]:.0f} checks/s")
    ratio, wall_ratio = rates[args.workers] / rates[1], walls[args.workers] / walls[1]
    print(f"speed-up with {args.workers} workers: {ratio:.2f}x over the campaign (target >= 1.8x on 2 cores), "
          f"{wall_ratio:.2f}x for the whole command (Python and torch start-up included); "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
