"""The command line: ``python -m harness list | fuzz | conformance | replay | show | extremes | corpus merge |
matrix``, its
commands; their arguments are `harness.arguments`'.

Exit status: 0 when every implementation behaved as registered (correct ones passed,
canaries were caught), 1 when not, 2 for a usage error. Usage errors are one line on
stderr, never a traceback. Everything printed goes through `_say`, which escapes control
characters: implementation names, exception messages, corpus file names and case ids are
untrusted text. Nothing here imports what a corpus file names.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import TextIO

from harness import launcher, matrix_cli
from harness.arguments import UsageError, parse, refused
from harness.backends import dask_cluster as cluster
from harness.backends.base import Backend, Options
from harness.backends.plan import (
    Scheduler,
    Shard,
    shard_count,
)
from harness.backends.processes import Processes
from harness.backends.run import run_campaign
from harness.backends.serial import Serial
from harness.campaign import extremes
from harness.campaign.engine import Progress
from harness.campaign.replay import Target, absent, replay, shape_targets, targets_from
from harness.execute.journal import FOLDER
from harness.model.case import Case, CaseError, Limits
from harness.model.finding import Finding
from harness.model.registry import ENTRY_POINT_GROUP, Registry, SpecError, check_file_spec, check_form, discover
from harness.model.text import MESSAGE_LIMIT, clipped, one_line, printable
from harness.model.verdict import EXPECTED
from harness.reporting import conformance
from harness.reporting import report as reports
from harness.reporting.standalone import script
from harness.store import corpus as corpus_store
from harness.store.corpus import CorpusError


def _say(text: str, *, file: TextIO | None = None, end: str = "\n") -> None:
    """Print ``text`` (stdout by default) with every control or reordering character in it
    shown as an escape (harness.model.text): what this module prints holds untrusted strings,
    and one escape sequence among them could clear or retitle the user's terminal.
    ``end`` is the harness's own."""
    print(printable(text), end=end, file=file or sys.stdout, flush=True)


# -- commands ----------------------------------------------------------------------------


def _registry(specs: Sequence[str]) -> Registry:
    try:
        return discover(specs)
    except SpecError as error:
        raise UsageError(str(error)) from None


