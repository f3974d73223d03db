"""Fuzz your own conv2d from your own test suite, in one call, with the harness's checks.

A campaign runs in the caller's process, a test suite's, through the command line's shard
plan and its `harness.backends.run.run_campaign` (`harness.backends.serial`): whatever it
changes there, the caller gets back as it was (`fuzz`), and `assert_conv2d_matches` passes
only a campaign that ran to its end, as the command line's exit status does.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from hypothesis import settings

from harness import running_test
from harness.backends.base import Options
from harness.backends.plan import Shard, shard_count
from harness.backends.run import Ran, run_campaign
from harness.backends.serial import Serial
from harness.campaign.engine import CampaignResult, Progress
from harness.execute.journal import FOLDER
from harness.model.registry import Implementation, Registry, implementation_from
from harness.model.text import printable
from harness.reporting.report import campaign_report, format_failures


def fuzz(
    implementations: Iterable[Implementation],
    max_examples: int,
    seed: int | None = None,
    progress: Progress | None = None,
    isolate: bool | Collection[str] = False,
    max_seconds: float | None = None,
) -> CampaignResult:
    """A campaign of ``max_examples`` cases per implementation, as ``python -m harness fuzz``
    plans it (`_campaign`), in this process; ``progress(cases done, cases planned, bugs
    found)`` is said for the whole campaign; ``isolate``: every implementation in a child
    process, or those named. The caller's process is as it was afterwards
    (`_callers_state`); without ``seed``, one is drawn from the system, not from the
    caller's `random` (whose sequence is theirs, and put back)."""
    seed = random.SystemRandom().getrandbits(32) if seed is None else seed
    isolate = isolate if isinstance(isolate, bool) else frozenset(isolate)
    return _campaign(
        tuple(implementations), max_examples, seed, progress=progress, isolate=isolate, max_seconds=max_seconds
    ).result


def _campaign(
    implementations: tuple[Implementation, ...],
    max_examples: int,
    seed: int,
    progress: Progress | None = None,
    isolate: bool | frozenset[str] = False,
    max_seconds: float | None = None,
    corpus: Path | None = None,
) -> Ran:
    """The campaign, with the command line's shards (`plan.shard_count`) run in this
    process, and with ``corpus`` the journals of earlier runs there re-checked and what is
    found saved there (`run_campaign`); the caller's process as it was afterwards."""
    options = Options(
        specs=(),
        max_examples=max_examples,
        seed=seed,
        shards=Shard.every(shard_count(max_examples)),
        implementations=implementations,
        isolate=isolate,
        max_seconds=max_seconds,
        corpus=corpus,
        journals=None if corpus is None else corpus / FOLDER,
        progress=progress,
    )
    with _callers_state():
        return run_campaign(options, Serial())


@contextmanager
def _callers_state() -> Iterator[None]:
    """Put back, when the campaign ends, what it changes of the process it runs in: torch's
    thread count (a campaign runs on one thread: `process_state.one_thread`), and what an
    implementation may change that no check after its calls puts back: the states of the
    random number generators (torch's, NumPy's, Python's) and Hypothesis's settings
    profile; the default dtype and grad mode too, whatever changed them."""
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    python = random.getstate()
    numpy = sys.modules.get("numpy")  # not imported: nobody has drawn from it yet
    numpy_state = None if numpy is None else numpy.random.get_state()
    profile = settings.get_current_profile_name()
    profile_settings = settings.get_profile(profile)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []  # type: ignore[no-untyped-call]
    try:
        with torch.random.fork_rng(devices):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        random.setstate(python)
        if numpy is not None:
            numpy.random.set_state(numpy_state)
        if settings.get_profile(profile) is not profile_settings:  # registered again meanwhile
            settings.register_profile(profile, profile_settings)
        settings.load_profile(profile)


def assert_conv2d_matches(
    fn: Callable[..., Any],
    *,
    max_examples: int = 200,
    seed: int | None = None,
    name: str | None = None,
    corpus: str | Path | None = None,
) -> CampaignResult:
    """Fuzz ``fn`` against torch.nn.Conv2d inside what it declares; raise if it ever disagrees,
    or if the campaign did not check what it promised to (it was interrupted or stopped
    short, or no case it checked passed): a pass says the whole campaign ran.

    The AssertionError lists every distinct failure with its minimal case id and the command
    that replays it. With ``corpus``, failures are also saved there for replay, and calls an
    earlier campaign died in (its journals there) are checked again, isolated, as the command
    line does. The campaign is planned as ``python -m harness fuzz --max-examples N --seed S``
    plans one (the same shards, each with the same seed), so ``seed=S`` draws the cases that
    command draws for ``fn`` (Hypothesis also draws from the constants in the local modules
    a process has imported: a test suite's own modules can make them differ). Without
    ``seed``, inside a pytest run the seed comes from the run's ``--im2col-seed`` and the
    test's node id (re-running with the seed in pytest's header finds the same failures);
    elsewhere it is drawn at random; the AssertionError says which. A ``fn`` that cannot
    be called as conv2d is a TypeError, raised at once. The caller's process is left as
    it was (`fuzz`).
    """
    __tracebackhide__ = True  # pytest: the user's call, then the message; not this function
    name = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    implementation = implementation_from(name, fn, "api")
    seed, reproduce = _seed(seed)
    ran = _campaign((implementation,), max_examples, seed, corpus=None if corpus is None else Path(corpus).resolve())
    result = ran.result
    report = campaign_report(result, Registry({name: implementation}), max_examples)
    row = report.rows[name]
    unfinished = _unfinished(result, row.tally.examples, ran.planned)
    if row.findings or row.gone:
        heading = f"{name} disagrees with torch.nn.Conv2d:"
    elif result.findings:  # only torch's own reference's: the verdicts it decided were withheld
        heading = f"torch's reference is wrong on cases {name} was checked on (its verdicts there withheld):"
    elif unfinished:
        heading = f"{name} was not fully checked against torch.nn.Conv2d:"
    elif not row.checked:
        heading = f"{name} was not checked against torch.nn.Conv2d: no case it was called on passed"
    else:
        return result
    lines = [heading, *unfinished, *format_failures(report), f"(seed {seed}: {reproduce})"]
    # pytest prints the message as it is: escaped here, as the command line escapes it.
    raise AssertionError(printable("\n".join(lines)))


def _unfinished(result: CampaignResult, checked: int, planned: int) -> list[str]:
    """Why the campaign did not check all it planned to, if it did not."""
    reasons = [f"INCOMPLETE: {reason}" for reason in result.incomplete]
    if result.interrupted:
        reasons.append(f"the campaign was interrupted after {checked} of the {planned} cases planned")
    elif checked < planned:
        reasons.append(f"the campaign stopped after {checked} of the {planned} cases planned")
    return reasons


def _seed(given: int | None) -> tuple[int, str]:
    """The campaign's seed, and how to run that campaign again."""
    test = running_test.current
    if given is not None:
        return given, f"pass seed={given} to reproduce"
    if test is None:
        drawn = random.SystemRandom().getrandbits(32)  # not the caller's `random`: its sequence is theirs
        return drawn, f"drawn at random; pass seed={drawn} to reproduce"
    derived = test.campaign_seed()
    return derived, (
        f"from --im2col-seed={test.run_seed} and this test's node id; "
        f"re-run with --im2col-seed={test.run_seed}, or pass seed={derived}"
    )
