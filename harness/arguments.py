"""The command line's arguments: the parser of ``python -m harness``, its help, and how a
usage error is said.

Standard library and the harness's light modules only (no torch, numpy or Hypothesis):
the watching parent (`harness.launcher`, `harness.__main__`) parses the arguments with it
before it starts the child that runs the command, so that --help and a mistyped option
are answered at once, by the parent, with no torch imported and no child started. The
child (`harness.cli`) parses them again, with the same parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from harness.backends.plan import CASES_PER_SHARD, INSTALL, MAX_SHARDS, parse_scheduler, parse_shard
from harness.model.case import Limits
from harness.model.text import MESSAGE_LIMIT, clipped, printable

T = TypeVar("T")

USAGE_ERROR = 2
# Enough for every planted bug in tests/planted_bugs.py in 20 of 20 runs: at 1,500 the one
# that needs 'same' padding with an odd total was missed once in 20 (measured).
DEFAULT_MAX_EXAMPLES = 2000


class UsageError(Exception):
    """Something the user typed that cannot work; printed as one line, exit status 2."""


DESCRIPTION = "Differential fuzzing of conv2d implementations against torch.nn.Conv2d."
EXIT_STATUS = """\
exit status:
  0  every implementation behaved as registered (correct ones passed, canaries were caught)
  1  one did not or could not be checked (it failed, a known disagreement it declares did
     not happen, it did not load, or the campaign was interrupted), a corpus file could
     not be read, or a finding could not be saved (it is printed in full instead)
  2  usage error, or --report or --output could not be written (one line on stderr)"""


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


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argument's type: its ValueError's message is the usage error's."""

    def argument(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return argument


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-elements",
        type=_positive,
        default=Limits.elements,
        metavar="N",
        help="refuse a case with more input + weight + output elements (default %(default)s)",
    )
    parser.add_argument(
        "--max-macs",
        type=_positive,
        default=Limits.macs,
        metavar="N",
        help="refuse a case with more multiply-adds (default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    list_parser = commands.add_parser("list", help="the registered implementations and what each declares")
    list_parser.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="only these: a registered name, FILE.py:FUNCTION or package.module:FUNCTION "
        "(repeatable; default: every registered one)",
    )

    fuzz_parser = commands.add_parser("fuzz", help="fuzz implementations against torch.nn.Conv2d")
    fuzz_parser.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="a registered name, FILE.py:FUNCTION or package.module:FUNCTION "
        "(repeatable; default: every registered implementation)",
    )
    fuzz_parser.add_argument(
        "--max-examples",
        type=_positive,
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        help="cases checked per implementation (default %(default)s)",
    )
    fuzz_parser.add_argument("--seed", type=_seed, help="make the run reproducible")
    fuzz_parser.add_argument(
        "--max-seconds",
        type=_positive,
        metavar="S",
        help="stop exploring after S seconds, whatever --max-examples says",
    )
    fuzz_parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the JSON report here")
    fuzz_parser.add_argument(
        "--corpus",
        type=Path,
        default=Path("corpus"),
        metavar="DIR",
        help="save minimal failures here (default %(default)s)",
    )
    fuzz_parser.add_argument("--no-save", action="store_true", help="do not save failures")
    fuzz_parser.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="share the campaign's shards among N processes (at most one per core; default 1)",
    )
    fuzz_parser.add_argument(
        "--shards",
        type=_positive,
        metavar="N",
        help="split the campaign into N shards (default: one per "
        f"{CASES_PER_SHARD} cases, at most {MAX_SHARDS}); the same seed and "
        "shards draw the same cases whatever runs them",
    )
    fuzz_parser.add_argument(
        "--shard",
        type=_checked(parse_shard),
        metavar="I/N",
        help="run only shard I of N (1-based): N commands, one campaign",
    )
    fuzz_parser.add_argument(
        "--scheduler",
        type=_checked(parse_scheduler),
        metavar="ADDRESS",
        help="run the shards on a Dask cluster: a running scheduler's tcp://HOST:PORT, "
        f"or local:N to start N worker processes here (needs {INSTALL})",
    )
    fuzz_parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each implementation in a child process: survives crashes, hangs and memory blow-ups",
    )

    conformance_parser = commands.add_parser(
        "conformance",
        help="fuzz implementations and write a Markdown table of what each gets right, dimension "
        "by dimension (nothing saved)",
    )
    conformance_parser.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="as for fuzz (default: every available implementation)",
    )
    conformance_parser.add_argument(
        "--max-examples",
        type=_positive,
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        help="cases checked per implementation (default %(default)s)",
    )
    conformance_parser.add_argument("--seed", type=_seed, help="make the run reproducible")
    conformance_parser.add_argument("--workers", type=_positive, metavar="N", help="as for fuzz")
    conformance_parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE.md",
        help="write the table here (default: print it after the campaign's report)",
    )

    replay_parser = commands.add_parser("replay", help="re-run saved cases or case ids")
    replay_parser.add_argument(
        "cases", nargs="*", metavar="CASE", help="case ids or corpus files (default: the whole corpus)"
    )
    replay_parser.add_argument("--corpus", type=Path, default=Path("corpus"), metavar="DIR")
    replay_parser.add_argument("--impl", action="append", default=[], metavar="SPEC")
    replay_parser.add_argument("--report", type=Path, metavar="FILE.json")
    replay_parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each implementation in a child process: a case that crashes it is its crash, and the replay goes on",
    )
    _limit_arguments(replay_parser)

    show_parser = commands.add_parser("show", help="print a torch-only script reproducing a case")
    show_parser.add_argument("case", metavar="CASE", help="a case id or a corpus file")
    show_parser.add_argument("--impl", metavar="SPEC", help="import this implementation in the script")
    _limit_arguments(show_parser)

    extremes_parser = commands.add_parser(
        "extremes",
        help="call each implementation with strides, paddings and dilations near the integer limits",
        description="Call each implementation with a stride, padding or dilation near the int32 and int64 limits "
        "(and 0 and -1), each call in a child process: it must raise or return the right tensor; a crash, a "
        "hang or a wrong tensor is a bug.",
        epilog="exit status:\n  0  no bug (a canary's are reported, not counted)\n  1  a bug, or an implementation "
        "did not load\n  2  usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extremes_parser.add_argument(
        "--impl", action="append", default=[], metavar="SPEC", help="implementation to call (repeatable; default: all)"
    )
    extremes_parser.add_argument(
        "--seconds", type=_positive, default=10, metavar="S", help="a call's time limit (default: %(default)s)"
    )

    corpus_parser = commands.add_parser("corpus", help="manage corpora")
    corpus_commands = corpus_parser.add_subparsers(dest="corpus_command", required=True, parser_class=_Parser)
    merge = corpus_commands.add_parser("merge", help="merge corpora, smallest case per signature")
    merge.add_argument("sources", nargs="+", type=Path, metavar="DIR")
    merge.add_argument("--into", type=Path, default=Path("corpus"), metavar="DIR")
    _matrix_arguments(commands)
    return parser


