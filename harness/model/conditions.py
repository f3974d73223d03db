"""Conditions over a case, as plain data: the words a declaration's conditional limits and
known disagreements are written in.

A condition is a mapping from a field to a value, ``{"padding": "same", "dilation": 1}``,
met when every field has that value, or to a comparison, ``{"batch": {">=": 1}}``,
``{"dtype": {"in": ["float16", "bfloat16"]}}`` (`OPERATORS`). The fields are the case's own
(`FIELDS`), a few worked out from it (`DERIVED`), and the machine's (`ENVIRONMENT`: the
torch version and the CPU's feature flags, so that a known torch bug is declared for the
versions and CPUs where it happens); stride, padding, dilation and kernel match an int when
both sides have it, and a ``[h, w]`` pair exactly. Being plain data, a condition is pickled
to worker processes, written in reports and shown by ``harness list`` as it was declared.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.model.case import DATA_KINDS, DEVICES, DTYPES, LAYOUTS, Case, pair
from harness.model.text import clipped

GEOMETRY = ("kernel", "stride", "padding", "dilation")
# The case's own fields a condition may name, and what each must be given.
FIELDS = {
    "batch": "an int >= 0, or null for an unbatched input",
    "in_channels": "an int >= 1",
    "out_channels": "an int >= 1",
    "groups": "an int >= 1",
    "height": "an int >= 1",
    "width": "an int >= 1",
    "kernel": "an int >= 1 or [h, w]",
    "stride": "an int >= 1 or [h, w]",
    "dilation": "an int >= 1 or [h, w]",
    "padding": "an int >= 0, [h, w], 'same' or 'valid'",
    "bias": "true or false",
    "dtype": f"one of {list(DTYPES)}",
    "layout": f"one of {list(LAYOUTS)}",
    "data": f"one of {list(DATA_KINDS)}",
    "device": f"one of {list(DEVICES)}",
    "weight_layout": f"one of {list(LAYOUTS)}: the weight's, its own or the input's",
    "threads": "an int >= 1: torch's thread count for the call",
}
# Worked out from the case.
DERIVED = {
    "padding_mode": "'same', 'valid' or 'explicit' (an int or pair)",
    "batched": "true or false",
    "stride_divides": "true or false: the stride divides H + top + bottom - dilated kernel height, and "
    "the same for W (every input row and column reaches the output)",
    "uneven_padding": "true or false: padding='same' with an odd total in H or W, which torch puts the "
    "extra pixel of at the bottom or right (a dilated kernel of even extent)",
}
# The machine's, the same for every case of a run.
ENVIRONMENT = {
    "torch": "a torch version, compared as versions: '2.14.1', or {'<': '2.14'}",
    "cpu_flags": "a CPU feature flag as /proc/cpuinfo names it, with 'contains': {'contains': 'avx512_fp16'}",
}
# Ordering applies to the fields with one number (and to the torch version); 'contains' to the CPU's flags.
ORDERED = ("batch", "in_channels", "out_channels", "groups", "height", "width", "threads", "torch")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPERATORS = ("!=", *_ORDER, "in", "contains")


@dataclass(frozen=True)
class Compare:
    """A field compared with an operand other than by equality: ``{">=": 1}`` as declared."""

    op: str
    operand: Any

    def holds(self, name: str, actual: Any) -> bool:
        if self.op == "!=":
            return not _matches(name, actual, self.operand)
        if self.op == "in":
            return any(_matches(name, actual, choice) for choice in self.operand)
        if self.op == "contains":
            return self.operand in actual
        if actual is None:  # an unbatched input has no batch to order
            return False
        wanted = Version(self.operand) if name == "torch" else self.operand
        return _ORDER[self.op](actual, wanted)

    def __str__(self) -> str:
        operand = list(self.operand) if isinstance(self.operand, tuple) else self.operand
        return f"{self.op}{operand!r}" if self.op in ("!=", *_ORDER) else f" {self.op} {operand!r}"


Condition = tuple[tuple[str, Any], ...]  # sorted (field, value or Compare) items: hashable, as a declaration is


class DeclarationError(ValueError, TypeError):
    """A declaration that cannot be used as written, of the wrong type or out of range (a
    TypeError and a ValueError both, as either is what a caller of `declare` expects): the
    message names the field, on one line."""


def _leftover(case: Case) -> tuple[int, int]:
    """Rows and columns of the padded input that no output reaches, at the far end."""
    top, bottom, left, right = case.paddings
    (sh, sw), (dh, dw), (kh, kw) = pair(case.stride), pair(case.dilation), case.kernel
    return ((case.height + top + bottom - dh * (kh - 1) - 1) % sh, (case.width + left + right - dw * (kw - 1) - 1) % sw)


@functools.cache
def torch_version() -> Version | None:
    """The installed torch's version, read from its metadata (torch is not imported here),
    without its local part: 2.14.1+cu130 is 2.14.1, as a declaration names it."""
    try:
        return Version(Version(version("torch")).public)
    except (PackageNotFoundError, InvalidVersion):
        return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux's /proc/cpuinfo); none known elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), []))


def value_of(case: Case, name: str) -> Any:
    """The value of field ``name`` (`FIELDS`, `DERIVED` or `ENVIRONMENT`) for ``case``."""
    if name == "torch":
        return torch_version()
    if name == "cpu_flags":
        return cpu_flags()
    if name == "padding_mode":
        return case.padding if isinstance(case.padding, str) else "explicit"
    if name == "batched":
        return case.batch is not None
    if name == "weight_layout":
        return case.weight_memory
    if name == "stride_divides":
        return _leftover(case) == (0, 0)
    if name == "uneven_padding":
        top, bottom, left, right = case.paddings
        return top != bottom or left != right
    return getattr(case, name)


def _matches(name: str, actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Compare):
        return wanted.holds(name, actual)
    if name == "torch":
        return actual is not None and actual == Version(wanted)
    if name in GEOMETRY and not isinstance(wanted, str) and not isinstance(actual, str):
        return pair(actual) == pair(wanted)
    return bool(actual == wanted) and type(actual) is type(wanted)


def met(case: Case, condition: Condition) -> bool:
    """Whether ``case`` has every value ``condition`` names."""
    return all(_matches(name, value_of(case, name), wanted) for name, wanted in condition)


def unmet(case: Case, condition: Condition) -> list[str]:
    """The fields of ``condition`` that ``case`` does not have, in order."""
    return [name for name, wanted in condition if not _matches(name, value_of(case, name), wanted)]


def parse(raw: object, where: str) -> Condition:
    """A declared condition checked and made hashable; ``where`` names it in the error."""
    if not isinstance(raw, dict):
        raise DeclarationError(f"capabilities: {where} must be a mapping of field to value, not {type(raw).__name__}")
    items = []
    for name, value in raw.items():
        if name not in KNOWN:
            raise DeclarationError(
                f"capabilities: {where} names unknown field {clipped(repr(name))}; known: {sorted(KNOWN)}"
            )
        value = _compare(name, value, where) if isinstance(value, dict) else _plain(value)
        operand = value.operand if isinstance(value, Compare) else value
        if name == "cpu_flags" and not isinstance(value, Compare):
            raise DeclarationError(
                f"capabilities: {where}: cpu_flags is compared with 'contains': "
                f"{{'contains': 'avx512_fp16'}}, not {clipped(repr(operand))}"
            )
        choices = operand if isinstance(value, Compare) and value.op == "in" else (operand,)
        if not all(_valid(name, choice) for choice in choices):
            raise DeclarationError(f"capabilities: {where}: {name}={clipped(repr(operand))} is not {KNOWN[name]}")
        items.append((name, value))
    return tuple(sorted(items, key=lambda item: item[0]))


KNOWN = {**FIELDS, **DERIVED, **ENVIRONMENT}


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _compare(name: str, raw: dict[Any, Any], where: str) -> Compare:
    """``{op: operand}`` checked: one operator, one that applies to the field."""
    if len(raw) != 1 or next(iter(raw)) not in OPERATORS:
        raise DeclarationError(
            f"capabilities: {where}: {name} must be a value or one comparison "
            f"{{operator: value}} with an operator of {list(OPERATORS)}, not {clipped(repr(raw))}"
        )
    op, operand = next(iter(raw.items()))
    if (op in _ORDER and name not in ORDERED) or ((op == "contains") != (name == "cpu_flags")):
        raise DeclarationError(f"capabilities: {where}: {name} cannot be compared with {op!r}")
    if op == "in":
        if not isinstance(operand, list | tuple) or not operand:
            raise DeclarationError(
                f"capabilities: {where}: {name} 'in' needs a non-empty list, not {clipped(repr(operand))}"
            )
        return Compare(op, tuple(_plain(choice) for choice in operand))
    return Compare(op, _plain(operand))


def _valid(name: str, value: Any) -> bool:
    def integer(v: object, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if name == "torch":
        try:
            Version(value)
        except (InvalidVersion, TypeError):
            return False
        return True
    if name == "cpu_flags":
        return isinstance(value, str) and value.isprintable() and " " not in value and bool(value)

    if name in GEOMETRY:
        low = 0 if name == "padding" else 1
        return (
            integer(value, low)
            or (name == "padding" and value in ("same", "valid"))
            or (isinstance(value, tuple) and len(value) == 2 and all(integer(v, low) for v in value))
        )
    if name in ("bias", "batched", "stride_divides", "uneven_padding"):
        return isinstance(value, bool)
    choices = {
        "dtype": DTYPES,
        "layout": LAYOUTS,
        "weight_layout": LAYOUTS,
        "data": DATA_KINDS,
        "device": DEVICES,
        "padding_mode": ("same", "valid", "explicit"),
    }
    if name in choices:
        return value in choices[name]
    if name == "batch":
        return value is None or integer(value, 0)
    return integer(value, 1)


def shown(condition: Condition) -> str:
    """``condition`` as `harness list` and the reports show it: ``padding='same', dilation=1``."""
    return ", ".join(
        f"{name}{value}"
        if isinstance(value, Compare)
        else f"{name}={list(value) if isinstance(value, tuple) else value!r}"
        for name, value in condition
    )


def to_data(condition: Condition) -> dict[str, Any]:
    """``condition`` as it was declared (JSON: lists for pairs, a mapping for a comparison)."""

    def data(value: Any) -> Any:
        if isinstance(value, Compare):
            return {value.op: [data(v) for v in value.operand] if value.op == "in" else data(value.operand)}
        return list(value) if isinstance(value, tuple) else value

    return {name: data(value) for name, value in condition}


def imposed(case: Case, condition: Condition) -> Case | None:
    """``case`` changed as little as it takes to meet ``condition``, or None where that cannot
    be done by setting fields (the strategies' way to draw inside a conditional limit without
    throwing draws away). Geometry keeps the form (int or pair) it was drawn in, and the input
    grows to fit a kernel that grew."""
    last = sorted(condition, key=lambda item: item[0] == "stride_divides")  # once the size is set
    for name, wanted in last:
        if _matches(name, value_of(case, name), wanted):
            continue
        if name in ENVIRONMENT:
            return None  # the machine is as it is
        if isinstance(wanted, Compare):
            wanted = _nearest(wanted)
            if wanted is None:
                return None
        if name in GEOMETRY and not isinstance(wanted, str):
            form = wanted if isinstance(wanted, tuple) else (wanted, wanted)
            current = getattr(case, name)
            value: Any = form if isinstance(current, tuple) or form[0] != form[1] or name == "kernel" else form[0]
            case = replace(case, **{name: value})
        elif name == "padding_mode":
            case = replace(case, padding=0 if wanted == "explicit" else wanted)
        elif name == "batched":
            case = replace(case, batch=1 if wanted else None)
        elif name == "uneven_padding":
            if not wanted:
                return None  # only the kernel, dilation and padding drawn could make it even
            # 'same', with a dilated kernel of even extent in H: dilation 1 there, an even kernel.
            (dh, dw), (kh, kw) = pair(case.dilation), case.kernel
            dilation: Any = (1, dw) if isinstance(case.dilation, tuple) or dw != 1 else 1
            case = replace(
                case,
                padding="same",
                stride=1 if isinstance(case.stride, int) else (1, 1),
                dilation=case.dilation if dh % 2 else dilation,
                kernel=(kh + kh % 2, kw),
            )
        elif name == "stride_divides":
            if not wanted:
                return None  # only the stride could break it, and the stride is drawn
            rows, columns = _leftover(case)
            (sh, sw) = pair(case.stride)
            case = replace(case, height=case.height + (sh - rows) % sh, width=case.width + (sw - columns) % sw)
        else:
            case = replace(case, **{name: wanted})
        if name == "padding" and wanted == "same":
            case = replace(case, stride=1 if isinstance(case.stride, int) else (1, 1))
        case = _fitted(case)
    return None if case.problems() or not met(case, condition) else case


def _nearest(wanted: Compare) -> Any:
    """The one value to set a field to that meets ``wanted``, where a field can be set to
    one: the first choice of 'in', the bound of an ordering (None for '!=' and a '<' at
    the bottom; `Case.problems` refuses a value out of the field's range)."""
    if wanted.op == "in":
        return wanted.operand[0]
    step = {"<": -1, ">": 1}.get(wanted.op, 0)
    return wanted.operand + step if wanted.op in _ORDER else None


def _fitted(case: Case) -> Case:
    """``case`` with its input grown, if need be, to hold the dilated kernel."""
    top, bottom, left, right = case.paddings
    (dh, dw), (kh, kw) = pair(case.dilation), case.kernel
    return replace(
        case,
        height=max(case.height, dh * (kh - 1) + 1 - top - bottom),
        width=max(case.width, dw * (kw - 1) + 1 - left - right),
    )
