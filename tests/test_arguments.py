"""The command line's arguments (`harness.arguments`): --help and usage errors are answered by
the watching parent at once, with nothing heavy imported and no child started."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = {"torch", "numpy", "hypothesis", "distributed"}


def _imported(stderr: str) -> set[str]:
    """The top-level packages ``python -X importtime`` says were imported, by this process
    or by any child it started with the same interpreter flags (`harness.launcher` does)."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--help"], 0),
        (["fuzz", "--help"], 0),
        (["fuzz", "--max-exampels", "3"], 2),
        (["fuzz", "--seed", "x"], 2),
        ([], 2),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_help_and_usage_errors_are_answered_without_importing_torch_or_starting_the_child(
    argv: list[str], status: int
) -> None:
    ran = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", *argv], capture_output=True, text=True)
    assert ran.returncode == status
    imported = _imported(ran.stderr)
    assert "harness" in imported  # the flag reached the harness: an empty set proves nothing
    assert not imported & HEAVY
    assert "harness.cli" not in ran.stderr  # nor the commands' module, which imports everything
    said = [line for line in ran.stderr.splitlines() if not line.startswith("import time:")]
    if status == 0:
        assert "exit status:" in ran.stdout and said == []
    else:
        assert ran.stdout == "" and len(said) == 1 and said[0].startswith("python -m harness: error: ")


def test_a_valid_command_is_parsed_again_and_run_by_the_child() -> None:
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "harness", "list", "--impl", "loop"], capture_output=True, text=True
    )
    assert ran.returncode == 0
    assert "loop" in ran.stdout
    assert {"torch", "harness"} <= _imported(ran.stderr)
