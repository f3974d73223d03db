"""The command line: ``python -m harness list | fuzz | replay | show | corpus merge``.

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
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn, TextIO

from harness import cluster, conformance
from harness import corpus as corpus_store
from harness import report as reports
from harness.campaign import explained
from harness.case import Case, CaseError, Limits
from harness.corpus import CorpusError, save_findings
from harness.finding import Finding
from harness.journal import FOLDER, orphans
from harness.parallel import CASES_PER_SHARD, MAX_SHARDS, parse_shard, run_campaign, shard_count
from harness.registry import ENTRY_POINT_GROUP, Registry, SpecError, check_file_spec, check_form, discover
from harness.replay import Target, absent, replay, shape_targets, targets_from
from harness.rescue import rescue, suspects
from harness.standalone import script
from harness.text import clipped, one_line, printable
from harness.verdict import EXPECTED

USAGE_ERROR = 2
# Enough for every planted bug in tests/planted_bugs.py in 20 of 20 runs: at 1,500 the one
# that needs 'same' padding with an odd total was missed once in 20 (measured).
DEFAULT_MAX_EXAMPLES = 2000


class UsageError(Exception):
    """Something the user typed that cannot work; printed as one line, exit status 2."""


def _say(text: str, *, file: TextIO | None = None, end: str = "\n") -> None:
    """Print ``text`` (stdout by default) with every control or reordering character in it
    shown as an escape (harness.text): what this module prints holds untrusted strings,
    and one escape sequence among them could clear or retitle the user's terminal.
    ``end`` is the harness's own."""
    print(printable(text), end=end, file=file or sys.stdout, flush=True)


DESCRIPTION = "Differential fuzzing of conv2d implementations against torch.nn.Conv2d."
EXIT_STATUS = """\
exit status:
  0  every implementation behaved as registered (correct ones passed, canaries were caught)
  1  one did not or could not be checked (it failed, a known disagreement it declares did
     not happen, it did not load, or the campaign was interrupted), or a corpus file could
     not be read
  2  usage error (one line on stderr)"""


