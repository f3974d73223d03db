"""Re-run every command output shown in the docs, and check it still says what it shows.

A block of command output in README.md or docs/*.md is checked when the line before its
opening fence is a marker::

    <!-- output: cheap -->                      the block's own `$ ...` lines are the commands
    <!-- output: slow; run: python -m harness fuzz --workers 2 --seed 7 -->
    <!-- output: needs jax, onnxruntime -->     re-run only where those modules import
    <!-- output: manual; why: a Dask scheduler and two workers started by hand -->
    <!-- output: benchmark; run: python benchmarks/throughput.py -->  only its targets compared
    <!-- output: cheap; varies: torch; run: ... -->  torch's own lines depend on the CPU


The commands run in a scratch folder holding a copy of the repository's `corpus/`, the
example implementations of `docs/examples/` and a link to `tests/`, with this repository
first on the import path. What matters is compared, not what a busy machine changes:
timings, rates and absolute paths are normalised away; then every line the block shows
must appear in the fresh output, in order (a block may leave lines out: a line holding
`...` where it leaves something out, such as `reached (...): ...`, and each `...` matches
whatever is there), and the fresh output may not have a FAILED, EXPECTED or table line the block
lacks, unless the block says it leaves those out (`omits: FAILED`). An implementation the
block names in `varies` computes with kernels that differ by CPU, and so do its known bugs
(torch's own: docs/torch.md): its table row is compared on its examples, bugs and verdict
only, and what it says of its expected disagreements, noise, quarantine and what it was
checked on (`EXPECTED`, `not seen`, `not reached`, `noise (...)`, `skipped (...)`,
`reached (...)` of it alone, and the lines under them) is not compared. Its `FAILED` lines
are.

    python docs/check_outputs.py            check the cheap blocks (what CI runs)
    python docs/check_outputs.py --all      check every block that can run here
    python docs/check_outputs.py --update   rewrite the cheap blocks with their fresh output (--all: every one)

A block of output without a marker is an error: whatever the docs show, something checks.
Exit status: 0 every block checked matched, 1 one did not (a diff is printed), 2 usage.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- output: (?P<body>.*) -->$")
# What looks like harness output in a fenced block: such a block must carry a marker.
LOOKS_LIKE_OUTPUT = re.compile(
    r"^(FAILED |EXPECTED |implementation +examples|seed \d+: \d+ checks|\$ python -m harness)", re.MULTILINE
)
# Always shown as the same text, whatever the machine: where the commands ran.
SHOWN_FOLDER = "/tmp/docs"
TIMEOUT = 900  # seconds per command: a slow block on a loaded machine, not a hang


@dataclass
class Block:
    page: Path
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    kind: str  # cheap, slow, needs, benchmark, manual
    needs: tuple[str, ...]
    run: list[str]  # the commands, when the block does not show them
    omits: tuple[str, ...]
    varies: tuple[str, ...]  # implementations whose results depend on the CPU
    lines: list[str]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.start}"

    def commands(self) -> list[str]:
        """The block's `$ ...` lines (continued by a trailing backslash), or its marker's."""
        if self.run:
            return self.run
        commands, current = [], ""
        for line in self.lines:
            if current:
                current += " " + line.strip()
            elif line.startswith("$ "):
                current = line[2:].strip()
            else:
                continue
            if current.endswith("\\"):
                current = current[:-1].strip()
            else:
                commands.append(current)
                current = ""
        return commands


def blocks(page: Path) -> tuple[list[Block], list[str]]:
    """The marked output blocks of ``page``, and an error for each unmarked one."""
    lines = page.read_text().split("\n")
    found, errors = [], []
    inside, start, marker = False, 0, None
    for index, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if not inside:
            inside, start = True, index + 1
            previous = lines[index - 1] if index else ""
            marker = MARKER.match(previous)
            continue
        inside = False
        body = lines[start:index]
        if marker is None:
            if LOOKS_LIKE_OUTPUT.search("\n".join(body)) and not lines[start - 1].startswith("```bash"):
                errors.append(
                    f"{page.relative_to(ROOT)}:{start}: command output without an '<!-- output: ... -->' marker"
                )
            continue
        found.append(_block(page, start, index, marker.group("body"), body))
    return found, errors


def _block(page: Path, start: int, end: int, body: str, lines: list[str]) -> Block:
    fields = [part.strip() for part in body.split(";")]
    kind, *rest = fields
    needs: tuple[str, ...] = ()
    if kind.startswith("needs "):
        kind, needs = "needs", tuple(name.strip() for name in kind[len("needs ") :].split(","))
    if kind not in ("cheap", "slow", "needs", "benchmark", "manual"):
        raise SystemExit(f"{page.relative_to(ROOT)}:{start}: unknown output marker {kind!r}")
    run: list[str] = []
    omits: tuple[str, ...] = ()
    varies: tuple[str, ...] = ()
    for field in rest:
        key, _, value = field.partition(":")
        if key == "run":
            run.append(value.strip())
        elif key == "omits":
            omits = tuple(value.split())
        elif key == "varies":
            varies = tuple(value.split())
        elif key != "why":
            raise SystemExit(f"{page.relative_to(ROOT)}:{start}: unknown marker field {key!r}")
    return Block(page, start, end, kind, needs, run, omits, varies, lines)


def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="docs-"))
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    for example in (ROOT / "docs" / "examples").glob("*.py"):
        shutil.copy(example, folder / example.name)
    (folder / "tests").symlink_to(ROOT / "tests")
    return folder


def run(block: Block) -> list[str]:
    """What the block's commands print now on stdout (the scratch folder and this
    repository's path shown as the same text on any machine), each after a `$ ` line where
    the block shows its commands."""
    folder = _scratch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out: list[str] = []
    try:
        for command in block.commands():
            argv = shlex.split(command)
            if argv[0] == "python":
                argv[0] = sys.executable
            done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT)
            if not block.run:
                out.append(f"$ {command}")
            # stdout only: stderr holds the progress line, which depends on the machine's speed.
            text = done.stdout.replace(str(folder), SHOWN_FOLDER).replace(str(ROOT), ".")
            out += text.rstrip("\n").split("\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


TIMING = [
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<s>"),  # 5.2s, 12s
    (re.compile(r"\(\d+/s\)"), "(<rate>)"),
    (re.compile(r"\b\d+ cases/s"), "<rate> cases/s"),
    (re.compile(r", about <s> left"), ""),
    (re.compile(r"(/[\w.\-]+)+/(corpus/)"), r"<dir>/\2"),  # a corpus's absolute path
]


def normalised(line: str) -> str:
    for pattern, replacement in TIMING:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def _matches(shown: str, fresh: str) -> bool:
    """Equal, where each `...` the block shows stands for whatever it left out."""
    if "..." not in shown:
        return shown == fresh
    return re.fullmatch(".*".join(map(re.escape, shown.split("..."))), fresh) is not None


def _output(lines: list[str]) -> list[str]:
    """``lines`` without the commands shown in them (a `$ ` line and its continuations)."""
    kept, continued = [], False
    for line in lines:
        command = continued or line.startswith("$ ")
        continued = command and line.endswith("\\")
        if not command:
            kept.append(normalised(line))
    return kept


TARGET = re.compile(r"^(?P<what>.*?) = .*target (?P<target>[^:]*): (?P<met>met|NOT met|not met)")


ROW = re.compile(r"^\S+ +\d+ +(\d+ +\d+ +\d+ |\(statuses)")  # a summary table's row


def _masked(line: str, masked: dict[str, str]) -> str:
    """A summary table row of an implementation in ``masked``, its status counts left out
    (for the reason it maps to)."""
    fields = line.split()
    if len(fields) < 5 or fields[0] not in masked or not fields[1].isdigit():
        return line
    return " ".join([fields[0], fields[1], f"(statuses not compared: {masked[fields[0]]})", *fields[-2:]])


def _steady(lines: list[str], varies: tuple[str, ...]) -> list[str]:
    """``lines`` without what the implementations in ``varies`` say of their expected
    disagreements, noise, quarantine and reach (each such line and the indented ones under it)."""
    said = tuple(f"{prefix}{name}{end}" for name in varies for prefix, end in _VARYING)
    kept, under = [], False
    for line in lines:
        under = line.startswith(said) or (under and line.startswith(" "))
        if not under:
            kept.append(line)
    return kept


_VARYING = [
    ("EXPECTED ", " "),
    ("not seen ", ": "),
    ("not reached ", ": "),
    ("noise (", "):"),
    ("skipped (", "):"),
    ("reached (", "):"),  # what it was checked on: less what a quarantine skipped
]


def differences(block: Block, fresh: list[str]) -> list[str]:
    """What the fresh output says differently from the block, in what matters: for a
    benchmark, whether each target is met; for the rest, see the module docstring."""
    shown, now = _output(block.lines), _output(fresh)
    if block.kind == "benchmark":
        verdicts = {m["what"]: m["met"] for m in map(TARGET.match, now) if m}
        return [
            f"  {m['what']}: target {m['target']} {m['met']} as shown, now {verdicts.get(m['what'], 'not said')}"
            for m in map(TARGET.match, shown)
            if m and verdicts.get(m["what"]) != m["met"]
        ]
    # A call that ran past its time limit on a busy machine and returned when made again is
    # counted slow, and moves a check between the table's status columns: for such an
    # implementation its row is compared on its examples, bugs and verdict only.
    slow = {m[1] for m in map(re.compile(r"^slow \((.*?)\): ").match, now) if m}
    masked = {**dict.fromkeys(slow, "slow calls"), **dict.fromkeys(block.varies, "varies by CPU")}
    shown = [_masked(line, masked) for line in _steady(shown, block.varies)]
    now = [_masked(line, masked) for line in _steady(now, block.varies)]
    problems, position = [], 0
    for line in shown:
        for index in range(position, len(now)):
            if _matches(line, now[index]):
                position = index + 1
                break
        else:
            problems.append(f"  shown, not in the fresh output: {line}")
    shown_set = set(shown)
    for line in now:
        important = line.startswith(("FAILED ", "EXPECTED ")) or ROW.match(line)
        omitted = any(line.startswith(prefix) for prefix in block.omits) or (
            "table" in block.omits and re.match(r"^\S+ +\d+ +\d+ ", line)
        )
        if important and not omitted and line not in shown_set:
            problems.append(f"  in the fresh output, not shown: {line}")
    return problems


def update(block: Block, fresh: list[str]) -> None:
    lines = block.page.read_text().split("\n")
    lines[block.start : block.end] = fresh
    block.page.write_text("\n".join(lines))


def runnable(block: Block, everything: bool) -> str | None:
    """Why ``block`` is not re-run here, or None."""
    if block.kind == "manual":
        return "run by hand"
    missing = [name for name in block.needs if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {', '.join(missing)}"
    if block.kind in ("slow", "needs", "benchmark") and not everything:
        return "not cheap (--all runs it)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="check the slow blocks too")
    parser.add_argument("--update", action="store_true", help="rewrite each block run with its fresh output")
    parser.add_argument("--only", metavar="TEXT", help="only blocks whose page:line contains TEXT")
    args = parser.parse_args(argv)
    failed = 0
    for page in PAGES:
        found, errors = blocks(page)
        for error in errors:
            print(error)
            failed += 1
        # From the end of the page: an update changes the line numbers of what follows it.
        for block in reversed(found):
            if args.only and args.only not in block.where:
                continue
            why = runnable(block, args.all)
            if why is not None:
                print(f"{block.where}: not re-run ({why})")
                continue
            fresh = run(block)
            if args.update:
                update(block, fresh)
                print(f"{block.where}: updated")
                continue
            problems = differences(block, fresh)
            print(f"{block.where}: {'differs' if problems else 'matches'}")
            for problem in problems:
                print(problem)
            failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
