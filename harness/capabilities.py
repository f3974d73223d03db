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
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from harness.case import DEVICES, DTYPES, LAYOUTS, Case, IntOrPair, pair
from harness.conditions import Condition, imposed, met, parse, shown, to_data, unmet
from harness.verdict import KINDS, OUTSIDE

ARG_FORMS = ("int", "pair")
PADDING_MODES = ("same", "valid")
# How the outputs are computed, which sets how far rounding may take them (`harness.oracle`):
# summed directly in any order, through an FFT, through Winograd tiles, or any of these
# (a library that picks its algorithm per call, as cuDNN and oneDNN do).
ALGORITHMS = ("direct", "fft", "winograd", "any")
# Fields that say how an implementation is judged, not which cases it claims: implementations
# that differ only in these are fuzzed on the same cases, and lifting them is no widening.
JUDGING = ("autograd", "algorithm", "expected")
ARGUMENTS = ("stride", "padding", "dilation")  # what `arg_forms` may name one by one

F = TypeVar("F", bound=Callable[..., Any])


def _forms(value: object, where: str) -> tuple[str, ...]:
    forms = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list | tuple) else None
    if not forms or any(form not in ARG_FORMS for form in forms):
        raise ValueError(f"capabilities: {where} must be 'int', 'pair' or both, not {value!r}")
    return tuple(form for form in ARG_FORMS if form in forms)


@dataclass(frozen=True)
class Limit:
    """A conditional limit: a case meeting ``when`` is claimed only if it meets ``require``
    too ("'same' padding only without dilation": when padding='same', require dilation=1)."""

    when: Condition
    require: Condition
    why: str = ""
    # Set on a limit lifted just outside the declaration (`widenings`): the draws should not
    # meet this (the lifted limit's ``require``), the strategies try again when they do.
    avoid: Condition = ()

    @classmethod
    def from_data(cls, raw: object, index: int) -> Limit:
        where = f"limits[{index}]"
        if not isinstance(raw, dict) or "require" not in raw or set(raw) - {"when", "require", "why"}:
            raise ValueError(f"capabilities: {where} must be a mapping with 'require' and optional 'when' "
                             f"and 'why', not {raw!r}")
        require = parse(raw["require"], f"{where}.require")
        if not require:
            raise ValueError(f"capabilities: {where}.require is empty: it must name what is required")
        return cls(parse(raw.get("when", {}), f"{where}.when"), require, str(raw.get("why", "")))

    def to_data(self) -> dict[str, Any]:
        return {"when": to_data(self.when), "require": to_data(self.require), **({"why": self.why} if self.why else {})}

    def __str__(self) -> str:
        told = f" ({self.why})" if self.why else ""
        return f"{shown(self.require)} when {shown(self.when)}{told}" if self.when else f"{shown(self.require)}{told}"

    def broken_by(self, case: Case) -> str | None:
        """Why ``case`` is outside this limit, or None."""
        if not met(case, self.when):
            return None
        missing = ", ".join(unmet(case, self.require))
        return f"{missing} not as required ({self})" if missing else None


