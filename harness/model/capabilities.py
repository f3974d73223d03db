"""What part of the conv2d domain an implementation claims, and how it wants its arguments.

An implementation that declares nothing claims all of ``torch.nn.functional.conv2d``.
Declaring less is how a partial implementation (the notebook's, a first attempt) gets
fuzzed only where it means to be right; the strategies draw inside these limits and the
runner converts stride/padding/dilation to the form declared here. Two fields say how an
implementation is judged rather than where (`JUDGING`): ``autograd`` adds a gradient check,
and ``algorithm`` picks the rounding bound its results are held to. One says how it is
called: ``isolate``, the cases it makes in a child process (a library known to crash there).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from harness.model.case import DEVICES, DTYPES, LAYOUTS, WEIGHT_LAYOUTS, Case, IntOrPair, pair
from harness.model.conditions import Condition, DeclarationError, imposed, met, parse, shown, to_data, unmet
from harness.model.text import clipped
from harness.model.verdict import KINDS, OUTSIDE, WRONG_REFERENCE

ARG_FORMS = ("int", "pair")
PADDING_MODES = ("same", "valid")
# How the outputs are computed, which sets how far rounding may take them (`harness.judge.oracle`):
# summed directly in any order, through an FFT, through Winograd tiles, or any of these
# (a library that picks its algorithm per call, as cuDNN and oneDNN do).
ALGORITHMS = ("direct", "fft", "winograd", "any")
# Fields that say how an implementation is judged, not which cases it claims: implementations
# that differ only in these are fuzzed on the same cases, and lifting them is no widening.
JUDGING = ("autograd", "algorithm", "expected", "isolate", "time_limit", "compiles_per_shape")
ARGUMENTS = ("stride", "padding", "dilation")  # what `arg_forms` may name one by one
# Fields read as yes or no, and counts: each must be given as one (JSON's true/false, a whole
# number), never something Python would take for one ("false" and 1 are true; -1 and 2.5
# compare with a channel count; "4" raises, deep inside the strategies).
BOOLEANS = (
    "batched",
    "unbatched",
    "groups",
    "bias",
    "dilation",
    "square_kernels_only",
    "autograd",
    "compiles_per_shape",
    "threads",
)
COUNTS = ("max_in_channels", "max_out_channels")
CHOICES = {
    "padding_modes": PADDING_MODES,
    "dtypes": DTYPES,
    "layouts": LAYOUTS,
    "devices": DEVICES,
    "weight_layouts": WEIGHT_LAYOUTS[1:],
}
# What to explore beyond the default draws, not a narrower or wider domain: an implementation
# that declares none of these is still called on any weight layout and thread count (a
# replay, say), and is never fuzzed just outside them (`widenings`).
EXPLORING = ("weight_layouts", "threads", "realistic")

F = TypeVar("F", bound=Callable[..., Any])


def _wrong(name: str, wanted: str, value: object) -> DeclarationError:
    """The one-line error for field ``name``, given ``value`` where ``wanted`` belongs."""
    return DeclarationError(
        f"capabilities: {name} must be {wanted}, not {clipped(repr(value))} (of type {type(value).__name__})"
    )


def _check_types(capabilities: Capabilities) -> None:
    """That each yes-or-no field is a bool, each count a whole number >= 1 (or None, no
    limit), each list of choices a string or a list, and the limits and known disagreements
    lists: before anything is worked out from them."""
    for name in BOOLEANS:
        if not isinstance(getattr(capabilities, name), bool):
            raise _wrong(name, "true or false", getattr(capabilities, name))
    for name in COUNTS:
        value = getattr(capabilities, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _wrong(name, "a whole number >= 1, or null for no limit", value)
    for name, allowed in CHOICES.items():
        if not isinstance(getattr(capabilities, name), str | list | tuple):
            raise _wrong(name, f"one or a list of {list(allowed)}", getattr(capabilities, name))
    for name in ("limits", "expected"):
        if not isinstance(getattr(capabilities, name), list | tuple):
            raise _wrong(name, "a list", getattr(capabilities, name))
    if not isinstance(capabilities.algorithm, str):
        raise _wrong("algorithm", f"one of {list(ALGORITHMS)}", capabilities.algorithm)
    share = capabilities.realistic
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
        raise _wrong("realistic", "the share of cases drawn at realistic sizes, a number in [0, 1]", share)
    seconds = capabilities.time_limit
    if seconds is not None and (
        not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds < 1e6
    ):
        raise _wrong("time_limit", "a number of seconds > 0, or null for the harness's", seconds)


def _forms(value: object, where: str) -> tuple[str, ...]:
    forms = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list | tuple) else None
    if not forms or any(form not in ARG_FORMS for form in forms):
        raise DeclarationError(f"capabilities: {where} must be 'int', 'pair' or both, not {clipped(repr(value))}")
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
            raise DeclarationError(
                f"capabilities: {where} must be a mapping with 'require' and optional 'when' "
                f"and 'why', not {clipped(repr(raw))}"
            )
        require = parse(raw["require"], f"{where}.require")
        if not require:
            raise DeclarationError(f"capabilities: {where}.require is empty: it must name what is required")
        why = raw.get("why", "")
        if not isinstance(why, str):
            raise _wrong(f"{where}.why", "a string", why)
        return cls(parse(raw.get("when", {}), f"{where}.when"), require, why)

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
    checks such cases and sees none fail that way fails, as the disagreement is gone.
    ``strict=False`` (``xfail(strict=False)``) is for a disagreement that happens on some of
    the cases meeting ``when`` only, as a torch bug whose whole trigger is not known does:
    not seeing it is said, and is no failure."""

    when: Condition
    kinds: tuple[str, ...]
    reason: str
    link: str = ""
    strict: bool = True

    @classmethod
    def from_data(cls, raw: object, index: int) -> Disagreement:
        where = f"expected[{index}]"
        if not isinstance(raw, dict) or set(raw) - {"when", "kind", "reason", "link", "strict"}:
            raise DeclarationError(
                f"capabilities: {where} must be a mapping with 'when', 'kind', 'reason' and "
                f"optional 'link' and 'strict', not {clipped(repr(raw))}"
            )
        kinds = raw.get("kind", ())
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds) if isinstance(kinds, list | tuple) else ()
        allowed = [k for k in KINDS if k not in (OUTSIDE, WRONG_REFERENCE)]  # both the harness's to say
        if not kinds or any(k not in allowed for k in kinds):
            raise DeclarationError(
                f"capabilities: {where}.kind must be one or a list of {allowed}, not {clipped(repr(raw.get('kind')))}"
            )
        if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
            raise DeclarationError(f"capabilities: {where} needs a 'reason': why the disagreement is accepted")
        link = raw.get("link", "")
        if not isinstance(link, str):
            raise DeclarationError(f"capabilities: {where}.link must be a string (a URL), not {type(link).__name__}")
        strict = raw.get("strict", True)
        if not isinstance(strict, bool):
            raise _wrong(f"{where}.strict", "true or false", strict)
        return cls(parse(raw.get("when", {}), f"{where}.when"), kinds, raw["reason"], link, strict)

    def to_data(self) -> dict[str, Any]:
        return {
            "when": to_data(self.when),
            "kind": list(self.kinds),
            "reason": self.reason,
            **({"link": self.link} if self.link else {}),
            **({} if self.strict else {"strict": False}),
        }

    def __str__(self) -> str:
        where = f" when {shown(self.when)}" if self.when else ""
        some = "" if self.strict else " (on some such cases)"
        return f"[{', '.join(self.kinds)}]{where}{some}: {self.reason}" + (f" ({self.link})" if self.link else "")

    def explains(self, kind: str | None, case: Case) -> bool:
        return kind in self.kinds and met(case, self.when)


