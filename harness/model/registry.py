"""Find conv2d implementations and hold them, with what each declares, in one registry.

Three ways in, one registry out: entry points in the group
``im2col_harness.implementations`` (how the project's own and any installed package's
implementations are found), a file that is not installed (``path/to/file.py:function``),
and an importable module (``package.module:function``). Discovery never executes an
implementation; a plugin that fails to load is recorded with its reason and the others
carry on. A spec the user typed is checked as such: one that cannot name a module or file,
or names a function its module lacks, is a usage error, not a broken plugin.

An entry point that names an extra (``jax = "harness.adapters.jax_lax:conv2d [jax]"``) and fails to
import while a requirement of that extra is not installed is *unavailable*, with the
command that installs it: a library left out on purpose, not a broken plugin. With every
requirement of its extra installed, the same failure is a load error.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
import types
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

from harness.model.capabilities import Capabilities, declaration_of
from harness.model.conditions import DeclarationError
from harness.model.text import clipped, message

ENTRY_POINT_GROUP = "im2col_harness.implementations"


class SpecError(ValueError):
    """An ``--impl`` the user typed that cannot name an implementation (a usage error)."""


class MissingFunction(AttributeError):
    """A plugin that loaded, but has no function of the name its source gives."""


@dataclass(frozen=True)
class Implementation:
    name: str
    fn: Callable[..., Any]
    capabilities: Capabilities = field(default_factory=Capabilities)
    known_buggy: bool = False
    origin: str = ""
    source: str = ""  # module:function or FILE.py:function that loads ``fn`` anywhere

    def __reduce__(self) -> tuple[Any, ...]:
        """Travel to another process (an isolated child) by source where there is one:
        a function from a plugin file cannot be pickled by reference."""
        if not self.source:
            return (Implementation, (self.name, self.fn, self.capabilities, self.known_buggy, self.origin))
        return (_reloaded, (self.name, self.source, self.capabilities, self.known_buggy, self.origin))


def _reloaded(name: str, source: str, capabilities: Capabilities, known_buggy: bool, origin: str) -> Implementation:
    return Implementation(name, load_callable(source), capabilities, known_buggy, origin, source)


@dataclass(frozen=True)
class LoadError:
    """A plugin that could not be loaded: its name and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Unavailable:
    """A plugin whose optional library is not installed: its name, what is missing, and
    the command that installs it."""

    name: str
    missing: tuple[str, ...]
    install: str

    def __str__(self) -> str:
        return f"{self.name}: unavailable, {', '.join(self.missing)} not installed ({self.install})"


@dataclass
class Registry:
    implementations: dict[str, Implementation] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)

    def add_entry_point(self, entry_point: EntryPoint) -> None:
        """Load one entry point, as `add`; one that cannot be imported while a requirement of
        the extra it names is not installed is `Unavailable` instead, never an error."""
        source = f"{entry_point.module}:{entry_point.attr}"  # its value, less the " [extra]"
        try:
            implementation = implementation_from(
                entry_point.name, load_callable(source), f"entry point {entry_point.value}", source
            )
        except Exception as error:  # a broken plugin must not stop the others
            missing = _missing_requirements(entry_point) if isinstance(error, ImportError) else ()
            if missing:
                self.unavailable.append(Unavailable(entry_point.name, missing, install_command(entry_point)))
            else:
                self.errors.append(LoadError(entry_point.name, f"{type(error).__name__}: {message(error, 1000)}"))
        else:
            self.implementations[entry_point.name] = implementation

    def add(self, name: str, source: str, origin: str, typed: bool = False) -> None:
        """Load one plugin; a failure is recorded against its name, never raised, except
        that a spec the user ``typed`` naming a function its module lacks, or declaring
        what cannot be read (``"groups": "false"``), is their mistake to correct (a
        `SpecError`), not a broken plugin."""
        try:
            implementation = implementation_from(name, load_callable(source), origin, source)
        except Exception as error:  # a broken plugin must not stop the others
            if typed and isinstance(error, MissingFunction | DeclarationError):
                raise SpecError(f"--impl {name!r}: {message(error, 1000)}") from None
            self.errors.append(LoadError(name, f"{type(error).__name__}: {message(error, 1000)}"))
        else:
            self.implementations[name] = implementation


