"""Discovery: entry points, FILE.py:function and package.module:function, and broken plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import implementations.loop
import implementations.original
from harness.model import registry as registry_module
from harness.model.capabilities import Capabilities, call_arguments, declaration_of
from harness.model.case import Case
from harness.model.registry import ENTRY_POINT_GROUP, SpecError, discover, implementation_from

SHIPPED = {"original", "loop", "unfold", "strided", "gather", "numpy"}

GOOD_PLUGIN = """
import torch.nn.functional as F

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

conv2d.__conv2d_declaration__ = {"dtypes": ["float64"], "bias": False}
"""


@pytest.fixture(autouse=True)
def _forget_loaded_plugins() -> Iterator[None]:
    """Plugins loaded from files land in sys.modules; do not leak them into other tests."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("im2col_harness_plugin_"):
            del sys.modules[name]


def _plugin(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


# -- entry points -------------------------------------------------------------------------


def test_discover_finds_the_six_shipped_implementations_through_entry_points() -> None:
    registry = discover()
    assert set(registry.implementations) >= SHIPPED
    assert not [e for e in registry.errors if e.name in SHIPPED]
    for name in SHIPPED:
        implementation = registry.implementations[name]
        assert implementation.name == name
        assert callable(implementation.fn)
        assert "entry point" in implementation.origin


def test_only_the_notebook_original_is_marked_known_buggy() -> None:
    registry = discover()
    assert {n for n in SHIPPED if registry.implementations[n].known_buggy} == {"original"}


def test_an_entry_point_carries_what_its_function_declares() -> None:
    original = discover().implementations["original"]
    assert original.fn is implementations.original.conv2d
    assert original.capabilities == declaration_of(implementations.original.conv2d).capabilities
    assert original.capabilities != Capabilities()


def test_a_registered_name_selects_just_that_implementation() -> None:
    registry = discover(["loop"])
    assert list(registry.implementations) == ["loop"]
    assert registry.implementations["loop"].fn is implementations.loop.conv2d


def test_several_registered_names_select_exactly_those() -> None:
    assert set(discover(["numpy", "gather"]).implementations) == {"numpy", "gather"}


# -- ad hoc specs -------------------------------------------------------------------------


def test_a_file_spec_loads_the_function_with_its_declaration(tmp_path: Path) -> None:
    spec = _plugin(tmp_path, "adhoc_good.py", GOOD_PLUGIN) + ":conv2d"
    registry = discover([spec])
    assert list(registry.implementations) == [spec]
    assert registry.errors == []
    implementation = registry.implementations[spec]
    assert implementation.capabilities == Capabilities(dtypes=("float64",), bias=False)
    assert not implementation.known_buggy
    x, w = torch.ones(1, 1, 3, 3, dtype=torch.float64), torch.ones(1, 1, 2, 2, dtype=torch.float64)
    assert torch.equal(implementation.fn(x, w), F.conv2d(x, w))


def test_a_module_spec_loads_the_named_function() -> None:
    spec = "implementations.loop:conv2d"
    registry = discover([spec])
    assert list(registry.implementations) == [spec]
    assert registry.implementations[spec].fn is implementations.loop.conv2d


def test_names_and_specs_can_be_mixed(tmp_path: Path) -> None:
    spec = _plugin(tmp_path, "adhoc_mixed.py", GOOD_PLUGIN) + ":conv2d"
    assert set(discover(["loop", spec]).implementations) == {"loop", spec}


@pytest.mark.parametrize(
    "spec, named",
    [
        pytest.param("no_such_implementation", "'no_such_implementation'", id="unknown-name"),
        pytest.param("conv.py", "'conv.py'", id="file-without-function"),
        pytest.param("no_such_module_for_im2col:conv2d", "no_such_module_for_im2col", id="missing-module"),
        pytest.param("implementations.loop:", "implementations.loop:", id="empty-function"),
        pytest.param("implementations.loop:not-a-name", "not-a-name", id="function-not-an-identifier"),
        pytest.param(".loop:conv2d", "'.loop' is neither a FILE.py nor an absolute module name", id="relative-module"),
        pytest.param("..:conv2d", "'..' is neither a FILE.py nor an absolute module name", id="parent-package"),
        pytest.param("implementations..loop:conv2d", "absolute module name", id="empty-module-part"),
        pytest.param(
            "implementations.loop:no_such_conv2d",
            "implementations.loop has no function 'no_such_conv2d' (it has: conv2d)",
            id="missing-function",
        ),
    ],
)
def test_a_spec_that_cannot_name_an_implementation_is_a_spec_error(spec: str, named: str) -> None:
    with pytest.raises(SpecError) as raised:
        discover([spec])
    assert named in str(raised.value)


def test_an_unknown_name_error_lists_the_registered_names() -> None:
    with pytest.raises(SpecError, match="loop"):
        discover(["lopo"])


def test_a_file_spec_naming_a_function_the_file_lacks_is_a_spec_error_listing_what_it_has(tmp_path: Path) -> None:
    spec = _plugin(tmp_path, "adhoc_typo.py", GOOD_PLUGIN + "def helper(): pass\ndef _private(): pass\n") + ":conv2"
    path = spec.rpartition(":")[0]
    with pytest.raises(SpecError) as raised:
        discover([spec, "loop"])
    assert str(raised.value) == f"--impl {spec!r}: {path} has no function 'conv2' (it has: conv2d, helper)"


def test_a_spec_whose_parent_package_fails_to_import_is_a_load_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "adhoc_broken_package"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('needs a GPU library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "adhoc_broken_package.conv:conv2d"

    registry = discover([spec, "loop"])

    assert set(registry.implementations) == {"loop"}
    assert [(e.name, e.reason) for e in registry.errors] == [(spec, "RuntimeError: needs a GPU library")]


def test_an_entry_point_naming_a_missing_function_stays_a_load_error_and_the_others_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ghost = EntryPoint("ghost", "implementations.loop:no_such_conv2d", ENTRY_POINT_GROUP)
    installed = list(entry_points(group=ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*installed, ghost])

    everything, chosen = discover(), discover(["ghost", "loop"])

    assert set(everything.implementations) >= SHIPPED and "ghost" not in everything.implementations
    assert set(chosen.implementations) == {"loop"}
    for registry in (everything, chosen):
        [error] = [e for e in registry.errors if e.name == "ghost"]
        assert "implementations.loop has no function 'no_such_conv2d' (it has: conv2d)" in error.reason


def test_a_file_spec_for_a_missing_file_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.py")
    with pytest.raises(SpecError) as raised:
        discover([missing + ":conv2d"])
    assert missing in str(raised.value)


# -- broken plugins -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, attribute, reason_names",
    [
        pytest.param(
            "raise RuntimeError('plugin exploded')\n",
            "conv2d",
            ["RuntimeError", "plugin exploded"],
            id="raises-on-import",
        ),
        pytest.param("conv2d = 3\n", "conv2d", ["int", "not a callable"], id="not-callable"),
    ],
)
def test_a_broken_plugin_is_recorded_with_its_reason_and_the_others_still_load(
    tmp_path: Path, source: str, attribute: str, reason_names: list[str]
) -> None:
    broken = _plugin(tmp_path, "adhoc_broken.py", source) + f":{attribute}"
    good = _plugin(tmp_path, "adhoc_fine.py", GOOD_PLUGIN) + ":conv2d"
    registry = discover([broken, good, "loop"])
    assert set(registry.implementations) == {good, "loop"}
    assert [e.name for e in registry.errors] == [broken]
    for fragment in reason_names:
        assert fragment in registry.errors[0].reason


def test_a_missing_module_inside_an_existing_package_is_reported_by_name() -> None:
    spec = "implementations.no_such_submodule:conv2d"
    try:
        registry = discover([spec])
    except SpecError as error:
        assert "no_such_submodule" in str(error)
    else:
        assert spec not in registry.implementations
        assert [e.name for e in registry.errors] == [spec]
        assert "no_such_submodule" in registry.errors[0].reason


# -- signatures ---------------------------------------------------------------------------

CALLED_LIKE = (
    "(implementations are called like torch.nn.functional.conv2d(input, weight, bias, "
    "stride=..., padding=..., dilation=..., groups=...))"
)


@pytest.mark.parametrize(
    "definition, reason",
    [
        pytest.param(
            "def conv2d(input, weight): pass",
            "conv2d(input, weight) has no parameter 'stride', 'padding', 'dilation' or 'groups'",
            id="two-parameters",
        ),
        pytest.param(
            "def conv2d(x, w, b=None, s=1, p=0, d=1, g=1): pass",
            "conv2d(x, w, b=None, s=1, p=0, d=1, g=1) has no parameter 'stride', 'padding', 'dilation' or 'groups'",
            id="other-names",
        ),
        pytest.param(
            "def conv2d(input: 'Tensor', weight, bias=None, stride=1, padding=0, dilation=1) -> 'Tensor': pass",
            "conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1) has no parameter 'groups'",
            id="no-groups-annotations-not-shown",
        ),
        pytest.param(
            "def conv2d(input, weight, bias, stride, padding, dilation, groups, scale): pass",
            "conv2d(input, weight, bias, stride, padding, dilation, groups, scale) does not fit: "
            "missing a required argument: 'scale'",
            id="a-required-extra",
        ),
        pytest.param(
            "def conv2d(input, weight, stride=1, padding=0, dilation=1, groups=1): pass",
            "conv2d(input, weight, stride=1, padding=0, dilation=1, groups=1) does not fit: "
            "multiple values for argument 'stride'",
            id="no-bias",
        ),
        pytest.param(
            "def conv2d(input, **options): pass",
            "conv2d(input, **options) does not fit: too many positional arguments",
            id="one-positional",
        ),
    ],
)
def test_a_plugin_that_cannot_be_called_as_conv2d_is_a_load_error_saying_why_and_the_others_load(
    tmp_path: Path, definition: str, reason: str
) -> None:
    spec = _plugin(tmp_path, "adhoc_wrongly_signed.py", definition + "\n") + ":conv2d"
    registry = discover([spec, "loop"])
    assert set(registry.implementations) == {"loop"}
    assert [(e.name, e.reason) for e in registry.errors] == [(spec, f"TypeError: {reason} {CALLED_LIKE}")]


def test_an_entry_point_that_cannot_be_called_as_conv2d_is_a_load_error_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plugin(tmp_path, "adhoc_wrongly_signed_package.py", "def conv2d(input, weight): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wrong = EntryPoint("wrong", "adhoc_wrongly_signed_package:conv2d", ENTRY_POINT_GROUP)
    installed = list(entry_points(group=ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*installed, wrong])

    registry = discover()
    sys.modules.pop("adhoc_wrongly_signed_package", None)

    assert set(registry.implementations) >= SHIPPED and "wrong" not in registry.implementations
    [error] = [e for e in registry.errors if e.name == "wrong"]
    assert error.reason.startswith("TypeError: conv2d(input, weight) has no parameter 'stride'")


class _Callable:
    def __call__(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _anything(*args, **kwargs):
    return F.conv2d(*args, **kwargs)


def _keywords_only(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, extra=None):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(_anything, id="args-and-kwargs"),
        pytest.param(_keywords_only, id="keyword-only-with-an-optional-extra"),
        pytest.param(_Callable(), id="callable-object"),
        pytest.param(F.conv2d, id="builtin-without-a-readable-signature"),
    ],
)
def test_a_callable_that_can_be_called_as_conv2d_loads(fn: Any) -> None:
    assert implementation_from("fits", fn).fn is fn


def test_the_signature_check_asks_for_exactly_the_keywords_the_runner_passes() -> None:
    case = Case(batch=1, in_channels=1, out_channels=1, groups=1, height=3, width=3, kernel=(1, 1))
    assert set(call_arguments(Capabilities(), case)) == set(registry_module.KEYWORDS)
