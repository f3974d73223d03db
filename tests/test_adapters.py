"""The real libraries' adapters: each agrees with F.conv2d where it should, and a short
campaign finds in each only the disagreements the README keeps (each verified there by
calling the library directly). Where a library is not installed its tests are skipped,
saying so; the registry lists it as unavailable with its install command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.campaign.engine import CampaignResult, fuzz
from harness.model import registry as registry_module
from harness.model.capabilities import refusal
from harness.model.case import Case
from harness.model.registry import ENTRY_POINT_GROUP, Implementation, discover
from harness.reporting.report import campaign_report, format_failures

# name -> (the library's module, the extra that installs it)
LIBRARIES = {
    "jax": ("jax", "jax"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "mlx": ("mlx.core", "mlx"),
}
SEED = 20261130

# (input shape, weight shape, stride, padding, dilation, groups): grouped, strided and dilated
# with padding of two values; unbatched; 'same'; 'valid' with a dilated depthwise kernel.
FIXED: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, int], tuple[int, int] | str, tuple[int, int], int]] = [
    ((2, 4, 7, 6), (6, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2),
    ((4, 5, 5), (3, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 3, 6, 9), (5, 3, 3, 1), (1, 1), "same", (1, 1), 1),
    ((1, 3, 8, 8), (3, 1, 3, 3), (1, 1), "valid", (2, 2), 3),
]


def _implementation(name: str) -> Implementation:
    if name in LIBRARIES:
        module, extra = LIBRARIES[name]
        pytest.importorskip(module, reason=f"{name} is not installed (pip install -e '.[{extra}]')")
    return discover([name]).implementations[name]


def _case(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: tuple[int, int],
    padding: tuple[int, int] | str,
    dilation: tuple[int, int],
    groups: int,
    dtype: str,
) -> Case:
    batch = input_shape[0] if len(input_shape) == 4 else None
    return Case(
        batch,
        input_shape[-3],
        weight_shape[0],
        groups,
        input_shape[-2],
        input_shape[-1],
        (weight_shape[2], weight_shape[3]),
        stride,
        padding,
        dilation,
        True,
        dtype,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", [*LIBRARIES, "torch", "torch_no_mkldnn"])
def test_each_adapter_agrees_with_f_conv2d_on_fixed_cases_inside_its_declaration(name: str, dtype: torch.dtype) -> None:
    implementation = _implementation(name)
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for input_shape, weight_shape, stride, padding, dilation, groups in FIXED:
        case = _case(input_shape, weight_shape, stride, padding, dilation, groups, str(dtype).removeprefix("torch."))
        if refusal(implementation.capabilities, case):
            continue
        x, w = (torch.randn(shape, generator=generator, dtype=dtype) for shape in (input_shape, weight_shape))
        b = torch.randn(weight_shape[0], generator=generator, dtype=dtype)
        got = implementation.fn(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        want = F.conv2d(x.double(), w.double(), b.double(), stride, padding, dilation, groups)
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        checked += 1
    if dtype == torch.float32 or "float64" in implementation.capabilities.dtypes:
        assert checked >= 2, f"{name}: only {checked} of the fixed cases are inside its declaration"


def _campaign(name: str, examples: int) -> tuple[CampaignResult, str]:
    implementation = _implementation(name)
    # The library's import (JAX and TensorFlow import theirs at the first call) is not a
    # case's time: a first call here, outside the campaign's 2 s per case.
    implementation.fn(
        torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1), None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1
    )
    result = fuzz([implementation], examples, SEED)
    assert result.tallies[name].statuses["passed"] > examples // 2
    return result, "\n".join(format_failures(campaign_report(result, discover([name]), examples)))


def test_torch_without_onednn_passes_a_campaign() -> None:
    result, report = _campaign("torch_no_mkldnn", 150)
    assert not result.findings, report


def test_onnxruntime_passes_a_campaign_and_just_outside_its_declared_limit_it_raises() -> None:
    result, report = _campaign("onnxruntime", 200)
    assert not result.findings, report
    # The outside pass lifts "no dilation with 'same'": there ONNX Runtime refuses, which is allowed.
    implementation = _implementation("onnxruntime")
    limited = replace(implementation, capabilities=replace(implementation.capabilities, limits=()))
    findings = fuzz([limited], 200, 1).findings
    assert findings and all(
        "Dilation not supported for AutoPadType::SAME_UPPER" in f.verdict.message
        and f.case.padding == "same"
        and f.case.dilation not in (1, (1, 1))
        for f in findings
    ), [f.diagnosis for f in findings]


def test_onnxruntime_computes_the_same_case_with_explicit_pads() -> None:
    implementation = _implementation("onnxruntime")
    x, w = torch.randn(1, 2, 7, 7), torch.randn(3, 2, 3, 3)
    with pytest.raises(Exception, match="Dilation not supported"):
        implementation.fn(x, w, None, stride=(1, 1), padding="same", dilation=(2, 2), groups=1)
    got = implementation.fn(x, w, None, stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=1)
    torch.testing.assert_close(got, F.conv2d(x, w, None, 1, "same", 2), rtol=1e-5, atol=1e-5)


def test_tensorflow_gives_an_empty_batch_the_input_s_shape() -> None:
    implementation = _implementation("tensorflow")
    x, w = torch.zeros(0, 3, 5, 5), torch.zeros(4, 3, 3, 3)
    got = implementation.fn(x, w, None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
    assert got.shape == x.shape and F.conv2d(x, w).shape == (0, 4, 3, 3)


@pytest.mark.parametrize("name", ["jax", "tensorflow", "mlx"])
def test_a_short_campaign_finds_only_the_disagreements_the_readme_keeps(name: str) -> None:
    result, report = _campaign(name, 150)
    kept = KEPT[name]
    for finding in result.findings:
        if finding.verdict.kind == "timeout" and not finding.reproducible:
            continue  # a call past 2 s on a loaded machine that did not happen again: not the library's
        assert kept(finding.case, finding.verdict.message), f"{name}: a disagreement not in the README:\n{report}"


# What each disagreement the README keeps needs (the campaign's "fails this way only with").
KEPT = {
    "jax": lambda case, message: case.dtype == "float64" and case.groups > 1 and case.data == "special",
    "tensorflow": lambda case, message: case.batch == 0 or (case.dtype == "bfloat16" and case.data == "special"),
    "mlx": lambda case, message: False,
}


# -- the registry: a library that is not installed ---------------------------------------------

DIST = """\
Metadata-Version: 2.1
Name: fake-adapters
Version: 0.1
Provides-Extra: absent
Requires-Dist: surely-absent-library-im2col; extra == "absent"
Provides-Extra: present
Requires-Dist: torch; extra == "present"
"""
ENTRY_POINTS = f"""\
[{ENTRY_POINT_GROUP}]
absentlib = fake_absent_adapter:conv2d [absent]
brokenlib = fake_broken_adapter:conv2d [present]
"""


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed third-party package with two adapters: one whose library is not installed,
    one whose library is (torch) but which fails to import anyway."""
    info = tmp_path / "fake_adapters-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(DIST)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (tmp_path / "fake_absent_adapter.py").write_text("import surely_absent_library_im2col\n")
    (tmp_path / "fake_broken_adapter.py").write_text("import torch.surely_not_a_torch_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_adapter_whose_library_is_not_installed_is_unavailable_with_the_install_command(
    fake_distribution: Path,
) -> None:
    found = discover()
    (absent,) = [u for u in found.unavailable if u.name == "absentlib"]
    assert absent.missing == ("surely-absent-library-im2col",)
    assert absent.install == "pip install 'fake-adapters[absent]'"
    assert "absentlib" not in found.implementations
    assert all(error.name != "absentlib" for error in found.errors)


