"""Checks per second with 1 and with N worker processes: does a campaign scale over cores,
with local workers and on a Dask cluster?

    python benchmarks/scaling.py                      # 1 vs 2 workers, local and Dask, ~4 minutes
    python benchmarks/scaling.py --examples 5000 --workers 2
    python benchmarks/scaling.py --no-dask            # local workers only, ~2 minutes

Runs the same campaign (``python -m harness fuzz --no-save --seed S``, every registered
implementation) as a user would: with ``--workers 1`` and ``--workers N``, then (where
``distributed`` is installed) with ``--scheduler tcp://...`` on a Dask scheduler and one,
then N, ``dask worker --nthreads 1`` processes started here on 127.0.0.1, each of them
having imported the harness once before the campaign (as the workers of a running cluster
have). It prints the ratios of checks per second, both over the campaign as the harness
times it (worker start-up included) and over the whole command (interpreter and torch
import too). A benchmark, not a test: it always exits 0. Run it on an idle machine: the
point is to compare one busy core with N.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHECKS = re.compile(r"seed \d+: (\d+) checks in ([0-9.]+)s")


def run(how: list[str], examples: int, seed: int) -> tuple[int, float, float]:
    command = [
        sys.executable,
        "-m",
        "harness",
        "fuzz",
        "--no-save",
        "--seed",
        str(seed),
        "--max-examples",
        str(examples),
        *how,
    ]
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    found = CHECKS.search(finished.stdout)
    if not found:
        sys.exit(f"no summary from {' '.join(command)}:\n{finished.stdout}\n{finished.stderr}")
    return int(found.group(1)), float(found.group(2)), elapsed


@contextmanager
def dask_cluster(workers: int) -> Iterator[str]:
    """A scheduler and ``workers`` single-threaded workers on 127.0.0.1, warmed up; yields
    the scheduler's address."""
    from distributed import Client

    with tempfile.TemporaryDirectory(prefix="scaling-") as folder:
        address_file = Path(folder) / "scheduler.json"
        dask = [sys.executable, "-m", "dask"]

        # As the README says to start a cluster's workers: without Dask's stack sampling.
        environment = {**os.environ, "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}

        def quiet(command: list[str]) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=environment
            )

        processes = [
            quiet(
                [
                    *dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(address_file),
                ]
            )
        ]
        try:
            while not address_file.exists():
                time.sleep(0.1)
            processes += [
                quiet(
                    [
                        *dask,
                        "worker",
                        "--scheduler-file",
                        str(address_file),
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ]
                )
                for _ in range(workers)
            ]
            with Client(scheduler_file=str(address_file), timeout=60) as client:  # type: ignore[no-untyped-call]
                client.wait_for_workers(workers, timeout=120)
                client.run(exec, "import harness.cli")
                yield client.scheduler.address
        finally:
            for process in processes:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=6000, help="cases per implementation (default 6000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-dask", action="store_true", help="local workers only")
    args = parser.parse_args()
    rates, walls = {}, {}

    def measure(label: str, how: list[str]) -> None:
        checks, campaign, wall = run(how, args.examples, args.seed)
        rates[label], walls[label] = checks / campaign, checks / wall
        print(
            f"{label}: {checks} checks; campaign {campaign:.1f} s = {rates[label]:.0f} checks/s; "
            f"whole command {wall:.1f} s = {walls[label]:.0f} checks/s",
            flush=True,
        )

    def ratio(label: str, base: str, target: str) -> None:
        print(
            f"speed-up, {label}: {rates[label] / rates[base]:.2f}x over the campaign ({target}), "
            f"{walls[label] / walls[base]:.2f}x for the whole command"
        )

    one, many = "--workers 1", f"--workers {args.workers}"
    measure(one, ["--workers", "1"])
    measure(many, ["--workers", str(args.workers)])
    dask = not args.no_dask
    if dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("Dask: distributed is not installed (pip install 'im2col-harness[dask]'); left out")
            dask = False
    if dask:
        for count in (1, args.workers):
            with dask_cluster(count) as address:
                measure(f"Dask, {count} worker(s)", ["--scheduler", address])
    print(f"vs {one}, the same run:")
    ratio(many, one, "target >= 1.8x on 2 cores")
    if dask:
        ratio(f"Dask, {args.workers} worker(s)", one, "target >= 1.6x on 2 cores")
        ratio(f"Dask, {args.workers} worker(s)", "Dask, 1 worker(s)", "Dask's N workers vs its one")
    print(f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