class _Parser(argparse.ArgumentParser):
    """Every command's parser: help as plain text that ends with the exit statuses (the
    module docstring's markup is for Sphinx, not a terminal); a usage error is raised, to
    be printed as one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", EXIT_STATUS)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _scheduler(text: str) -> cluster.Scheduler:
    try:
        return cluster.parse_scheduler(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-elements", type=_positive, default=Limits.elements, metavar="N",
                        help="refuse a case with more input + weight + output elements (default %(default)s)")
    parser.add_argument("--max-macs", type=_positive, default=Limits.macs, metavar="N",
                        help="refuse a case with more multiply-adds (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    list_parser = commands.add_parser("list", help="the registered implementations and what each declares")
    list_parser.add_argument("--impl", action="append", default=[], metavar="SPEC",
                             help="only these: a registered name, FILE.py:FUNCTION or package.module:FUNCTION "
                                  "(repeatable; default: every registered one)")

    fuzz_parser = commands.add_parser("fuzz", help="fuzz implementations against torch.nn.Conv2d")
    fuzz_parser.add_argument("--impl", action="append", default=[], metavar="SPEC",
                             help="a registered name, FILE.py:FUNCTION or package.module:FUNCTION "
                                  "(repeatable; default: every registered implementation)")
    fuzz_parser.add_argument("--max-examples", type=_positive, default=DEFAULT_MAX_EXAMPLES,
                             metavar="N", help="cases checked per implementation (default %(default)s)")
    fuzz_parser.add_argument("--seed", type=_seed, help="make the run reproducible")
    fuzz_parser.add_argument("--max-seconds", type=_positive, metavar="S",
                             help="stop exploring after S seconds, whatever --max-examples says")
    fuzz_parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the JSON report here")
    fuzz_parser.add_argument("--corpus", type=Path, default=Path("corpus"), metavar="DIR",
                             help="save minimal failures here (default %(default)s)")
    fuzz_parser.add_argument("--no-save", action="store_true", help="do not save failures")
    fuzz_parser.add_argument("--workers", type=_positive, metavar="N",
                             help="share the campaign's shards among N processes (at most one per core; default 1)")
    fuzz_parser.add_argument("--shards", type=_positive, metavar="N",
                             help="split the campaign into N shards (default: one per "
                                  f"{CASES_PER_SHARD} cases, at most {MAX_SHARDS}); the same seed and "
                                  "shards draw the same cases whatever runs them")
    fuzz_parser.add_argument("--shard", type=_shard, metavar="I/N",
                             help="run only shard I of N (1-based): N commands, one campaign")
    fuzz_parser.add_argument("--scheduler", type=_scheduler, metavar="ADDRESS",
                             help="run the shards on a Dask cluster: a running scheduler's tcp://HOST:PORT, "
                                  f"or local:N to start N worker processes here (needs {cluster.INSTALL})")
    fuzz_parser.add_argument("--isolate", action="store_true",
                             help="run each implementation in a child process: survives crashes, "
                                  "hangs and memory blow-ups")

    conformance_parser = commands.add_parser(
        "conformance", help="fuzz implementations and write a Markdown table of what each gets right, dimension "
                            "by dimension (nothing saved)")
    conformance_parser.add_argument("--impl", action="append", default=[], metavar="SPEC",
                                    help="as for fuzz (default: every available implementation)")
    conformance_parser.add_argument("--max-examples", type=_positive, default=DEFAULT_MAX_EXAMPLES, metavar="N",
                                    help="cases checked per implementation (default %(default)s)")
    conformance_parser.add_argument("--seed", type=_seed, help="make the run reproducible")
    conformance_parser.add_argument("--workers", type=_positive, metavar="N", help="as for fuzz")
    conformance_parser.add_argument("--output", type=Path, metavar="FILE.md",
                                    help="write the table here (default: print it after the campaign's report)")

    replay_parser = commands.add_parser("replay", help="re-run saved cases or case ids")
    replay_parser.add_argument("cases", nargs="*", metavar="CASE",
                               help="case ids or corpus files (default: the whole corpus)")
    replay_parser.add_argument("--corpus", type=Path, default=Path("corpus"), metavar="DIR")
    replay_parser.add_argument("--impl", action="append", default=[], metavar="SPEC")
    replay_parser.add_argument("--report", type=Path, metavar="FILE.json")
    _limit_arguments(replay_parser)

    show_parser = commands.add_parser("show", help="print a torch-only script reproducing a case")
    show_parser.add_argument("case", metavar="CASE", help="a case id or a corpus file")
    show_parser.add_argument("--impl", metavar="SPEC", help="import this implementation in the script")
    _limit_arguments(show_parser)

    corpus_parser = commands.add_parser("corpus", help="manage corpora")
    corpus_commands = corpus_parser.add_subparsers(dest="corpus_command", required=True,
                                                   parser_class=_Parser)
    merge = corpus_commands.add_parser("merge", help="merge corpora, smallest case per signature")
    merge.add_argument("sources", nargs="+", type=Path, metavar="DIR")
    merge.add_argument("--into", type=Path, default=Path("corpus"), metavar="DIR")
    return parser


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
        if report.exists():  # opened to append nothing, without waiting on a FIFO
            os.close(os.open(report, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        else:
            with tempfile.TemporaryFile(dir=report.parent):
                pass
    except OSError as error:
        raise UsageError(f"--report {report}: cannot write there: {error.strerror}") from None


def command_list(args: argparse.Namespace) -> int:
    registry = _registry(args.impl)
    rows = []
    for name, implementation in registry.implementations.items():
        narrowed = implementation.capabilities.shown()
        claims = "; ".join(narrowed) if narrowed else "everything"
        role = "known-buggy canary" if implementation.known_buggy else "claims correct"
        rows.append([name, role, claims])
    rows += [[u.name, "unavailable", f"{', '.join(u.missing)} not installed: {u.install}"]
             for u in registry.unavailable]
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
        _say(f"fuzzing: {done}/{total} cases, {bugs} bug(s), {rate:.0f} cases/s{left}", file=sys.stderr,
             end="\r" if self.interactive and not finished else "\n")


def _shards(args: argparse.Namespace) -> list[tuple[int, int]]:
    """The shards this command runs: all of the campaign's, or the one ``--shard`` names."""
    count = args.shards or shard_count(args.max_examples)
    if args.scheduler is not None and (args.workers is not None or args.shard is not None):
        given = "--workers" if args.workers is not None else "--shard"
        raise UsageError(f"--scheduler and {given} do not combine: the cluster's workers run every shard")
    if args.shard is None:
        return [(index, count) for index in range(1, count + 1)]
    if args.shards is not None and args.shards != args.shard[1]:
        raise UsageError(f"--shard {args.shard[0]}/{args.shard[1]} is one of {args.shard[1]} shards, "
                         f"but --shards says {args.shards}")
    if (args.workers or 1) > 1:
        raise UsageError("--workers and --shard do not combine: run the N shards as N commands, "
                         "or every shard in one command with --workers")
    return [args.shard]