def test_an_adapter_whose_library_is_installed_but_fails_to_import_is_a_load_error(fake_distribution: Path) -> None:
    found = discover()
    (broken,) = [error for error in found.errors if error.name == "brokenlib"]
    assert "ModuleNotFoundError" in broken.reason and "surely_not_a_torch_module" in broken.reason
    assert all(u.name != "brokenlib" for u in found.unavailable)


def test_a_shipped_adapter_is_unavailable_when_its_library_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    (jax,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "jax"]
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    monkeypatch.delitem(sys.modules, "harness.adapters.jax_lax", raising=False)
    monkeypatch.setattr(registry_module, "_installed", lambda name: name not in ("jax", "jaxlib"))
    found = discover(["jax"])
    assert not found.implementations and not found.errors
    (unavailable,) = found.unavailable
    assert unavailable.missing == ("jax", "jaxlib")
    assert unavailable.install == "pip install -e '.[jax]'"  # the project is installed editable
    assert str(unavailable) == "jax: unavailable, jax, jaxlib not installed (pip install -e '.[jax]')"
    # With jax installed as far as the metadata says, the same ImportError is a broken adapter.
    monkeypatch.setattr(registry_module, "_installed", lambda name: True)
    found = discover(["jax"])
    assert not found.unavailable and [error.name for error in found.errors] == ["jax"]
    assert jax.extras == ["jax"]


def _harness(*argv: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(path)},
        timeout=300,
    )


def test_list_shows_an_unavailable_adapter_and_fuzz_skips_it_in_one_line(fake_distribution: Path) -> None:
    (fake_distribution / "fake_adapters-0.1.dist-info" / "entry_points.txt").write_text(
        ENTRY_POINTS.replace("brokenlib = fake_broken_adapter:conv2d [present]\n", "")
    )
    listed = _harness("list", path=fake_distribution)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith("absentlib")]
    assert line.split()[1] == "unavailable"
    assert "surely-absent-library-im2col not installed: pip install 'fake-adapters[absent]'" in line
    fuzzed = _harness(
        "fuzz", "--impl", "absentlib", "--impl", "loop", "--max-examples", "10", "--no-save", path=fake_distribution
    )
    assert fuzzed.returncode == 0, fuzzed.stdout + fuzzed.stderr
    assert (
        "skipped absentlib: unavailable, surely-absent-library-im2col not installed "
        "(pip install 'fake-adapters[absent]')"
    ) in fuzzed.stdout
    assert "NOT LOADED" not in fuzzed.stdout
    alone = _harness("fuzz", "--impl", "absentlib", "--max-examples", "10", "--no-save", path=fake_distribution)
    assert alone.returncode == 2 and alone.stdout == "" and len(alone.stderr.splitlines()) == 1
    assert "nothing to fuzz: every implementation named is unavailable: absentlib: unavailable" in alone.stderr


def test_the_adapters_are_entry_points_named_after_their_library_each_naming_its_extra() -> None:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, (_, extra) in LIBRARIES.items():
        assert found[name].extras == [extra]
        assert found[name].module.startswith("harness.adapters.")
    assert found["torch"].extras == found["torch_no_mkldnn"].extras == []