def _requirements(dist: Distribution, extra: str) -> list[str]:
    """The names of the distributions ``dist``'s ``extra`` requires (``name>=1; extra == "x"``)."""
    names = []
    for requirement in dist.requires or []:
        spec, _, marker = requirement.partition(";")
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
            if found:
                names.append(found.group())
    return names


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def _missing_requirements(entry_point: EntryPoint) -> tuple[str, ...]:
    """The requirements of the extras ``entry_point`` names that are not installed (none for
    an entry point without extras, or outside a distribution)."""
    if entry_point.dist is None:
        return ()
    return tuple(
        name for extra in entry_point.extras for name in _requirements(entry_point.dist, extra) if not _installed(name)
    )


def install_command(entry_point: EntryPoint) -> str:
    """How to install what ``entry_point``'s extras need: from its source tree where the
    plugin runs from one (a project with a pyproject.toml or setup.py, installed editable),
    else its distribution by name."""
    extras = ",".join(entry_point.extras)
    tree = _source_tree(entry_point.module.partition(".")[0])
    if tree is not None:
        return f"pip install -e '{'.' if tree == Path.cwd() else tree}[{extras}]'"
    name = entry_point.dist.metadata["Name"] if entry_point.dist is not None else entry_point.module
    return f"pip install '{name}[{extras}]'"


def _source_tree(top_level: str) -> Path | None:
    """The project folder a top-level module or package is run from, if it is one; found
    without importing it."""
    try:
        spec = importlib.util.find_spec(top_level)
    except Exception:  # a parent that fails to import: no tree to point at
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    origin = Path(spec.origin)
    folder = origin.parent.parent if spec.submodule_search_locations else origin.parent
    return folder if any((folder / name).is_file() for name in ("pyproject.toml", "setup.py")) else None


def implementation_from(name: str, fn: Any, origin: str = "", source: str = "") -> Implementation:
    """Wrap a callable with what it declares about itself; a TypeError, once, here, for one
    that cannot be called as conv2d (rather than on every call of a campaign)."""
    if not callable(fn):
        raise TypeError(f"{origin or name} is a {type(fn).__name__}, not a callable")
    declaration = declaration_of(fn)
    check_signature(fn)
    return Implementation(name, fn, declaration.capabilities, declaration.known_buggy, origin, source)


# How `harness.execute.runner.call` calls every implementation (the keywords: `capabilities.call_arguments`).
KEYWORDS = ("stride", "padding", "dilation", "groups")
CALLED_LIKE = (
    "torch.nn.functional.conv2d(input, weight, bias, " + ", ".join(f"{keyword}=..." for keyword in KEYWORDS) + ")"
)


def check_signature(fn: Callable[..., Any]) -> None:
    """A TypeError naming what is missing when ``fn`` cannot take ``fn(input, weight, bias,
    stride=..., padding=..., dilation=..., groups=...)``. ``*args`` and ``**kwargs`` take
    anything; a callable whose signature cannot be read (some builtins, F.conv2d among them)
    passes, and its first call will tell."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None, None, **dict.fromkeys(KEYWORDS))
        return
    except TypeError as error:
        reason = f"does not fit: {error}"
    parameters = signature.parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        by_keyword = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        missing = [f"{keyword!r}" for keyword in KEYWORDS if keyword not in by_keyword]
        if missing:
            listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} or {missing[-1]}"
            reason = f"has no parameter {listed}"
    plain = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in parameters], return_annotation=signature.empty
    )
    shown = f"{getattr(fn, '__name__', type(fn).__name__)}{plain}"
    raise TypeError(f"{shown} {reason} (implementations are called like {CALLED_LIKE})")


def _from_file(path: str) -> types.ModuleType:
    """Execute a plugin file as a module, always from its current source.

    Not through the import system's bytecode cache: a file rewritten within the same
    second at the same size (a fix of one word) would run stale bytecode, and a user's
    folder gets no __pycache__.
    """
    # Unique per file: two plugins both called conv.py must not replace each other.
    resolved = Path(path).resolve()
    name = f"im2col_harness_plugin_{resolved.stem}_{zlib.crc32(str(resolved).encode()):08x}"
    module = types.ModuleType(name)
    module.__file__ = str(resolved)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        exec(compile(resolved.read_text(), str(resolved), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def check_form(spec: str) -> tuple[str, str]:
    """(file or module, function) of a user's FILE.py:FUNCTION or package.module:FUNCTION,
    checked for form only: nothing is imported."""
    target, colon, attribute = spec.rpartition(":")
    if not colon or not target or not attribute.isidentifier():
        raise SpecError(f"--impl {spec!r}: expected a registered name, FILE.py:FUNCTION or package.module:FUNCTION")
    if not target.endswith(".py") and not all(part.isidentifier() for part in target.split(".")):
        raise SpecError(
            f"--impl {spec!r}: {target!r} is neither a FILE.py nor an absolute module name (package.module)"
        )  # '.x', '..', 'a..b'
    return target, attribute


def check_spec(spec: str) -> None:
    """Check a user's ``--impl`` spec up front: a usage error, not a plugin failure."""
    target, _ = check_form(spec)
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise SpecError(f"--impl {spec!r}: no such file {target!r}")
        return
    try:
        found = importlib.util.find_spec(target)
    except ModuleNotFoundError as error:  # a parent package is missing
        found, target = None, error.name or target
    except Exception:  # a parent package that fails to import: loading it says how
        return
    if found is None:
        raise SpecError(f"--impl {spec!r}: no module named {target!r}")