def _workers(asked: int, shards: int) -> int:
    """``--workers``, at most one per core here (more only queue for the same cores) and one
    per shard (more have nothing to do)."""
    cores = len(os.sched_getaffinity(0))
    if asked > min(cores, shards):
        why = f"the {cores} core(s) here" if cores <= shards else f"the campaign's {shards} shard(s)"
        _say(f"workers: --workers {asked} is more than {why}; using {min(cores, shards)}")
    return min(asked, cores, shards)


def _skipped(registry: Registry) -> None:
    """One line for each implementation whose optional library is not installed."""
    for unavailable in registry.unavailable:
        _say(f"skipped {unavailable}")


def command_fuzz(args: argparse.Namespace) -> int:
    registry = _registry(args.impl)
    shards = _shards(args)
    if args.impl and not registry.implementations and not registry.errors:
        raise UsageError("nothing to fuzz: every implementation named is unavailable: "
                         + "; ".join(str(unavailable) for unavailable in registry.unavailable))
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
    workers = 0 if args.scheduler else _workers(args.workers or 1, len(shards))
    started = time.monotonic()
    journals = None if corpus is None else corpus / FOLDER
    orphaned = [] if journals is None else orphans(journals)
    suspected, notes = suspects(orphaned, registry.implementations)
    for note in notes:
        _say(note)
    isolate: bool | set[str] = True if args.isolate else suspected
    unavailable = {u.name for u in registry.unavailable}
    specs = [spec for spec in args.impl if spec not in unavailable] if args.impl else sorted(registry.implementations)
    implementations = list(registry.implementations.values())
    if args.scheduler is None:
        result, saved, notes = run_campaign(specs, implementations, args.max_examples, seed, shards, workers,
                                            isolate, args.max_seconds, corpus, journals, _Progress())
        where = f"with {workers} worker(s)"
    else:
        try:
            ran = cluster.run_campaign(args.scheduler, specs, implementations, args.max_examples, seed, shards,
                                       isolate, args.max_seconds, corpus, _Progress())
        except cluster.ClusterError as error:
            raise UsageError(str(error)) from None
        result, saved, notes, workers = ran.result, ran.saved, ran.notes, ran.workers
        where = f"on Dask ({args.scheduler}) with {workers} worker(s)"
    if orphaned and not result.interrupted:
        rescued = rescue(orphaned, registry.implementations)
        new = [finding for finding in rescued.findings if not explained(finding, result.findings)]
        result.findings += new
        saved += save_findings(new, seed, corpus) if corpus is not None else []
        notes += rescued.notes
    elapsed = time.monotonic() - started
    report = reports.campaign_report(result, registry, args.max_examples)
    report.seconds, report.workers, report.shard = elapsed, workers, args.shard
    report.shards = args.shard[1] if args.shard else len(shards)
    for line in notes + reports.format_failures(report) + list(dict.fromkeys(saved)):  # shards save alike
        _say(line)
    _say(reports.format_summary(report))
    plan = f"shard {args.shard[0]}/{args.shard[1]}" if args.shard else f"{len(shards)} shard(s)"
    again = f"--seed {seed}" + (f" --shard {args.shard[0]}/{args.shard[1]}" if args.shard
                                else f" --shards {args.shards}" if args.shards else "")
    _say(f"seed {seed}: {report.checks} checks in {elapsed:.1f}s ({report.checks / max(elapsed, 1e-9):.0f}/s), "
         f"{plan} {where}; re-run with {again}")
    if result.interrupted:
        _say("interrupted: everything found so far is saved and reported above")
    if report_path is not None:
        reports.write(report_path, report.to_json())
    if getattr(args, "conformance", False):
        table = conformance.markdown(report, registry.unavailable)
        if args.output is None:
            _say(table, end="")
        else:
            args.output.write_text(table)
            _say(f"conformance: wrote {args.output}")
    return report.exit_status()


