"""Fuzz your own conv2d from your own test suite, in one call, with the harness's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from harness.corpus import save_findings
from harness.campaign import CampaignResult, fuzz
from harness.registry import Registry, implementation_from
from harness.report import campaign_report, format_failures
from harness.text import printable


def assert_conv2d_matches(fn: Callable[..., Any], *, max_examples: int = 200,
                          seed: int | None = None, name: str | None = None,
                          corpus: str | Path | None = None) -> CampaignResult:
    """Fuzz ``fn`` against torch.nn.Conv2d inside what it declares; raise if it ever disagrees.

    The AssertionError lists every distinct failure with its minimal case id and the command
    that replays it. With ``corpus``, failures are also saved there for replay.
    """
    name = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    implementation = implementation_from(name, fn, "api")
    result = fuzz([implementation], max_examples, seed)
    if corpus is not None:
        save_findings(result, Path(corpus))
    if result.findings:
        report = campaign_report(result, Registry({name: implementation}), max_examples)
        lines = format_failures(report) + [f"(seed {result.seed}: pass seed={result.seed} to reproduce)"]
        # pytest prints the message as it is: escaped here, as the command line escapes it.
        raise AssertionError(printable(f"{name} disagrees with torch.nn.Conv2d:\n" + "\n".join(lines)))
    return result
