"""Fuzz your own conv2d from your own test suite, in one call, with the harness's checks."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import running_test
from harness.campaign import CampaignResult, fuzz
from harness.corpus import save_findings
from harness.registry import Registry, implementation_from
from harness.report import campaign_report, format_failures
from harness.text import printable


def assert_conv2d_matches(fn: Callable[..., Any], *, max_examples: int = 200,
                          seed: int | None = None, name: str | None = None,
                          corpus: str | Path | None = None) -> CampaignResult:
    """Fuzz ``fn`` against torch.nn.Conv2d inside what it declares; raise if it ever disagrees.

    The AssertionError lists every distinct failure with its minimal case id and the command
    that replays it. With ``corpus``, failures are also saved there for replay. Without
    ``seed``, inside a pytest run the seed comes from the run's ``--im2col-seed`` and the
    test's node id (re-running with the seed in pytest's header finds the same failures);
    elsewhere it is drawn at random; the AssertionError says which. A ``fn`` that cannot
    be called as conv2d is a TypeError, raised at once.
    """
    __tracebackhide__ = True  # pytest: the user's call, then the message; not this function
    name = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    implementation = implementation_from(name, fn, "api")
    seed, reproduce = _seed(seed)
    result = fuzz([implementation], max_examples, seed)
    if corpus is not None:
        save_findings(result.findings, result.seed, Path(corpus))
    report = campaign_report(result, Registry({name: implementation}), max_examples)
    if result.findings or any(row.gone for row in report.rows.values()):
        lines = [*format_failures(report), f"(seed {seed}: {reproduce})"]
        # pytest prints the message as it is: escaped here, as the command line escapes it.
        raise AssertionError(printable(f"{name} disagrees with torch.nn.Conv2d:\n" + "\n".join(lines)))
    return result


def _seed(given: int | None) -> tuple[int, str]:
    """The campaign's seed, and how to run that campaign again."""
    test = running_test.current
    if given is not None:
        return given, f"pass seed={given} to reproduce"
    if test is None:
        drawn = random.getrandbits(32)
        return drawn, f"drawn at random; pass seed={drawn} to reproduce"
    derived = test.campaign_seed()
    return derived, (f"from --im2col-seed={test.run_seed} and this test's node id; "
                     f"re-run with --im2col-seed={test.run_seed}, or pass seed={derived}")
