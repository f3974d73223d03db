"""``python -m harness matrix``: one seeded campaign (and the saved corpus) under every torch
version tox knows, and one table of what changed (`harness.reporting.matrix`).

Two passes over the versions (`harness.backends.versions`, each a child process with that
tox env's Python). First the same campaign (``fuzz --seed S``) under each: what each finds
is a row. Then every row's case id is replayed under every version (``replay CASE...
--impl I``, one child per implementation and version): a cell is what that version did
with that very case, not whether its own campaign happened to draw it. A replay child that
dies without a report is replayed again case by case, so a crash is the crash of one cell.

Exit status: 0 when every version ran, whatever the cells say (the matrix reports, it
does not judge: each version's own campaign, ``tox -e torchX.Y``, does); 1 when a version
could not be run (its env could not be made, or its campaign wrote no report); 2 for a
usage error. Envs not created are skipped unless ``--create``, and said so.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.arguments import USAGE_ERROR, UsageError, refused
from harness.backends.versions import Env, Ran, VersionsError, create, run_harness, tox_envs
from harness.model.finding import identity
from harness.model.text import clipped, one_line, printable
from harness.reporting import matrix as table
from harness.reporting import report as reports
from harness.reporting.matrix import CORPUS, CRASH, NOT_REACHED, NOT_RUN, Cell, Column, Found, Matrix, ReportError, Row
from harness.store import corpus as corpus_store


def _say(text: str) -> None:
    """Progress and notes, on stderr: stdout is the table's when there is no --output."""
    print(printable(text), file=sys.stderr, flush=True)


def _writable(flag: str, path: Path | None) -> None:
    if path is None:
        return
    try:
        with tempfile.TemporaryFile(dir=path.resolve().parent):
            pass
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot write there: {error.strerror}") from None


def _envs(args: argparse.Namespace) -> list[Env]:
    try:
        envs = tox_envs(args.tox_ini)
    except VersionsError as error:
        raise UsageError(str(error)) from None
    known = {env.name for env in envs}
    unknown = [name for name in args.env if name not in known]
    if unknown:
        raise UsageError(
            f"--env {unknown[0]}: {args.tox_ini} has no such torch env (it has: {', '.join(sorted(known))})"
        )
    if args.corpus is not None and not args.corpus.is_dir():
        raise UsageError(f"--corpus {args.corpus}: not a directory")
    return [env for env in envs if not args.env or env.name in args.env]


def _corpus(directory: Path | None, impls: Sequence[str]) -> list[Found]:
    """The corpus's saved failures as rows: those of the implementations named (each under
    the spec given), or all of them when none is."""
    if directory is None:
        return []
    loaded = corpus_store.load(directory)
    for error in loaded.errors:
        _say(f"corpus: {one_line(clipped(error))}")
    spelled = {identity(spec): spec for spec in impls}  # a file is saved by its name: replayed by the path given
    found = [
        Found(
            spelled.get(identity(entry.implementation), entry.implementation),
            entry.case.id,
            entry.verdict.kind or "",
            entry.diagnosis,
        )
        for _, entry in loaded.entries
    ]
    return [f for f in found if not spelled or f.key[0] in spelled]


def _why(ran: Ran) -> str:
    lines = [line for line in ran.tail.splitlines() if line.strip()]
    return f"exit status {ran.status}" + (f": {clipped(lines[-1])}" if lines else "")


def _fuzz(env: Env, args: argparse.Namespace, seed: int, folder: Path) -> tuple[Ran, list[Found], str]:
    """The campaign under ``env``: what it ran, what it found, and why it could not, if not."""
    arguments = ["fuzz", "--seed", str(seed), "--no-save", *(f"--impl={spec}" for spec in args.impl)]
    arguments += [f"--max-examples={args.max_examples}"] if args.max_examples else []
    arguments += ["--isolate"] if args.isolate else []
    ran = run_harness(env.python, arguments, folder / f"{env.name}-fuzz.json", folder / "output")
    if ran.report is None:
        return ran, [], f"its campaign wrote no report ({_why(ran)})"
    try:
        return ran, table.findings_from(ran.report), ""
    except ReportError as error:
        return ran, [], f"its campaign's report: {error}"


