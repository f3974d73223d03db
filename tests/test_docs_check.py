"""docs/check_outputs.py, the check that what the docs show is what the commands print: an
implementation whose results depend on the CPU (`varies`, torch's own paths) is compared on
what does not, and nothing else is let through."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

CHECKER = Path(__file__).resolve().parent.parent / "docs" / "check_outputs.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_outputs", CHECKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


HEADER = "implementation   examples  passed  mistrusted  failed  expected  unsupported  skipped  bugs  verdict"
SHOWN = [
    "not seen torch: expected disagreement [crash] when cpu_flags contains 'avx512_fp16' ...: not in 201 checks",
    HEADER,
    "loop             2153      1925    228         0       0         0            0        0     ok",
    "torch            2153      1925    228         0       0         0            0        0     ok",
    "noise (torch): of its 2153 checks, 5 warned (5 warnings); first said:",
    "    warned: UserWarning: Using padding='same' with even kernel lengths",
    "skipped (torch): 124 of its 2153 checks, quarantined: it crashed, hung or ran out of memory 3 times ...",
]
# The same campaign on a CPU where torch's bfloat16 bug shows and its float16 one cannot.
ELSEWHERE = [
    "EXPECTED torch [nonfinite] when cpu_flags contains 'avx512bw', data='special', dtype='bfloat16' ...",
    HEADER,
    "loop             2153      1925    228         0       0         0            0        0     ok",
    "torch            2153      1919    228         0       6         0            0        0     ok",
]


def block(check: ModuleType, varies: tuple[str, ...]) -> object:
    marker = "cheap" + (f"; varies: {' '.join(varies)}" if varies else "")
    return check._block(CHECKER, 1, len(SHOWN) + 1, marker, SHOWN)


def test_what_torch_says_of_its_cpu_dependent_bugs_is_not_compared_where_it_varies(check: ModuleType) -> None:
    assert check.differences(block(check, ("torch",)), ELSEWHERE) == []
    # Without `varies`, the same output differs in each of those lines.
    problems = check.differences(block(check, ()), ELSEWHERE)
    assert len(problems) == 7 and any("EXPECTED torch" in problem for problem in problems), problems


@pytest.mark.parametrize(
    "changed",
    [
        # its bugs, its examples, another implementation's row
        "torch            2153      1919    228         0       6         0            0        1     FAILED",
        "torch            2150      1919    228         0       6         0            0        0     ok",
        "loop             2153      1924    229         0       0         0            0        0     ok",
    ],
)
def test_a_varying_implementation_is_still_compared_on_its_examples_bugs_and_verdict(
    check: ModuleType, changed: str
) -> None:
    name = changed.split()[0]
    fresh = [changed if line.split()[:1] == [name] else line for line in ELSEWHERE]
    assert check.differences(block(check, ("torch",)), fresh), fresh


def test_a_failure_of_a_varying_implementation_is_still_compared(check: ModuleType) -> None:
    failed = "FAILED torch [values] mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"
    fresh = [failed, *ELSEWHERE]
    (problem,) = check.differences(block(check, ("torch",)), fresh)
    assert "in the fresh output, not shown: FAILED torch" in problem