def command_conformance(args: argparse.Namespace) -> int:
    """A fuzz campaign that saves nothing and ends with `harness.conformance`'s table; its
    exit status is the campaign's."""
    if args.output is not None:
        _outputs_writable(None, args.output.resolve())
    vars(args).update(conformance=True, no_save=True, corpus=Path("corpus"), report=None, shards=None, shard=None,
                      scheduler=None, isolate=False, max_seconds=None)
    return command_fuzz(args)


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
    rows = replay(targets, implementations)
    table = [[row.target.case.id, row.implementation, row.outcome, "" if row.expected else "UNEXPECTED"]
             for row in rows]
    if table:
        _say(reports.format_table(["case", "implementation", "result", "note"], table))
    for row in rows:
        if row.verdict.failed or row.verdict.status == EXPECTED:  # a known disagreement: its reason and link
            _say(f"{row.outcome.upper()} {one_line(row.implementation)} {row.target.case.id}\n"
                 f"    {clipped(row.verdict.message, reports.MESSAGE_LIMIT)}\n    from: {one_line(row.target.source)}")
    for note in notes:
        _say(f"note: {one_line(note)}")
    for error in errors:
        _say(f"ERROR {one_line(clipped(error, reports.MESSAGE_LIMIT))}")
    unexpected = [row for row in rows if not row.expected]
    _say(f"{len(targets)} case(s) x {len(implementations)} implementation(s): "
         f"{len(rows) - len(unexpected)} as expected, {len(unexpected)} unexpected, {len(errors)} error(s)")
    if args.report:
        reports.write(args.report, {
            "rows": [{"case": r.target.case.id, "source": r.target.source, "implementation": r.implementation,
                      "outcome": r.outcome, "expected": r.expected, **r.verdict.to_dict()} for r in rows],
            "errors": errors,
        })
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
        raise UsageError(f"--impl {spec!r}: no implementation registered under that name "
                         f"(registered: {', '.join(sorted(registered)) or 'none'})")
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
    # Source code, printed as it is: its untrusted parts are ascii() literals (harness.standalone).
    print(script(target.case, source, target.entry), end="")
    return 0


def command_corpus(args: argparse.Namespace) -> int:
    for source in args.sources:
        if not source.is_dir():
            raise UsageError(f"corpus merge: {source} is not a directory")
    _writable(args.into)
    counts, errors = corpus_store.merge(args.into, args.sources)
    for error in errors:
        _say(f"ERROR {one_line(clipped(error, reports.MESSAGE_LIMIT))}")
    _say(f"merged into {args.into}: {counts['added']} added, {counts['replaced']} replaced by a "
          f"smaller case, {counts['kept']} already there")
    return 0 if not errors else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": command_list, "fuzz": command_fuzz, "conformance": command_conformance, "replay": command_replay,
    "show": command_show, "corpus": command_corpus,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        _say(f"python -m harness: error: {clipped(str(error), reports.MESSAGE_LIMIT)}", file=sys.stderr)
        return USAGE_ERROR