@dataclass(frozen=True)
class Disagreement:
    """A known, accepted disagreement with torch (pytest's ``xfail(strict=True)``): a failure
    of one of ``kinds`` on a case meeting ``when`` is expected, not a bug; a campaign that
    checks such cases and sees none fail that way fails, as the disagreement is gone."""

    when: Condition
    kinds: tuple[str, ...]
    reason: str
    link: str = ""

    @classmethod
    def from_data(cls, raw: object, index: int) -> Disagreement:
        where = f"expected[{index}]"
        if not isinstance(raw, dict) or set(raw) - {"when", "kind", "reason", "link"}:
            raise ValueError(f"capabilities: {where} must be a mapping with 'when', 'kind', 'reason' and "
                             f"optional 'link', not {raw!r}")
        kinds = raw.get("kind", ())
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds) if isinstance(kinds, list | tuple) else ()
        allowed = [k for k in KINDS if k != OUTSIDE]
        if not kinds or any(k not in allowed for k in kinds):
            raise ValueError(f"capabilities: {where}.kind must be one or a list of {allowed}, not {raw.get('kind')!r}")
        if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
            raise ValueError(f"capabilities: {where} needs a 'reason': why the disagreement is accepted")
        link = raw.get("link", "")
        if not isinstance(link, str):
            raise ValueError(f"capabilities: {where}.link must be a string (a URL), not {type(link).__name__}")
        return cls(parse(raw.get("when", {}), f"{where}.when"), kinds, raw["reason"], link)

    def to_data(self) -> dict[str, Any]:
        return {"when": to_data(self.when), "kind": list(self.kinds), "reason": self.reason,
                **({"link": self.link} if self.link else {})}

    def __str__(self) -> str:
        where = f" when {shown(self.when)}" if self.when else ""
        return f"[{', '.join(self.kinds)}]{where}: {self.reason}" + (f" ({self.link})" if self.link else "")

    def explains(self, kind: str | None, case: Case) -> bool:
        return kind in self.kinds and met(case, self.when)


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
    # ('int', 'pair') for all three arguments, or per argument: (("stride", ("int",)), ...),
    # as a dict {"stride": "int", ...} declares it.
    arg_forms: tuple[Any, ...] = ARG_FORMS
    dtypes: tuple[str, ...] = DTYPES
    layouts: tuple[str, ...] = LAYOUTS
    devices: tuple[str, ...] = DEVICES
    autograd: bool = False
    # Left out of the repr, which seeds a campaign's draws (`campaign._Group.run`): how an
    # implementation is judged must not change which cases a seed draws (nor, the field
    # being new, which cases each seed drew before it).
    algorithm: str = field(default="direct", repr=False)
    # Also left out of the repr, so that the draws of every declaration without them stay
    # what they were: conditional limits (`Limit`), and known disagreements (`Disagreement`).
    limits: tuple[Limit, ...] = field(default=(), repr=False)
    expected: tuple[Disagreement, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        forms = self.arg_forms
        if isinstance(forms, dict):  # per argument: {"stride": "int", "padding": "pair"}
            unknown_args = sorted(set(forms) - set(ARGUMENTS))
            if unknown_args:
                raise ValueError(f"capabilities: arg_forms names unknown argument(s) {unknown_args}; "
                                 f"choose from {list(ARGUMENTS)}")
            per = {name: _forms(forms.get(name, ARG_FORMS), f"arg_forms[{name!r}]") for name in ARGUMENTS}
            same = set(per.values())
            object.__setattr__(self, "arg_forms", same.pop() if len(same) == 1 else tuple(per.items()))
        elif not (isinstance(forms, tuple) and forms and isinstance(forms[0], tuple)):
            object.__setattr__(self, "arg_forms", _forms(forms, "arg_forms"))
        object.__setattr__(self, "limits", tuple(
            limit if isinstance(limit, Limit) else Limit.from_data(limit, i) for i, limit in enumerate(self.limits)))
        object.__setattr__(self, "expected", tuple(
            entry if isinstance(entry, Disagreement) else Disagreement.from_data(entry, i)
            for i, entry in enumerate(self.expected)))
        for name, allowed in (
            ("padding_modes", PADDING_MODES),
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
        if not (self.batched or self.unbatched):
            raise ValueError("capabilities: at least one of batched/unbatched must be True")
        if not self.dtypes or not self.layouts or not self.devices:
            raise ValueError("capabilities: dtypes, layouts and devices must not be empty")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"capabilities: unknown algorithm {self.algorithm!r}; choose from {ALGORITHMS!r}")
        if self.autograd and self.algorithm != "direct":
            raise ValueError(f"capabilities: autograd=True is judged for algorithm='direct' only (gradients get "
                             f"the direct-summation bound); drop autograd or algorithm={self.algorithm!r}")

    def forms(self, argument: str) -> tuple[str, ...]:
        """The forms ``argument`` (stride, padding or dilation) is taken in: 'int', 'pair' or both."""
        if self.arg_forms and isinstance(self.arg_forms[0], tuple):
            forms: tuple[str, ...] = dict(self.arg_forms)[argument]
            return forms
        return self.arg_forms

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
        """The declaration as plain data, the way `from_mapping` reads it back."""
        mapping = {f.name: getattr(self, f.name) for f in fields(self)}
        mapping["limits"] = [limit.to_data() for limit in self.limits]
        mapping["expected"] = [entry.to_data() for entry in self.expected]
        if self.arg_forms and isinstance(self.arg_forms[0], tuple):
            mapping["arg_forms"] = {name: list(forms) for name, forms in self.arg_forms}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.items()}

    def domain(self) -> Capabilities:
        """The cases claimed, without the fields that only say how they are judged (`JUDGING`)."""
        return replace(self, **{name: getattr(_DEFAULT, name) for name in JUDGING})

    def differences(self) -> dict[str, Any]:
        """The fields that differ from the default (a narrower domain, or another way of
        being judged), for `harness list`."""
        return {k: v for k, v in self.to_mapping().items() if v != getattr(_DEFAULT, k) and
                not (isinstance(v, list) and tuple(v) == getattr(_DEFAULT, k))}

    def shown(self) -> list[str]:
        """What `harness list` shows: each field that differs from the default, and each
        conditional limit and known disagreement on its own, as written."""
        told = self.differences()
        told.pop("limits", None), told.pop("expected", None)
        return ([f"{k}={v}" for k, v in told.items()] + [f"limit: {limit}" for limit in self.limits]
                + [f"expected: {entry}" for entry in self.expected])


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
    every case raises for the first of them.) A conditional limit is lifted by drawing only
    cases that meet its ``when``, and preferably not its ``require``: just outside it."""
    lifted = [replace(declared, **{f.name: getattr(everything, f.name)}) for f in fields(Capabilities)
              if f.name not in (*JUDGING, "limits") and getattr(declared, f.name) != getattr(everything, f.name)]
    for limit in declared.limits:
        others = tuple(other for other in declared.limits if other is not limit)
        lifted.append(replace(declared, limits=(*others, Limit((), limit.when, f"lifted: {limit}", limit.require))))
    return lifted


def fitted(capabilities: Capabilities, case: Case) -> Case | None:
    """``case`` made to meet every conditional limit it breaks (`conditions.imposed`), or None
    when it cannot be: how the strategies draw inside the limits without throwing draws away."""
    for _ in range(len(capabilities.limits) + 1):
        broken = next((limit for limit in capabilities.limits if limit.broken_by(case)), None)
        if broken is None:
            return case
        fixed = imposed(case, broken.require)
        if fixed is None:
            return None
        case = fixed
    return None


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
    for name in ARGUMENTS:
        value = getattr(case, name)
        if not isinstance(value, str) and _in_form(value, c.forms(name)) is None:
            rules.append((True, f"{name} {value} with different H and W values"))
    rules += [(True, broken) for broken in (limit.broken_by(case) for limit in c.limits) if broken]
    return next((reason for refused, reason in rules if refused), None)


@functools.lru_cache(maxsize=4096)
def call_arguments(capabilities: Capabilities, case: Case) -> dict[str, Any]:
    """stride/padding/dilation/groups as this implementation takes them (as F.conv2d takes
    them where no declared form fits: outside its domain, it gets the case as drawn)."""
    arguments: dict[str, Any] = {"groups": case.groups}
    for name in ARGUMENTS:
        value = getattr(case, name)
        form = None if isinstance(value, str) else _in_form(value, capabilities.forms(name))
        arguments[name] = value if form is None else form
    return arguments