def _writable(directory: Path) -> None:
    """Create a file in ``directory`` and remove it; a unique one, so that concurrent probes
    (parallel campaigns on one corpus) never remove each other's."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"corpus directory {directory} is not writable: {error.strerror}") from None


def _outputs_writable(corpus: Path | None, report: Path | None) -> None:
    """Before a campaign, not after it: the corpus folder and the report file can be written."""
    if corpus is not None:
        _writable(corpus)
    if report is None:
        return
    try:
        if report.exists() and not report.is_file():  # opened to append nothing, without waiting on a FIFO
            os.close(os.open(report, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        else:  # a file is written beside it and renamed over it (harness.reporting.report.write_text)
            with tempfile.TemporaryFile(dir=Path(os.path.realpath(report)).parent):
                pass
    except OSError as error:
        raise UsageError(f"--report {report}: cannot write there: {error.strerror}") from None


@contextmanager
def _writing(flag: str, path: Path) -> Iterator[None]:
    """Writing the report or table at the end of a command: a failure (a full disk) is one
    line naming it, exit status 2, and what was printed and saved stands."""
    try:
        yield
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot write: {error.strerror}") from None


def command_list(args: argparse.Namespace) -> int:
    registry = _registry(args.impl)
    rows = []
    for name, implementation in registry.implementations.items():
        narrowed = implementation.capabilities.shown()
        claims = "; ".join(narrowed) if narrowed else "everything"
        role = "known-buggy canary" if implementation.known_buggy else "claims correct"
        rows.append([name, role, claims])
    rows += [
        [u.name, "unavailable", f"{', '.join(u.missing)} not installed: {u.install}"] for u in registry.unavailable
    ]
    rows.sort(key=lambda row: row[0])
    _say(reports.format_table(["implementation", "role", "declares"], rows))
    for error in registry.errors:
        _say(reports.format_load_error(error.name, error.reason))
    return 0 if not registry.errors else 1


class _Progress:
    """One progress line for the whole campaign on stderr: rewritten in place on a terminal,
    an occasional plain line otherwise (a CI log), and a last line when it is done."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.interactive = sys.stderr.isatty()
        self.said: tuple[int, int] | None = None

    def __call__(self, done: int, total: int, bugs: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if (done, bugs) == self.said or (not finished and now - self.last < (0.2 if self.interactive else 5.0)):
            return
        self.last, self.said = now, (done, bugs)
        rate = done / max(now - self.started, 1e-9)
        left = f", about {(total - done) / rate:.0f}s left" if rate > 0 and not finished else ""
        # On a terminal, each line returns the cursor for the next to overwrite, the last one ends.
        _say(
            f"fuzzing: {done}/{total} cases, {bugs} bug(s), {rate:.0f} cases/s{left}",
            file=sys.stderr,
            end="\r" if self.interactive and not finished else "\n",
        )


def _progress() -> Progress:
    """A campaign's progress, said in `_Progress`'s line."""
    show = _Progress()
    return lambda done, total, bugs: show(done, total, len(bugs))


def _shards(args: argparse.Namespace) -> tuple[Shard, ...]:
    """The shards this command runs: all of the campaign's, or the one ``--shard`` names.
    A campaign has at most one shard per case (`_backend` says when ``--shards`` asked for
    more): each shard runs at least one case and starts anew, so ``--shards 1000000`` would
    plan a million cases and a million starts for a campaign of 2,000."""
    count = min(args.shards or shard_count(args.max_examples), args.max_examples)
    if args.scheduler is not None and (args.workers is not None or args.shard is not None):
        given = "--workers" if args.workers is not None else "--shard"
        raise UsageError(f"--scheduler and {given} do not combine: the cluster's workers run every shard")
    if args.shard is None:
        return Shard.every(count)
    if args.shards is not None and args.shards != args.shard.count:
        raise UsageError(f"--shard {args.shard} is one of {args.shard.count} shards, but --shards says {args.shards}")
    if (args.workers or 1) > 1:
        raise UsageError(
            "--workers and --shard do not combine: run the N shards as N commands, "
            "or every shard in one command with --workers"
        )
    return (args.shard,)


def _backend(
    max_examples: int,
    workers: int | None,
    scheduler: Scheduler | None = None,
    shards_asked: int | None = None,
    shards: int = 1,
) -> Backend:
    """What runs the ``shards``: a Dask cluster (``--scheduler``), or ``--workers`` (the
    ``--scheduler local:N`` cluster's) worker processes here, at most one per core here (more
    only queue for the same cores, and take minutes to start) and one per shard (more have
    nothing to do), or, one worker, this process. Each cap is said in a note, as is one on
    ``--shards`` (``shards_asked``: `_shards`)."""
    if shards_asked is not None and shards_asked > shards:
        _say(
            f"shards: --shards {shards_asked} is more than the campaign's {max_examples} case(s) per "
            f"implementation (each shard runs at least one); using {shards}"
        )
    local = 0 if scheduler is None else scheduler.local
    if scheduler is not None and not local:
        return cluster.Dask(scheduler)
    asked = local or workers or 1
    cores = len(os.sched_getaffinity(0))
    if asked > min(cores, shards):
        why = f"the {cores} core(s) here" if cores <= shards else f"the campaign's {shards} shard(s)"
        flag = f"--scheduler local:{local}" if local else f"--workers {asked}"
        _say(f"workers: {flag} is more than {why}; using {min(cores, shards)}")
    if local:
        return cluster.Dask(Scheduler(local=min(asked, cores, shards)))
    count = min(asked, cores, shards)
    return Processes(count) if count > 1 else Serial()


def _skipped(registry: Registry) -> None:
    """One line for each implementation whose optional library is not installed."""
    for unavailable in registry.unavailable:
        _say(f"skipped {unavailable}")


def _available(registry: Registry, specs: list[str]) -> tuple[str, ...]:
    """The specs of the implementations ``registry`` (``specs``'s) has available, by which a
    worker elsewhere loads them: those named, or every registered one."""
    if specs and not registry.implementations and not registry.errors:
        raise UsageError(
            "nothing to fuzz: every implementation named is unavailable: "
            + "; ".join(str(unavailable) for unavailable in registry.unavailable)
        )
    unavailable = {u.name for u in registry.unavailable}
    if not specs:
        return tuple(sorted(registry.implementations))
    return tuple(spec for spec in specs if spec not in unavailable)


def _campaign(
    options: Options, backend: Backend, registry: Registry, one: Shard | None = None, shards_asked: int | None = None
) -> tuple[reports.CampaignReport, int]:
    """Run the campaign and print its report: what happened, the failures, what was saved,
    the summary and the line that runs it again; the report, and the exit status."""
    started = time.monotonic()
    try:
        ran = run_campaign(options, backend, _say)
    except cluster.ClusterError as error:
        raise UsageError(str(error)) from None
    elapsed = time.monotonic() - started
    report = reports.campaign_report(ran.result, registry, options.max_examples)
    report.seconds, report.workers = elapsed, backend.workers
    report.shard = None if one is None else (one.index, one.count)
    report.shards = one.count if one else len(options.shards)
    for line in ran.notes + reports.format_failures(report) + list(dict.fromkeys(ran.saved)):  # shards save alike
        _say(line)
    _say(reports.format_summary(report))
    plan = " ".join(
        filter(
            None,
            [
                f"shard {one}" if one else f"{len(options.shards)} shard(s)",
                backend.place,
                f"with {backend.workers} worker(s)",
            ],
        )
    )
    again = f"--seed {options.seed}" + (
        f" --shard {one}" if one else f" --shards {shards_asked}" if shards_asked else ""
    )
    _say(
        f"seed {options.seed}: {report.checks} checks in {elapsed:.1f}s ({report.checks / max(elapsed, 1e-9):.0f}/s), "
        f"{plan}; re-run with {again}"
    )
    lost = corpus_store.unsaved(dict.fromkeys(ran.saved))
    if lost:
        _say(f"corpus: {len(lost)} finding(s) NOT saved, each printed in full above")
    if ran.result.interrupted:
        _say("interrupted: everything found so far is saved and reported above")
    return report, max(report.exit_status(), 1 if lost else 0)


def command_fuzz(args: argparse.Namespace) -> int:
    registry = _registry(args.impl)
    shards = _shards(args)
    specs = _available(registry, args.impl)
    if args.scheduler is not None:
        try:
            cluster.require()
        except cluster.ClusterError as error:
            raise UsageError(str(error)) from None
    # Absolute from here on: an implementation run in this process may change directory.
    corpus = None if args.no_save else args.corpus.resolve()
    report_path = None if args.report is None else args.report.resolve()
    _outputs_writable(corpus, report_path)
    _skipped(registry)  # after every usage error: a command refused prints nothing on stdout
    seed = random.getrandbits(32) if args.seed is None else args.seed
    backend = _backend(
        args.max_examples,
        args.workers,
        args.scheduler,
        shards_asked=None if args.shard else args.shards,
        shards=len(shards),
    )
    options = Options(
        specs=specs,
        max_examples=args.max_examples,
        seed=seed,
        shards=shards,
        implementations=tuple(registry.implementations.values()),
        isolate=args.isolate,
        max_seconds=args.max_seconds,
        corpus=corpus,
        journals=launcher.journals(None if corpus is None else corpus / FOLDER),
        progress=_progress(),
    )
    report, status = _campaign(options, backend, registry, args.shard, args.shards)
    if report_path is not None:
        with _writing("--report", report_path):
            reports.write(report_path, report.to_json())
    return status


def command_conformance(args: argparse.Namespace) -> int:
    """A fuzz campaign that saves nothing and ends with `harness.reporting.conformance`'s table; its
    exit status is the campaign's."""
    if args.output is not None:
        _outputs_writable(None, args.output.resolve())
    registry = _registry(args.impl)
    specs = _available(registry, args.impl)
    shards = Shard.every(min(shard_count(args.max_examples), args.max_examples))
    _skipped(registry)
    seed = random.getrandbits(32) if args.seed is None else args.seed
    backend = _backend(args.max_examples, args.workers, shards=len(shards))
    options = Options(
        specs=specs,
        max_examples=args.max_examples,
        seed=seed,
        shards=shards,
        implementations=tuple(registry.implementations.values()),
        journals=launcher.journals(None),
        progress=_progress(),
    )
    report, status = _campaign(options, backend, registry)
    table = conformance.markdown(report, registry.unavailable)
    if args.output is None:
        _say(table, end="")
    else:
        with _writing("--output", args.output):
            reports.write_text(args.output, table)
        _say(f"conformance: wrote {args.output}")
    return status


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(args.max_elements, args.max_macs)


def _targets(items: Sequence[str], limits: Limits) -> list[Target]:
    targets = []
    for item in items:
        if item.endswith(".json"):
            try:
                loaded = corpus_store.load_file(Path(item), limits)
            except CorpusError as error:
                raise UsageError(str(error)) from None
            if isinstance(loaded, Finding):
                targets.append(Target(item, loaded.case, loaded))
            else:
                targets += shape_targets(item, loaded)
        else:
            try:
                case = Case.from_id(item)
                limits.check(case)
            except CaseError as error:
                raise UsageError(str(error)) from None
            targets.append(Target("command line", case))
    return targets


def command_replay(args: argparse.Namespace) -> int:
    registry = _registry(args.impl)
    _outputs_writable(None, args.report)
    implementations = list(registry.implementations.values())
    errors = [f"{e.name}: not loaded: {e.reason}" for e in registry.errors]
    notes = []
    if args.cases:
        targets = _targets(args.cases, _limits(args))
    else:
        corpus = corpus_store.load(args.corpus, _limits(args))
        errors += corpus.errors
        notes = absent(corpus, implementations)
        targets = targets_from(corpus)
    _skipped(registry)  # after every usage error: a command refused prints nothing on stdout
    rows = replay(targets, implementations, launcher.journals(None), args.isolate)
    table = [
        [row.target.case.id, row.implementation, row.outcome, "" if row.expected else "UNEXPECTED"] for row in rows
    ]
    if table:
        _say(reports.format_table(["case", "implementation", "result", "note"], table))
    for row in rows:
        if row.verdict.failed or row.verdict.status == EXPECTED:  # a known disagreement: its reason and link
            _say(
                f"{row.outcome.upper()} {one_line(row.implementation)} {row.target.case.id}\n"
                f"    {clipped(row.verdict.message, MESSAGE_LIMIT)}\n    from: {one_line(row.target.source)}"
            )
    for note in notes:
        _say(f"note: {one_line(note)}")
    for error in errors:
        _say(f"ERROR {one_line(clipped(error, MESSAGE_LIMIT))}")
    unexpected = [row for row in rows if not row.expected]
    _say(
        f"{len(targets)} case(s) x {len(implementations)} implementation(s): "
        f"{len(rows) - len(unexpected)} as expected, {len(unexpected)} unexpected, {len(errors)} error(s)"
    )
    if args.report:
        with _writing("--report", args.report):
            reports.write(
                args.report,
                {
                    "rows": [
                        {
                            "case": r.target.case.id,
                            "source": r.target.source,
                            "implementation": r.implementation,
                            "outcome": r.outcome,
                            "expected": r.expected,
                            **r.verdict.to_dict(),
                        }
                        for r in rows
                    ],
                    "errors": errors,
                },
            )
    return 0 if not unexpected and not errors else 1


def _registered() -> dict[str, str]:
    """The module:function of each registered implementation, read from the installed
    packages' metadata: nothing is imported."""
    return {ep.name: f"{ep.module}:{ep.attr}" for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _import_source(spec: str, registered: dict[str, str]) -> str:
    """Where the script is to import implementation ``spec`` from, found without importing
    it: a registered name's module:function from metadata, a FILE.py:FUNCTION (the file
    must define the function, read from its source) with its path made absolute, a
    module:FUNCTION as it is, checked for form."""
    if spec in registered:
        return registered[spec]
    if ":" not in spec:
        raise UsageError(
            f"--impl {spec!r}: no implementation registered under that name "
            f"(registered: {', '.join(sorted(registered)) or 'none'})"
        )
    try:
        where, function = check_form(spec)
        if where.endswith(".py"):
            check_file_spec(spec)
            return f"{Path(where).resolve()}:{function}"
    except SpecError as error:
        raise UsageError(str(error)) from None
    return spec


def command_show(args: argparse.Namespace) -> int:
    """Print the script, importing and running nothing: the script imports the implementation
    given with --impl, else a registered one the corpus file names (installed code, as
    replay runs it); what else a corpus file names it only quotes."""
    target = _targets([args.case], _limits(args))[0]
    registered = _registered()
    spec = args.impl
    if spec is None and target.entry is not None and target.entry.implementation in registered:
        spec = target.entry.implementation
    source = None if spec is None else _import_source(spec, registered)
    # Source code, printed as it is: its untrusted parts are ascii() literals (harness.reporting.standalone).
    print(script(target.case, source, target.entry), end="")
    return 0


def command_extremes(args: argparse.Namespace) -> int:
    """Each implementation's extreme calls (`harness.campaign.extremes`): a line per bug, one
    per implementation counting its calls by verdict."""
    registry = _registry(args.impl)
    failed = bool(registry.errors)
    for name, implementation in sorted(registry.implementations.items()):
        found = extremes.check(implementation, float(args.seconds))
        for extreme in found:
            if extreme.bug:
                _say(str(extreme))
        counts = Counter(extreme.verdict for extreme in found)
        role = (
            " (known-buggy canary: not counted)"
            if implementation.known_buggy and counts.keys() & set(extremes.BUGS)
            else ""
        )
        _say(
            f"{name}: {len(found)} calls, "
            + ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
            + role
        )
        failed = failed or (not implementation.known_buggy and any(extreme.bug for extreme in found))
    for error in registry.errors:
        _say(reports.format_load_error(error.name, error.reason))
    return 1 if failed else 0


def command_corpus(args: argparse.Namespace) -> int:
    for source in args.sources:
        if not source.is_dir():
            raise UsageError(f"corpus merge: {source} is not a directory")
    _writable(args.into)
    counts, errors = corpus_store.merge(args.into, args.sources)
    for error in errors:
        _say(f"ERROR {one_line(clipped(error, MESSAGE_LIMIT))}")
    _say(
        f"merged into {args.into}: {counts['added']} added, {counts['replaced']} replaced by a "
        f"smaller case, {counts['kept']} already there"
    )
    return 0 if not errors else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": command_list,
    "fuzz": command_fuzz,
    "conformance": command_conformance,
    "replay": command_replay,
    "show": command_show,
    "extremes": command_extremes,
    "corpus": command_corpus,
    "matrix": matrix_cli.command_matrix,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if isinstance(args, int):  # --help, or a usage error: said
        return args
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        return refused(error)