def isolating(raw: object) -> tuple[Condition, ...]:
    """The cases declared to run isolated, as conditions any one of which isolates a case:
    true is every case (one empty condition), false none, a condition the cases meeting it,
    a list of conditions the cases meeting any. (Conditions as kept, tuples, come back
    through `dataclasses.replace`: checked again all the same.)"""
    if isinstance(raw, bool) or raw == ((),):
        return ((),) if raw else ()
    if not isinstance(raw, dict | list | tuple):
        raise _wrong("isolate", "true, false, a condition or a list of conditions", raw)
    conditions = []
    for i, item in enumerate([raw] if isinstance(raw, dict) else raw):
        where = "isolate" if isinstance(raw, dict) else f"isolate[{i}]"
        try:
            condition = parse(to_data(item) if isinstance(item, tuple) else item, where)
        except (TypeError, ValueError) as error:  # a tuple that is no condition as kept
            raise error if isinstance(error, DeclarationError) else _wrong(where, "a condition", item) from None
        if not condition:
            raise DeclarationError(f"capabilities: {where} is an empty condition; to isolate every case, say true")
        conditions.append(condition)
    return tuple(conditions)


def isolate_data(isolate: tuple[Condition, ...]) -> bool | dict[str, Any] | list[dict[str, Any]]:
    """``isolate`` as it is declared (`isolating` reads it back)."""
    if isolate in ((), ((),)):
        return bool(isolate)
    data = [to_data(condition) for condition in isolate]
    return data[0] if len(data) == 1 else data


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
    # The cases called in a child process, as if under --isolate (`isolating`): how, not where, and out of the repr.
    isolate: tuple[Condition, ...] = field(default=(), repr=False)
    # What else to explore (`EXPLORING`), also out of the repr: weight layouts of their own
    # besides the input's, torch thread counts besides one (`harness.generate.strategies.THREADS`),
    # and the share of cases drawn at realistic sizes (`strategies.REALISTIC`).
    weight_layouts: tuple[str, ...] = field(default=(), repr=False)
    threads: bool = field(default=False, repr=False)
    realistic: float = field(default=0.0, repr=False)
    # How long a call may take (`harness.execute.runner.time_limit`): seconds in place of the
    # harness's base allowance, and whether the first call on each new shape compiles a kernel
    # (a JIT), which gets `runner.COMPILE_SECONDS` more. Out of the repr, as above.
    time_limit: float | None = field(default=None, repr=False)
    compiles_per_shape: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        _check_types(self)
        forms = self.arg_forms
        if isinstance(forms, dict):  # per argument: {"stride": "int", "padding": "pair"}
            unknown_args = sorted(set(forms) - set(ARGUMENTS), key=repr)
            if unknown_args:
                raise DeclarationError(
                    f"capabilities: arg_forms names unknown argument(s) {unknown_args}; choose from {list(ARGUMENTS)}"
                )
            per = {name: _forms(forms.get(name, ARG_FORMS), f"arg_forms[{name!r}]") for name in ARGUMENTS}
            same = set(per.values())
            object.__setattr__(self, "arg_forms", same.pop() if len(same) == 1 else tuple(per.items()))
        elif not (isinstance(forms, tuple) and forms and isinstance(forms[0], tuple)):
            object.__setattr__(self, "arg_forms", _forms(forms, "arg_forms"))
        object.__setattr__(
            self,
            "limits",
            tuple(
                limit if isinstance(limit, Limit) else Limit.from_data(limit, i) for i, limit in enumerate(self.limits)
            ),
        )
        object.__setattr__(
            self,
            "expected",
            tuple(
                entry if isinstance(entry, Disagreement) else Disagreement.from_data(entry, i)
                for i, entry in enumerate(self.expected)
            ),
        )
        object.__setattr__(self, "isolate", isolating(self.isolate))
        for name, allowed in CHOICES.items():
            values = getattr(self, name)
            if isinstance(values, str):
                values = (values,)
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise DeclarationError(
                    f"capabilities: unknown {name} {clipped(repr(unknown))}; choose from {allowed!r}"
                )
            object.__setattr__(self, name, tuple(v for v in allowed if v in values))
        if not (self.batched or self.unbatched):
            raise DeclarationError("capabilities: at least one of batched/unbatched must be True")
        if not self.dtypes or not self.layouts or not self.devices:
            raise DeclarationError("capabilities: dtypes, layouts and devices must not be empty")
        if self.algorithm not in ALGORITHMS:
            raise DeclarationError(f"capabilities: unknown algorithm {self.algorithm!r}; choose from {ALGORITHMS!r}")
        if self.autograd and self.algorithm != "direct":
            raise DeclarationError(
                f"capabilities: autograd=True is judged for algorithm='direct' only (gradients get "
                f"the direct-summation bound); drop autograd or algorithm={self.algorithm!r}"
            )

    def isolates(self, case: Case) -> bool:
        """Whether ``case`` is to be called in a child process (`isolate`)."""
        return any(met(case, condition) for condition in self.isolate)

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
        unknown = sorted(map(repr, set(mapping) - known))
        if unknown:
            raise DeclarationError(
                f"capabilities: unknown field(s) {clipped(', '.join(unknown))}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The declaration as plain data, the way `from_mapping` reads it back."""
        mapping = {f.name: getattr(self, f.name) for f in fields(self)}
        mapping["limits"] = [limit.to_data() for limit in self.limits]
        mapping["expected"] = [entry.to_data() for entry in self.expected]
        mapping["isolate"] = isolate_data(self.isolate)
        if self.arg_forms and isinstance(self.arg_forms[0], tuple):
            mapping["arg_forms"] = {name: list(forms) for name, forms in self.arg_forms}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.items()}

    def domain(self) -> Capabilities:
        """The cases claimed, without the fields that only say how they are judged (`JUDGING`)."""
        return replace(self, **{name: getattr(_DEFAULT, name) for name in JUDGING})

    def differences(self) -> dict[str, Any]:
        """The fields that differ from the default (a narrower domain, or another way of
        being judged), for `harness list`."""
        default = _DEFAULT.to_mapping()
        return {k: v for k, v in self.to_mapping().items() if v != default[k]}

    def shown(self) -> list[str]:
        """What `harness list` shows: each field that differs from the default, and each
        conditional limit and known disagreement on its own, as written."""
        told = self.differences()
        told.pop("limits", None), told.pop("expected", None), told.pop("isolate", None)
        return (
            [f"{k}={v}" for k, v in told.items()]
            + [f"limit: {limit}" for limit in self.limits]
            + [f"expected: {entry}" for entry in self.expected]
            + [f"isolate: {' or '.join(shown(c) or 'every case' for c in self.isolate)}"] * bool(self.isolate)
        )


