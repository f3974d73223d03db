"""``python -m harness`` and the ``im2col-harness`` script: the command line (`harness.cli`),
run in a child process that `harness.launcher` watches, so that the run always ends by
saying what it did. The parent parses the arguments first (`harness.arguments`, no torch):
--help and usage errors it answers itself, at once, and starts no child for them."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from harness import launcher
from harness.arguments import parse


def main(argv: Sequence[str] | None = None) -> int:
    if not launcher.adopted():
        arguments = sys.argv[1:] if argv is None else argv
        parsed = parse(arguments)
        return parsed if isinstance(parsed, int) else launcher.watch(arguments)
    from harness.cli import main as command  # the child: torch, the implementations

    launcher.leave(launcher.finished(command(argv)))


# Guarded: isolated children (forkserver) re-import the parent's __main__ as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())
