"""The pytest plugin, end to end (pytester): it changes nothing in a suite that does not use
the harness, prints the run's seed, sends it to xdist workers, and pins the API's campaigns."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.campaign.engine import derive_seed
from harness.execute.process_state import one_thread

pytest_plugins = ["pytester"]

UNRELATED = """
    import os
    import sys

    def test_unrelated():
        assert "torch" not in sys.modules and "hypothesis" not in sys.modules
        import torch
        assert torch.get_num_threads() == int(os.environ["DEFAULT_THREADS"])
"""

BUGGY = """
    import torch.nn.functional as F
    from harness import assert_conv2d_matches
    def adds_one(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups) + 1

    def test_my_conv2d():
        assert_conv2d_matches(adds_one, max_examples=30)
"""


def _header_seed(result: pytest.RunResult) -> int:
    (line,) = [line for line in result.outlines if line.startswith("im2col-harness:")]
    return int(line.rpartition("=")[2])


def test_importing_the_plugin_or_the_package_imports_neither_torch_nor_hypothesis() -> None:
    code = (
        "import sys, harness.pytest_plugin, harness; "
        "assert 'torch' not in sys.modules and 'hypothesis' not in sys.modules, sorted(sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def test_importing_hypothesis_registers_the_profiles_without_importing_torch() -> None:
    code = (
        "import sys, hypothesis; "
        "assert hypothesis.settings.get_profile('im2col-fast').max_examples == 100; "
        "assert hypothesis.settings.get_profile('im2col-campaign').max_examples == 5000; "
        "assert 'torch' not in sys.modules"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def test_an_unrelated_suite_in_its_own_process_imports_nothing_of_ours_and_keeps_torch_s_threads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if default == "1":
        pytest.skip("one core here: torch's default cannot be told apart from one thread")
    monkeypatch.setenv("DEFAULT_THREADS", default)
    pytester.makepyfile(test_unrelated=UNRELATED)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_an_unrelated_suite_run_in_process_finds_torch_s_threads_and_the_global_random_as_they_were(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("import random\nrandom.seed(5)\n")
    pytester.makepyfile(
        test_unrelated="""
        import random
        import torch

        def test_unrelated():
            assert torch.get_num_threads() == 3
            assert random.random() == random.Random(5).random()
    """
    )
    torch.set_num_threads(3)
    try:
        result = pytester.runpytest_inprocess()
    finally:
        one_thread()  # as tests/conftest.py left it
    result.assert_outcomes(passed=1)


def test_the_header_shows_the_seed_and_only_the_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unrelated="def test_nothing(): pass\n")
    result = pytester.runpytest_inprocess("--im2col-seed=94433981")
    result.stdout.fnmatch_lines(["im2col-harness: --im2col-seed=94433981"], consecutive=True)
    assert [line for line in result.outlines if line.startswith("im2col-harness:")] == [
        "im2col-harness: --im2col-seed=94433981"
    ]


def test_every_xdist_worker_seeds_each_test_from_the_seed_in_the_header(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CI", raising=False)  # a random seed: the controller's own
    monkeypatch.setenv("SEEDS_SEEN", str(tmp_path))
    pytester.makepyfile(
        test_seeds="""
        import os
        from pathlib import Path
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_records_its_seed(n, im2col_seed, request):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            Path(os.environ["SEEDS_SEEN"], f"{n}").write_text(f"{worker} {im2col_seed} {request.node.nodeid}")
    """
    )
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=6)
    seed = _header_seed(result)
    seen = [path.read_text().split(" ", 2) for path in tmp_path.iterdir()]
    assert len(seen) == 6 and len({worker for worker, _, _ in seen}) == 2
    assert all(int(test_seed) == derive_seed(seed, nodeid) for _, test_seed, nodeid in seen)


def _failure(result: pytest.RunResult) -> tuple[int, list[str]]:
    """The campaign seed the API's AssertionError names, and the failures it lists."""
    lines = [line for line in result.outlines if line.startswith("E   ")]
    (seed,) = {int(found) for line in lines for found in re.findall(r"\(seed (\d+)", line)}
    return seed, [line for line in lines if "FAILED" in line or "repro:" in line]


def test_the_api_seeded_by_the_run_finds_the_same_failures_again_with_the_same_run_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mine=BUGGY)
    first, again, other = (pytester.runpytest_inprocess(f"--im2col-seed={seed}") for seed in (94433981, 94433981, 7))
    for result in (first, again, other):
        result.assert_outcomes(failed=1)
    seed, failures = _failure(first)
    assert seed == derive_seed(94433981, "test_mine.py::test_my_conv2d")
    assert failures and _failure(again) == (seed, failures)
    assert _failure(other)[0] == derive_seed(7, "test_mine.py::test_my_conv2d") != seed
    first.stdout.fnmatch_lines(
        [
            f"E*(seed {seed}: from --im2col-seed=94433981 and this test's node id; "
            f"re-run with --im2col-seed=94433981, or pass seed={seed})"
        ]
    )
