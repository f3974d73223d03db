"""What part of the conv2d domain an implementation claims, and how it wants its arguments.

An implementation that declares nothing claims all of ``torch.nn.functional.conv2d``.
Declaring less is how a partial implementation (the notebook's, a first attempt) gets
fuzzed only where it means to be right; the strategies draw inside these limits and the
runner converts stride/padding/dilation to the form declared here. Two fields say how an
implementation is judged rather than where (`JUDGING`): ``autograd`` adds a gradient check,
and ``algorithm`` picks the rounding bound its results are held to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from harness.case import DEVICES, DTYPES, LAYOUTS, Case, IntOrPair, pair

ARG_FORMS = ("int", "pair")
PADDING_MODES = ("same", "valid")
# How the outputs are computed, which sets how far rounding may take them (`harness.oracle`):
# summed directly in any order, through an FFT, through Winograd tiles, or any of these
# (a library that picks its algorithm per call, as cuDNN and oneDNN do).
ALGORITHMS = ("direct", "fft", "winograd", "any")
# Fields that say how an implementation is judged, not which cases it claims: implementations
# that differ only in these are fuzzed on the same cases, and lifting them is no widening.
JUDGING = ("autograd", "algorithm")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Capabilities:
    """The domain an implementation claims to get right; the default is all of it."""

    batched: bool = True
    unbatched: bool = True
    max_in_channels: int | None = None
    max_out_channels: int | None = None
    groups: bool = True
    bias: bool = True
    dilation: bool = True
    square_kernels_only: bool = False
    padding_modes: tuple[str, ...] = PADDING_MODES
    arg_forms: tuple[str, ...] = ARG_FORMS
    dtypes: tuple[str, ...] = DTYPES
    layouts: tuple[str, ...] = LAYOUTS
    devices: tuple[str, ...] = DEVICES
    autograd: bool = False
    # Left out of the repr, which seeds a campaign's draws (`campaign._Group.run`): how an
    # implementation is judged must not change which cases a seed draws (nor, the field
    # being new, which cases each seed drew before it).
    algorithm: str = field(default="direct", repr=False)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("padding_modes", PADDING_MODES),
            ("arg_forms", ARG_FORMS),
            ("dtypes", DTYPES),
            ("layouts", LAYOUTS),
            ("devices", DEVICES),
        ):
            values = getattr(self, name)
            if isinstance(values, str):
                values = (values,)
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise ValueError(f"capabilities: unknown {name} {unknown!r}; choose from {allowed!r}")
            object.__setattr__(self, name, tuple(v for v in allowed if v in values))
        if not self.arg_forms:
            raise ValueError("capabilities: arg_forms must allow 'int' or 'pair'")
        if not (self.batched or self.unbatched):
            raise ValueError("capabilities: at least one of batched/unbatched must be True")
        if not self.dtypes or not self.layouts or not self.devices:
            raise ValueError("capabilities: dtypes, layouts and devices must not be empty")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"capabilities: unknown algorithm {self.algorithm!r}; choose from {ALGORITHMS!r}")
        if self.autograd and self.algorithm != "direct":
            raise ValueError(f"capabilities: autograd=True is judged for algorithm='direct' only (gradients get "
                             f"the direct-summation bound); drop autograd or algorithm={self.algorithm!r}")

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any]) -> Capabilities:
        """Build from a plain dict, so a plugin can declare without importing the harness."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"capabilities: unknown field(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def domain(self) -> Capabilities:
        """The cases claimed, without the fields that only say how they are judged (`JUDGING`)."""
        return replace(self, **{name: getattr(_DEFAULT, name) for name in JUDGING})

    def differences(self) -> dict[str, Any]:
        """The fields that differ from the default (a narrower domain, or another way of
        being judged), for `harness list`."""
        return {k: v for k, v in self.to_mapping().items() if v != getattr(_DEFAULT, k) and
                not (isinstance(v, list) and tuple(v) == getattr(_DEFAULT, k))}


_DEFAULT = Capabilities()


@dataclass(frozen=True)
class Declaration:
    """What a plugin says about itself: its domain, and whether it is a known-buggy canary."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    known_buggy: bool = False


def declare(*, known_buggy: bool = False, **capabilities: Any) -> Callable[[F], F]:
    """Attach a `Declaration` to an implementation; the registry reads it back.

    >>> @declare(dtypes=("float32",), autograd=True)
    ... def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1): ...
    """
    declaration = Declaration(Capabilities.from_mapping(capabilities), known_buggy)

    def attach(fn: F) -> F:
        fn.__conv2d_declaration__ = declaration  # type: ignore[attr-defined]
        return fn

    return attach


def declaration_of(fn: Callable[..., Any]) -> Declaration:
    """The declaration attached to ``fn``: a `Declaration`, a plain dict, or nothing (claims all)."""
    found = getattr(fn, "__conv2d_declaration__", None)
    if found is None:
        return Declaration()
    if isinstance(found, Declaration):
        return found
    if isinstance(found, dict):
        found = dict(found)
        known_buggy = bool(found.pop("known_buggy", False))
        return Declaration(Capabilities.from_mapping(found), known_buggy)
    raise TypeError(f"__conv2d_declaration__ must be a Declaration or dict, not {type(found).__name__}")


def widenings(declared: Capabilities, everything: Capabilities) -> list[Capabilities]:
    """``declared`` with one of its limits lifted to ``everything``'s, for each limit: cases
    just outside the declaration, where an implementation must raise or be right. (Drawn
    from ``everything`` at once, a narrow declaration is left in so many ways that nearly
    every case raises for the first of them.)"""
    return [replace(declared, **{f.name: getattr(everything, f.name)}) for f in fields(Capabilities)
            if f.name not in JUDGING and getattr(declared, f.name) != getattr(everything, f.name)]


def _form(value: object) -> str:
    return "int" if isinstance(value, int) else "pair"


def _in_form(value: IntOrPair, forms: tuple[str, ...]) -> IntOrPair | None:
    """``value`` in a form the implementation takes, or None when no form fits."""
    if _form(value) in forms:
        return value
    if "pair" in forms:
        return pair(value)
    first, second = pair(value)
    return first if first == second else None


@functools.lru_cache(maxsize=4096)  # asked for every check, and cheaper to look up than to work out
def refusal(capabilities: Capabilities, case: Case) -> str | None:
    """Why ``case`` is outside the declared domain (benchdnn's 'unimplemented: reason'), or None."""
    c = capabilities
    rules = [
        (case.batch is None and not c.unbatched, "unbatched input"),
        (case.batch is not None and not c.batched, "batched input"),
        (c.max_in_channels is not None and case.in_channels > c.max_in_channels,
         f"in_channels > {c.max_in_channels}"),
        (c.max_out_channels is not None and case.out_channels > c.max_out_channels,
         f"out_channels > {c.max_out_channels}"),
        (case.groups > 1 and not c.groups, "groups > 1"),
        (case.bias and not c.bias, "bias"),
        (pair(case.dilation) != (1, 1) and not c.dilation, "dilation > 1"),
        (c.square_kernels_only and case.kernel[0] != case.kernel[1], "non-square kernel"),
        (isinstance(case.padding, str) and case.padding not in c.padding_modes,
         f"padding={case.padding!r}"),
        (case.dtype not in c.dtypes, f"dtype {case.dtype}"),
        (case.layout not in c.layouts, f"{case.layout} layout"),
        (case.device not in c.devices, f"device {case.device}"),
    ]
    for name in ("stride", "padding", "dilation"):
        value = getattr(case, name)
        if not isinstance(value, str) and _in_form(value, c.arg_forms) is None:
            rules.append((True, f"{name} {value} with different H and W values"))
    return next((reason for refused, reason in rules if refused), None)


@functools.lru_cache(maxsize=4096)
def call_arguments(capabilities: Capabilities, case: Case) -> dict[str, Any]:
    """stride/padding/dilation/groups as this implementation takes them (as F.conv2d takes
    them where no declared form fits: outside its domain, it gets the case as drawn)."""
    arguments: dict[str, Any] = {"groups": case.groups}
    for name in ("stride", "padding", "dilation"):
        value = getattr(case, name)
        form = None if isinstance(value, str) else _in_form(value, capabilities.arg_forms)
        arguments[name] = value if form is None else form
    return arguments