_DEFAULT = Capabilities()


@dataclass(frozen=True)
class Declaration:
    """What a plugin says about itself: its domain, and whether it is a known-buggy canary."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    known_buggy: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.known_buggy, bool):  # "false" would make a canary of it: its failures pass
            raise _wrong("known_buggy", "true or false", self.known_buggy)


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
        known_buggy = found.pop("known_buggy", False)
        return Declaration(Capabilities.from_mapping(found), known_buggy)
    raise DeclarationError(f"__conv2d_declaration__ must be a Declaration or dict, not {type(found).__name__}")


def widenings(declared: Capabilities, everything: Capabilities) -> list[Capabilities]:
    """``declared`` with one of its limits lifted to ``everything``'s, for each limit: cases
    just outside the declaration, where an implementation must raise or be right. (Drawn
    from ``everything`` at once, a narrow declaration is left in so many ways that nearly
    every case raises for the first of them.) A conditional limit is lifted by drawing only
    cases that meet its ``when``, and preferably not its ``require``: just outside it."""
    lifted = [
        replace(declared, **{f.name: getattr(everything, f.name)})
        for f in fields(Capabilities)
        if f.name not in (*JUDGING, *EXPLORING, "limits") and getattr(declared, f.name) != getattr(everything, f.name)
    ]
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
        (c.max_in_channels is not None and case.in_channels > c.max_in_channels, f"in_channels > {c.max_in_channels}"),
        (
            c.max_out_channels is not None and case.out_channels > c.max_out_channels,
            f"out_channels > {c.max_out_channels}",
        ),
        (case.groups > 1 and not c.groups, "groups > 1"),
        (case.bias and not c.bias, "bias"),
        (pair(case.dilation) != (1, 1) and not c.dilation, "dilation > 1"),
        (c.square_kernels_only and case.kernel[0] != case.kernel[1], "non-square kernel"),
        (isinstance(case.padding, str) and case.padding not in c.padding_modes, f"padding={case.padding!r}"),
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
