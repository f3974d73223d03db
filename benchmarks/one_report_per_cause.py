"""One default campaign over every pattern that split or misled reports on real code, and how
many reports each cause got (issue 19's "one report per cause, the trigger named").

    python benchmarks/one_report_per_cause.py              # seed 1, 2 workers: about 20 minutes
    python benchmarks/one_report_per_cause.py --seed 7 --workers 1

A benchmark, not a test: the per-shape "compiler" sleeps 3 s on each new shape, so a default
campaign with it takes minutes, and the tests check each pattern in campaigns of their own
(tests/test_triggers.py, tests/test_declarations.py, tests/test_time_limits.py). It runs
`python -m harness fuzz` as a user would, with the default number of cases, in tests/ (where
the plants live), over the plants in `PLANTS`, one campaign for all of them, and prints for
each: its cause, the reports it got (kind, and whether the diagnosis names the trigger in
the words expected), and at the end reports per cause, whether any timeout was reported for
the compiling library and whether any of the harness's own time-limit signal showed in
anyone's output. It always exits 0 (2 on bad arguments): it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


@dataclass(frozen=True)
class Plant:
    """One planted cause: the report it should get (its kind, words its diagnosis should
    say), or none at all (``kind`` None: a correct library that is merely slow)."""

    cause: str
    kind: str | None
    words: str = ""


PLANTS = {
    "trigger_bugs.py:misaligned_matmul": Plant("an exception whose message embeds the shapes", "exception"),
    "trigger_bugs.py:same_padding_even_kernel_left": Plant(
        "'same' padding split the other way round for an even kernel", "values", "an even kernel with padding='same'"
    ),
    "trigger_bugs.py:one_column_fast_path": Plant(
        "a fast path for a one-column output with a stride", "shape", "an output one column wide"
    ),
    "trigger_bugs.py:stride_past_the_kernel": Plant(
        "a stride larger than the kernel's reach", "values", "a stride larger than the kernel's reach"
    ),
    "trigger_bugs.py:drops_bias_when_grouped": Plant("a bias dropped only with groups", "values", "bias, groups>1"),
    "declared.py:same_ignores_dilation_declared": Plant(
        "wrong just outside a declared conditional limit", "outside-declared", "dilation>1"
    ),
    "hostile_timing.py:compiles_per_shape": Plant("a library compiling 3 s per new shape (undeclared)", None),
    "hostile_timing.py:collects_while_hanging_with_bias": Plant(
        "a gc callback running during calls, hanging with a bias", "timeout", "bias"
    ),
}
SIGNALS = ("_TimeLimit", "Exception ignored")  # the harness's own timer, had it landed in foreign code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        command = [sys.executable, "-m", "harness", "fuzz", "--seed", str(args.seed), "--workers", str(args.workers)]
        command += ["--no-save", "--report", str(report_path)]
        for spec in PLANTS:
            command += ["--impl", spec]
        shown = " ".join(["python", *command[1:]]).replace(str(report_path), "report.json")
        print(f"$ (cd tests && {shown})", flush=True)
        start = time.monotonic()
        ran = subprocess.run(command, cwd=TESTS, capture_output=True, text=True)
        seconds = time.monotonic() - start
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None:
        print(f"the campaign wrote no report (exit {ran.returncode}):\n{ran.stdout[-3000:]}{ran.stderr[-2000:]}")
        return 0
    rows, causes, reports = report["implementations"], 0, 0
    print(f"one campaign, seed {args.seed}, {args.workers} worker(s), {seconds:.0f} s (exit {ran.returncode})\n")
    print(f"{'plant':<52} {'cause':<62} reports")
    for spec, plant in PLANTS.items():
        failures = rows[spec]["failures"]
        causes += 1
        reports += len(failures)
        said = [
            f"{f['kind']}{' (trigger named)' if plant.words and plant.words in f['message'] else ''}" for f in failures
        ]
        slow = f", {rows[spec]['slow']} slow call(s)" if rows[spec]["slow"] else ""
        print(f"{spec:<52} {plant.cause:<62} {len(failures)}: {', '.join(said) or 'none'}{slow}")
    timeouts = [f for f in rows["hostile_timing.py:compiles_per_shape"]["failures"] if f["kind"] == "timeout"]
    signals = [signal for signal in SIGNALS if signal in ran.stdout + ran.stderr]
    print(f"\n{reports} report(s) for {causes} plants ({sum(p.kind is not None for p in PLANTS.values())} bugs)")
    print(f"timeouts reported for the compiling library: {len(timeouts)}")
    print(f"the harness's time-limit signal in anyone's output: {', '.join(signals) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