MATRIX_EXIT_STATUS = """\
exit status:
  0  every version ran (whatever the cells say: the matrix reports, it does not judge)
  1  a version could not be run: its env could not be made, or its campaign wrote no report
  2  usage error, or --output or --report could not be written (one line on stderr)"""


def _matrix_arguments(commands: Any) -> None:
    """``matrix`` (`harness.matrix_cli`): its own exit statuses, as it reports and does not judge."""
    parser = commands.add_parser(
        "matrix",
        help="one seeded campaign under every torch version tox knows, as one table",
        description="One seeded campaign (and the saved corpus) under every torch version tox knows, and one "
        "table of what changed.",
        epilog=MATRIX_EXIT_STATUS,
    )
    parser.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="implementation to run (repeatable; default: all registered in each env)",
    )
    parser.add_argument("--seed", type=_seed, help="the campaign's seed (default: drawn, and shown)")
    parser.add_argument(
        "--max-examples", type=_positive, metavar="N", help="cases per implementation in each version (default: fuzz's)"
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each campaign with --isolate (a segfault is a finding, not a lost version)",
    )
    parser.add_argument("--corpus", type=Path, metavar="DIR", help="also replay the failures saved in DIR")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="only this tox env (repeatable; default: every torchX.Y env in tox.ini)",
    )
    parser.add_argument(
        "--create", action="store_true", help="make the envs not created yet (tox -e NAME --notest: downloads torch)"
    )
    parser.add_argument(
        "--tox-ini",
        type=Path,
        default=Path("tox.ini"),
        metavar="FILE",
        help="the tox configuration naming the envs (default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, metavar="FILE.md", help="write the Markdown table here, not stdout")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write the matrix as JSON here")


def refused(error: UsageError) -> int:
    """Say ``error`` as one line on stderr, escaped and clipped (it may quote what was typed,
    a 100 kB case id), and return the usage error's exit status."""
    print(printable(f"python -m harness: error: {clipped(str(error), MESSAGE_LIMIT)}"), file=sys.stderr, flush=True)
    return USAGE_ERROR


def parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The command ``argv`` asks for; or, for a command already done, its exit status: 0
    once --help is printed, `USAGE_ERROR` once a usage error is said."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as done:  # --help, printed: the command is done (any other exit is not)
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        return refused(error)