def load_callable(source: str) -> Any:
    """What ``package.module:function`` or ``FILE.py:function`` names; `MissingFunction`
    (saying what the module does have) when the module loads but lacks it."""
    target, _, attribute = source.rpartition(":")
    module = _from_file(target) if target.endswith(".py") else importlib.import_module(target)
    if not hasattr(module, attribute):
        functions = [
            name
            for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__
        ]
        raise MissingFunction(_lacks(target, attribute, functions))
    return getattr(module, attribute)


def _lacks(target: str, attribute: str, functions: Iterable[str]) -> str:
    public = sorted(name for name in functions if not name.startswith("_"))
    return f"{target} has no function {attribute!r} (it has: {clipped(', '.join(public)) or 'none'})"


def check_file_spec(spec: str) -> None:
    """That a FILE.py:FUNCTION spec's file exists and binds FUNCTION at its top level, read
    from its source without running any of it (`show` runs nothing)."""
    target, attribute = check_form(spec)
    path = Path(target)
    if not path.is_file():
        raise SpecError(f"--impl {spec!r}: no such file {target!r}")
    try:
        tree = ast.parse(path.read_bytes(), filename=target)
    except (SyntaxError, ValueError, OSError) as error:
        raise SpecError(f"--impl {spec!r}: cannot read {target!r}: {type(error).__name__}") from None
    functions = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if attribute not in functions + _other_top_level_names(tree):
        raise SpecError(f"--impl {spec!r}: {_lacks(path.name, attribute, functions)}")


def _other_top_level_names(tree: ast.Module) -> list[str]:
    """Names a module binds at its top level by class, assignment or import (a function
    may be made rather than defined: ``conv2d = build()``)."""
    names = []
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef):
            names.append(statement.name)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names += [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            names += [alias.asname or alias.name.split(".")[0] for alias in statement.names]
    return names


def discover(specs: Iterable[str] = ()) -> Registry:
    """The registry for a run: every entry point, or just the implementations ``specs`` name.

    A spec that is a registered name selects that implementation; any other spec is
    loaded ad hoc and registered under the spec string exactly as given.
    """
    registry = Registry()
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        registry.add_entry_point(entry_point)
    specs = list(specs)
    if not specs:
        return registry
    selected = Registry(
        errors=[e for e in registry.errors if e.name in specs],
        unavailable=[u for u in registry.unavailable if u.name in specs],
    )
    for spec in specs:
        if spec in registry.implementations:
            selected.implementations[spec] = registry.implementations[spec]
        elif spec in {failed.name for failed in registry.errors} | {u.name for u in selected.unavailable}:
            continue
        elif ":" not in spec and spec.endswith(".py"):
            raise SpecError(f"--impl {spec!r}: name the function too, as {spec}:FUNCTION")
        elif ":" not in spec:
            known = ", ".join(sorted(registry.implementations)) or "none"
            raise SpecError(f"--impl {spec!r}: no implementation registered under that name (registered: {known})")
        else:
            check_spec(spec)
            selected.add(spec, spec, spec, typed=True)
    return selected