def _replay(env: Env, implementation: str, cases: list[str], folder: Path) -> tuple[dict[tuple[str, str], Cell], float]:
    """Each of ``cases`` replayed with ``implementation`` under ``env``; case by case again
    when a child dies without its report, where a case that takes its child with it is a crash
    (refused as a usage error, it is not reached). Returns the cells and the seconds taken."""
    ran = run_harness(
        env.python,
        ["replay", *cases, f"--impl={implementation}"],
        folder / f"{env.name}-replay.json",
        folder / "output",
    )
    seconds = ran.seconds
    if ran.report is not None:
        try:
            cells = table.cells_from(ran.report)
        except ReportError as error:
            cells = {(identity(implementation), case): Cell(NOT_RUN, why=str(error)) for case in cases}
        errors = ran.report.get("errors") if isinstance(ran.report, dict) else None
        why = "not replayed there" + (f": {clipped(str(errors[0]))}" if isinstance(errors, list) and errors else "")
        for case in cases:
            cells.setdefault((identity(implementation), case), Cell(NOT_REACHED, why=why))
        return cells, seconds
    if len(cases) == 1:
        state = NOT_REACHED if ran.status == USAGE_ERROR else CRASH
        return {(identity(implementation), cases[0]): Cell(state, why=_why(ran))}, seconds
    cells = {}
    for case in cases:
        more, took = _replay(env, implementation, [case], folder)
        cells.update(more)
        seconds += took
    return cells, seconds


def build(envs: Sequence[Env], args: argparse.Namespace, seed: int) -> Matrix:
    """Create what is asked, run the campaign and the replays under each env, and the table:
    its columns in tox.ini's order (oldest torch first), an env not created left out."""
    columns: dict[str, Column] = {}
    notes, ready = [], []
    for env in envs:
        if env.created:
            ready.append(env)
        elif args.create:
            _say(f"{env.name}: creating it (tox -e {env.name} --notest, {env.pin or 'torch'}) ...")
            problem = create(env, args.tox_ini)
            if problem:
                columns[env.name] = Column(env.name, problem=problem)
            else:
                ready.append(env)
        else:
            notes.append(f"{env.name}: not created: run with --create (downloads ~{env.download_gb:g} GB)")
            _say(notes[-1])
    found: list[tuple[str, Found]] = []
    with tempfile.TemporaryDirectory(prefix="harness-matrix-") as temporary:
        folder = Path(temporary)
        for env in ready:
            _say(f"{env.name}: fuzzing (seed {seed}) ...")
            ran, findings, problem = _fuzz(env, args, seed, folder)
            columns[env.name] = Column(env.name, table.torch_of(ran.report), ran.seconds, problem)
            found += [(env.name, finding) for finding in findings]
            _say(
                f"{env.name}: torch {columns[env.name].torch or '?'}: {len(findings)} finding(s) "
                f"in {ran.seconds:.1f}s" + (f"; NOT RUN: {problem}" if problem else "")
            )
        rows = table.rows_of(found + [(CORPUS, finding) for finding in _corpus(args.corpus, args.impl)])
        cells = {}
        for env in ready:
            if not columns[env.name].problem:
                cells[env.name], seconds = _replay_all(env, rows, folder)
                columns[env.name] = replace(columns[env.name], seconds=columns[env.name].seconds + seconds)
    ordered = [columns[env.name] for env in envs if env.name in columns]
    for row in rows:
        row.cells = [cells.get(c.env, {}).get(row.found.key, Cell(NOT_RUN, why=c.problem)) for c in ordered]
    return Matrix(seed, args.max_examples, ordered, rows, notes)


def _replay_all(env: Env, rows: Sequence[Row], folder: Path) -> tuple[dict[tuple[str, str], Cell], float]:
    """Every row's case replayed under ``env``, one child per implementation; and the seconds taken."""
    by_implementation: dict[str, list[str]] = {}
    for row in rows:
        by_implementation.setdefault(row.found.implementation, []).append(row.found.case)
    cells: dict[tuple[str, str], Cell] = {}
    seconds = 0.0
    for implementation, cases in by_implementation.items():
        more, took = _replay(env, implementation, cases, folder)
        cells.update(more)
        seconds += took
    _say(f"{env.name}: replayed {len(rows)} finding(s) in {seconds:.1f}s")
    return cells, seconds


def command_matrix(args: argparse.Namespace) -> int:
    try:
        envs = _envs(args)
        _writable("--output", args.output)
        _writable("--report", args.report)
        seed = random.getrandbits(32) if args.seed is None else args.seed
        matrix = build(envs, args, seed)
        markdown = table.markdown(matrix)
        try:
            if args.report is not None:
                reports.write(args.report, table.to_json(matrix))
            if args.output is not None:
                reports.write_text(args.output, markdown)
        except OSError as error:
            raise UsageError(f"cannot write the matrix: {error.strerror}") from None
    except UsageError as error:
        return refused(error)
    if args.output is None:
        print(printable(markdown), end="", flush=True)
    else:
        _say(f"matrix: wrote {args.output}")
    ran = [column for column in matrix.columns if not column.problem]
    return 0 if ran and matrix.complete else 1
