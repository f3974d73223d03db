"""A reference no call can reach, and process state no call can leave changed.

Each implementation in tests/hostile_state.py computes the right answer but, with a bias,
changes something the reference or the judging runs on: a kernel for ``aten::convolution``
registered through ``torch.library``, the harness's own judging functions, grad, inference
or anomaly mode, the default device, the warnings filters. Fuzzed beside `loop` (correct),
each must be reported for what it changed (a ``global-state`` failure that needs a bias),
`loop` must be blamed for nothing, and the campaign must finish with the state as it was.
tests/hostile_extension.py registers its kernel as it is loaded, as an extension library
does; ``overrides_convolution_for_good_with_bias`` registers one that cannot be removed.
Those two run in a process of their own (the command line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import hostile_state
import pytest
import torch

import harness.judge.compare
import harness.judge.oracle
from harness.campaign.engine import CampaignResult, fuzz
from harness.execute import process_state, runner
from harness.execute.process_state import Guard
from harness.execute.supervisor import Supervisor
from harness.model.registry import discover
from harness.model.verdict import FAILED, SKIPPED

HOSTILE = str(Path(hostile_state.__file__).resolve())
EXTENSION = str(Path(hostile_state.__file__).resolve().with_name("hostile_extension.py"))
CORRECT = "loop"
EXAMPLES = 120
SEED = 1
needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for 2 workers")


def spec(name: str) -> str:
    return f"{HOSTILE}:{name}"


def state() -> tuple[object, ...]:
    """What the hostile implementations change, and what the judging runs on."""
    return (
        torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(),
        torch.is_anomaly_enabled(),
        getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None),
        list(warnings.filters),
        torch._C._dispatch_dump("aten::convolution"),
        len(torch.library._impls),
        harness.judge.compare._judge_values,
        harness.judge.oracle.convolve.__code__,
    )


def global_state_failure(result: CampaignResult, name: str) -> Any:
    """The one finding of ``name``, which must be a global-state failure; `loop` must have
    passed every case it was given."""
    found = [finding for finding in result.findings if finding.implementation == name]
    assert [finding.verdict.kind for finding in found] == ["global-state"], [str(f.verdict) for f in found]
    assert [finding for finding in result.findings if finding.implementation == CORRECT] == []
    tally = result.tallies[CORRECT]
    assert tally.examples >= EXAMPLES and tally.statuses[FAILED] == tally.statuses[SKIPPED] == 0, tally.statuses
    return found[0]


HOSTILE_CASES = [
    # (implementation, what its failure must name)
    ("overrides_convolution_with_bias", "aten::convolution (a CPU kernel registered at hostile_state.py:"),
    ("patches_the_judge_with_bias", "harness.judge.compare._judge_values (replaced)"),
    ("rewrites_the_reference_code_with_bias", "harness.judge.oracle.convolve (its code replaced)"),
    ("turns_off_grad_with_bias", "grad mode (True -> False)"),
    ("enters_inference_mode_with_bias", "inference mode (False -> True)"),
    ("enables_anomaly_mode_with_bias", "anomaly mode (False -> True)"),
    ("sets_default_device_with_bias", "default device (unset -> meta)"),
    ("turns_warnings_into_errors_with_bias", "warnings filters (added 'error' for Warning)"),
]


@pytest.mark.parametrize(("name", "named"), HOSTILE_CASES, ids=[case[0] for case in HOSTILE_CASES])
def test_an_implementation_changing_what_the_reference_or_the_judging_runs_on_is_reported_and_its_neighbour_is_not(
    name: str, named: str
) -> None:
    runner.prepare_autograd()  # what it imports (sympy) adds a warnings filter, once per process
    runner.prepare_autograd.cache_clear()  # as in a fresh campaign: autograd not yet used
    before = state()
    registry = discover([CORRECT, spec(name)])
    result = fuzz(registry.implementations.values(), EXAMPLES, SEED, supervisor=Supervisor())
    finding = global_state_failure(result, spec(name))
    assert named in finding.verdict.message and finding.needs == {"bias"}, (finding.verdict.message, finding.needs)
    assert state() == before


def harness_fuzz(*arguments: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "fuzz",
            "--impl",
            CORRECT,
            *arguments,
            "--seed",
            str(SEED),
            "--no-save",
            "--report",
            "report.json",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return ran, json.loads((cwd / "report.json").read_text())


def failures(report: dict[str, Any], name: str) -> list[tuple[str, str]]:
    return [(failure["kind"], failure["message"]) for failure in report["implementations"][name]["failures"]]


@needs_two_cores
def test_a_kernel_registered_by_a_call_is_charged_to_it_over_two_workers_too(tmp_path: Path) -> None:
    name = spec("overrides_convolution_with_bias")
    ran, report = harness_fuzz("--impl", name, "--max-examples", "80", "--workers", "2", "--shards", "2", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "2 shard(s) with 2 worker(s)" in ran.stdout
    ((kind, message),) = failures(report, name)
    assert kind == "global-state" and "aten::convolution (a CPU kernel registered at hostile_state.py:" in message
    assert failures(report, CORRECT) == [] and report["implementations"][CORRECT]["statuses"].get("failed", 0) == 0
    assert report["incomplete"] == []


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_a_kernel_registered_as_an_implementation_is_loaded_is_removed_and_charged_to_it(
    tmp_path: Path, isolate: bool
) -> None:
    name = f"{EXTENSION}:conv2d"
    ran, report = harness_fuzz(
        "--impl", name, "--max-examples", "60", *(["--isolate"] if isolate else []), cwd=tmp_path
    )
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    ((kind, message),) = failures(report, name)
    assert kind == "global-state"
    assert "aten::convolution (a CPU kernel registered at hostile_extension.py:" in message
    assert "as its module was loaded" in message
    assert "before any implementation was called; removed" in ran.stderr  # said as it happened
    assert failures(report, CORRECT) == [] and report["implementations"][CORRECT]["statuses"].get("failed", 0) == 0


def test_a_kernel_that_cannot_be_removed_leaves_nothing_judged_against_it_and_the_campaign_incomplete(
    tmp_path: Path,
) -> None:
    name = spec("overrides_convolution_for_good_with_bias")
    ran, report = harness_fuzz("--impl", name, "--max-examples", "100", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    ((kind, message),) = failures(report, name)
    assert kind == "global-state" and "registered at hostile_state.py:0; could not be removed" in message
    correct = report["implementations"][CORRECT]
    assert failures(report, CORRECT) == [] and correct["statuses"].get("failed", 0) == 0
    assert correct["statuses"]["skipped"] > 0
    (reason,) = report["incomplete"]
    assert reason.startswith("the reference could not be trusted (aten::convolution has a CPU kernel")
    assert "INCOMPLETE: the reference could not be trusted" in ran.stdout


# -- the guard on its own ------------------------------------------------------------------


def changes(during: Any) -> list[str]:
    guard = Guard()
    state = guard.before_call()
    during()
    return [str(change) for change in guard.after(state)]


def test_a_kernel_registered_from_python_for_any_aten_op_is_removed() -> None:
    def registers() -> None:
        library = torch.library.Library("aten", "IMPL")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            library.impl("abs", lambda tensor: tensor, "CPU")
        hostile_state.LIBRARIES.append(library)  # kept alive, as an extension keeps it

    (change,) = changes(registers)
    assert change.startswith(f"aten::abs (a CPU kernel registered at {Path(__file__).name}:")
    assert torch.tensor([-1.0]).abs().item() == 1.0


def test_a_name_added_to_a_judging_module_is_removed_and_a_replaced_torch_function_put_back() -> None:
    grad = torch.autograd.grad

    def patches() -> None:
        harness.judge.compare.bool = lambda value: True  # type: ignore[attr-defined]  # shadows the builtin
        torch.autograd.grad = lambda *arguments, **keywords: ()  # type: ignore[assignment]

    assert changes(patches) == ["torch.autograd.grad (replaced)", "harness.judge.compare.bool (added)"]
    assert "bool" not in vars(harness.judge.compare) and torch.autograd.grad is grad


def test_what_python_caches_on_a_class_or_module_is_no_change() -> None:
    import pickle

    from harness.model.outcome import Outcome

    if "__slotnames__" in vars(Outcome):
        delattr(Outcome, "__slotnames__")
    assert changes(lambda: pickle.dumps(Outcome())) == []  # copyreg caches __slotnames__ on the class
    assert "__slotnames__" in vars(Outcome)


def test_autograd_is_prepared_whatever_grad_or_inference_mode_a_call_left() -> None:
    runner.prepare_autograd.cache_clear()
    with torch.no_grad():
        runner.prepare_autograd()
    runner.prepare_autograd.cache_clear()
    with torch.inference_mode():
        runner.prepare_autograd()


def test_on_a_torch_without_the_kernel_query_the_dispatch_table_tells_a_kernel_registered_for_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch before 2.9 has no ``_dispatch_get_computed_kernel_for_dispatch_key`` (the guard
    crashed every campaign there); its dispatch table's lines say the same."""
    monkeypatch.setattr(process_state, "_COMPUTED_KERNEL", None)
    before = process_state._kernels()
    assert before == process_state._kernels() and len(before) == len(process_state._PROBES)
    library = torch.library.Library("aten", "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            library.impl("convolution", lambda *arguments: arguments[0], "CPU")
        changed = [new for old, new in zip(before, process_state._kernels(), strict=True) if old != new]
        assert changed and all(Path(__file__).name in line for line in changed), changed
    finally:
        library._destroy()
    assert process_state._kernels() == before
