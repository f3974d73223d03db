"""The repro script: strings from outside only ever literals, judged as the harness judges."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tokenize
from pathlib import Path

import planted_bugs
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.campaign.check import check_case
from harness.campaign.engine import fuzz
from harness.generate.tensors import make_inputs
from harness.judge.oracle import expect
from harness.model.case import Case
from harness.model.finding import Finding
from harness.model.registry import implementation_from
from harness.model.text import printable
from harness.model.verdict import FAILED, Kind, Verdict
from harness.reporting.standalone import script

PLANTED = Path(planted_bugs.__file__).resolve()
CASE = Case.from_id("mb2ic4oc8g2ih7iw5kh3kw2sh1sw2p1d1-bias-float32-contiguous-uniform-cpu-seed12")
INJECTION = 'bad """ + __import__("os").system("echo INJECTED") + """'

# Pieces that end a string or a docstring, start an escape, end a line or a comment, or
# that a terminal acts on; and text with lone surrogates, which no UTF-8 file can hold.
HOSTILE = [
    '"""',
    "'''",
    '"',
    "'",
    "\\",
    "\\N{",
    "\\x",
    "\n",
    "\r",
    "\x00",
    "\x0c",
    "\ud800",
    "\udfff",
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "\u202e",
    "\u2028",
    "{",
    "}",
    "{0}",
    "%s",
    "#",
    "日本",
    "C:\\Users\\new",
    INJECTION,
]
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.lists(st.sampled_from(HOSTILE) | st.text(max_size=3), max_size=20).map("".join),
    st.sampled_from(HOSTILE).map(lambda piece: piece * (100_000 // len(piece))),  # about 100 kB
)
# A function name holds no ':' or '.': the spec is split there (module:function.attribute).
function_name = hostile_text.map(lambda text: text.replace(":", "").replace(".", "") or "f")


def _skeleton(source: str) -> list[tuple[int, str]]:
    """The script's tokens with the text of every string literal blanked: what it runs."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(token.type, "" if token.type == tokenize.STRING else token.string) for token in tokens]


def _strings(source: str) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@settings(max_examples=60, deadline=None)
@given(name=hostile_text, message=hostile_text, where=hostile_text, function=function_name, in_a_file=st.booleans())
def test_every_string_from_outside_is_only_a_literal_in_the_script(
    name: str, message: str, where: str, function: str, in_a_file: bool
) -> None:
    def recorded(name: str, message: str) -> Finding:
        return Finding(name, CASE, Verdict(FAILED, Kind.EXCEPTION, message, "signature"))

    def generated(name: str, message: str, where: str, function: str) -> str:
        suffix = ".py" if in_a_file else ""
        return script(CASE, f"{where}{suffix}:{function}", recorded(name, message))

    source = generated(name, message, where, function)
    compile(source, "repro.py", "exec")
    # The same code, token for token, as for harmless strings: only literals differ.
    harmless = generated("a", "a", "a", "a")
    assert _skeleton(source) == _skeleton(harmless)
    assert ast.get_docstring(ast.parse(source)) == ast.get_docstring(ast.parse(harmless))
    path = f"{where}.py" if in_a_file else where
    assert {name, recorded(name, message).diagnosis, path, function} <= _strings(source)
    # Safe to print as it is: nothing a terminal acts on, nothing an encoding may refuse.
    assert source.isascii() and printable(source) == source


def test_a_recorded_message_that_closes_the_docstring_runs_nothing_when_the_script_runs(tmp_path: Path) -> None:
    entry = Finding(
        f"{INJECTION}:conv2d",
        CASE,
        Verdict(FAILED, Kind.EXCEPTION, f"ValueError: {INJECTION} C:\\Users\\new", "signature"),
    )
    path = tmp_path / "repro.py"
    path.write_text(script(CASE, None, entry))
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["outputs agree"]


# Reference with inf and NaN (checked below), each dtype, several layouts, batched or not;
# and plain uniform and int data (exact: its bound is 0) for the other data kinds.
SPECIAL = [
    "mb2ic2oc4g2ih5iw4kh2kw2s1p1d1-bias-float32-channels_last-special-cpu-seed0",
    "mbnoneic3oc2g1ih5iw6kh3kw2sh1sw2p0d1-bias-float64-strided-special-cpu-seed0",
    "mb2ic2oc4g2ih5iw4kh2kw2s1p1d1-bias-float16-contiguous-special-cpu-seed0",
    "mbnoneic3oc2g1ih5iw6kh3kw2sh1sw2p0d1-bias-bfloat16-transposed-special-cpu-seed0",
]
ORDINARY = [
    "mb2ic4oc4g2ih6iw5kh3kw3s2p1d1-bias-float16-channels_last-uniform-cpu-seed7",
    "mb1ic4oc2g1ih5iw5kh3kw3s1psamed1-bias-float32-contiguous-int-cpu-seed3",
    "mb1ic1oc2g1ih4iw4kh3kw3s1p1d2-bias-bfloat16-strided-int-cpu-seed5",
]
# torch's own F.conv2d is right except in bfloat16 (a NaN next to an inf), so `correct`
# computes bfloat16 in float32.
IMPLEMENTATIONS = ("correct", "swallows_nan", "ignores_bias")
# What a script says for each kind of failure (an exception is the implementation's own, raised).
SAYS = {
    "nonfinite": "NaN/inf mismatch in",
    "values": "elements wrong beyond the rounding bound",
    "mutated-input": "in place",
    "nondeterministic": "called again with the same inputs",
    "gradient": "gradient",
    "not-a-tensor": "not a torch.Tensor",
    "dtype": "for torch.",
    "shape": "wrong shape",
    "exception": "raised ",
}

_RUNNER = """
import json, runpy, sys
results = {}
for path in sys.argv[1:]:
    try:
        runpy.run_path(path, run_name="__main__")
        results[path] = "passed"
    except SystemExit as stopped:
        results[path] = str(stopped.code)
    except Exception as error:
        results[path] = f"raised {type(error).__name__}: {error}"
print(json.dumps(results))
"""


def test_the_script_passes_a_correct_implementation_and_fails_buggy_ones_as_the_harness_does(tmp_path: Path) -> None:
    harness: dict[tuple[str, str], str | None] = {}
    scripts: dict[str, tuple[str, str]] = {}  # script path -> (case id, implementation)
    for case_id in SPECIAL + ORDINARY:
        case = Case.from_id(case_id)
        if case_id in SPECIAL:
            reference = expect(case, make_inputs(case)).values
            assert reference.isinf().any() and reference.isnan().any(), case_id
        for name in IMPLEMENTATIONS:
            path = tmp_path / f"{len(scripts)}.py"
            path.write_text(script(case, f"{PLANTED}:{name}"))
            scripts[str(path)] = (case_id, name)
            implementation = implementation_from(name, getattr(planted_bugs, name))
            harness[case_id, name] = check_case(case, [implementation])[name].kind
    # What the harness says, which the scripts must say too: both bugs show on these cases.
    for case_id in SPECIAL + ORDINARY:
        assert harness[case_id, "correct"] is None
        assert harness[case_id, "swallows_nan"] == ("nonfinite" if case_id in SPECIAL else None)
        assert harness[case_id, "ignores_bias"] == "values"

    ran = subprocess.run([sys.executable, "-c", _RUNNER, *scripts], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout.splitlines()[-1])
    for script_path, (case_id, name) in scripts.items():
        kind = harness[case_id, name]
        if kind is None:
            assert results[script_path] == "passed", (name, results[script_path])
        else:
            assert results[script_path].startswith(f"FAILED {case_id}: "), (name, results[script_path])
            assert SAYS[kind] in results[script_path], (name, results[script_path])


def test_the_script_runs_on_one_thread_as_the_harness_does_so_a_one_thread_bug_shows(tmp_path: Path) -> None:
    """A bug that shows only on one thread (torch's own bfloat16 conv2d has one) is caught by
    the harness, which checks on one thread; its script must fail it too, whatever number of
    threads torch would start with (two, here, on any machine)."""
    case = Case.from_id(ORDINARY[1])
    implementation = implementation_from("wrong_on_one_thread", planted_bugs.wrong_on_one_thread)
    assert check_case(case, [implementation])["wrong_on_one_thread"].kind == "values"
    path = tmp_path / "repro.py"
    path.write_text(script(case, f"{PLANTED}:wrong_on_one_thread"))
    ran = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}
    )
    assert ran.returncode != 0 and f"FAILED {ORDINARY[1]}: " in ran.stderr, (ran.stdout, ran.stderr)


# Planted bugs whose minimal cases come out on each kind of data: uniform (one element off),
# int (exact sums, off by rounding), special (NaN replaced by zero; NaN created).
SHOWN = ("one_wrong_element", "prescales_input", "swallows_nan", "creates_nan")
# And on each kind of failure that is not a wrong value (what the inputs after the call, a
# second call and the gradients show), on a case where the harness finds it.
SHOWN_KINDS = {
    "pads_in_place": ("mutated-input", "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"),
    "sums_channels_in_random_order": (
        "nondeterministic",
        "mb1ic4oc2g1ih4iw4kh3kw3s1p1d1-bias-float32-contiguous-uniform-cpu-seed0",
    ),
    "adds_bias_through_data": ("gradient", "mb1ic1oc1g1ih3iw3kh2kw2s1p0d1-bias-float32-contiguous-uniform-cpu-seed0"),
    "returns_numpy": ("not-a-tensor", "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"),
    "returns_float32": ("dtype", "mb1ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float64-contiguous-uniform-cpu-seed0"),
    "computes_broadcast_batch_once": (
        "shape",
        "mb2ic1oc1g1ih1iw1kh1kw1s1p0d1-nobias-float32-expanded-uniform-cpu-seed0",
    ),
    "raises_on_groups": ("exception", "mb1ic2oc2g2ih1iw1kh1kw1s1p0d1-nobias-float32-contiguous-uniform-cpu-seed0"),
}


def assert_each_show_script_shows_its_finding(findings: list[Finding], tmp_path: Path) -> None:
    """What `python -m harness show CASE --impl I` prints for each of ``findings``: run, it
    rebuilds the inputs of the failing check and fails against the implementation that
    failed, the way the harness said; against a correct one it passes."""
    scripts: dict[str, tuple[str, str, str | None]] = {}  # script path -> (case id, implementation, kind or None)
    for finding in findings:
        for name, kind in ((finding.implementation, str(finding.verdict.kind)), ("correct", None)):
            path = tmp_path / f"{len(scripts)}.py"
            path.write_text(script(finding.case, f"{PLANTED}:{name}", finding))
            scripts[str(path)] = (finding.case.id, name, kind)
    ran = subprocess.run([sys.executable, "-c", _RUNNER, *scripts], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout.splitlines()[-1])
    for script_path, (case_id, name, kind) in scripts.items():
        said = results[script_path]
        if kind is None:
            assert said == "passed", (case_id, said)
        elif kind == "exception":
            assert said.startswith(SAYS[kind]), (name, said)
        else:
            assert said.startswith(f"FAILED {case_id}: ") and SAYS[kind] in said, (name, said)


def test_each_show_script_of_a_campaigns_findings_fails_the_buggy_implementation_and_passes_a_correct_one(
    tmp_path: Path,
) -> None:
    """On each kind of data (special values where they were)."""
    result = fuzz([implementation_from(name, getattr(planted_bugs, name)) for name in SHOWN], 60, seed=1)
    findings = {(f.implementation, f.verdict.kind, f.case.data) for f in result.findings}
    assert {data for *_, data in findings} == {"uniform", "int", "special"}, findings
    assert {name for name, *_ in findings} == set(SHOWN), findings
    assert_each_show_script_shows_its_finding(result.findings, tmp_path)


def test_a_show_script_shows_failures_that_are_not_wrong_values(tmp_path: Path) -> None:
    """An input changed in place, a second call's other bits, a gradient that never reaches
    the bias, and the rest: each script fails the way the harness said."""
    findings = []
    for name, (kind, case_id) in SHOWN_KINDS.items():
        case = Case.from_id(case_id)
        verdict = check_case(case, [implementation_from(name, getattr(planted_bugs, name))])[name]
        assert verdict.kind == kind, (name, verdict)
        findings.append(Finding(name, case, verdict))
    assert_each_show_script_shows_its_finding(findings, tmp_path)
