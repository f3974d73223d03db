"""Conditions over a case, as plain data: the words a declaration's conditional limits and
known disagreements are written in.

A condition is a mapping from a field to a value, ``{"padding": "same", "dilation": 1}``,
met when every field has that value. The fields are the case's own (`FIELDS`) and a few
worked out from it (`DERIVED`); stride, padding, dilation and kernel match an int when both
sides have it, and a ``[h, w]`` pair exactly. Being plain data, a condition is pickled to
worker processes, written in reports and shown by ``harness list`` as it was declared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.case import DATA_KINDS, DEVICES, DTYPES, LAYOUTS, Case, pair

GEOMETRY = ("kernel", "stride", "padding", "dilation")
# The case's own fields a condition may name, and what each must be given.
FIELDS = {
    "batch": "an int >= 0, or null for an unbatched input",
    "in_channels": "an int >= 1", "out_channels": "an int >= 1", "groups": "an int >= 1",
    "height": "an int >= 1", "width": "an int >= 1",
    "kernel": "an int >= 1 or [h, w]", "stride": "an int >= 1 or [h, w]", "dilation": "an int >= 1 or [h, w]",
    "padding": "an int >= 0, [h, w], 'same' or 'valid'",
    "bias": "true or false", "dtype": f"one of {list(DTYPES)}", "layout": f"one of {list(LAYOUTS)}",
    "data": f"one of {list(DATA_KINDS)}", "device": f"one of {list(DEVICES)}",
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
Condition = tuple[tuple[str, Any], ...]  # sorted (field, value) items: hashable, as a declaration is


def _leftover(case: Case) -> tuple[int, int]:
    """Rows and columns of the padded input that no output reaches, at the far end."""
    top, bottom, left, right = case.paddings
    (sh, sw), (dh, dw), (kh, kw) = pair(case.stride), pair(case.dilation), case.kernel
    return ((case.height + top + bottom - dh * (kh - 1) - 1) % sh,
            (case.width + left + right - dw * (kw - 1) - 1) % sw)


def value_of(case: Case, name: str) -> Any:
    """The value of field ``name`` (`FIELDS` or `DERIVED`) for ``case``."""
    if name == "padding_mode":
        return case.padding if isinstance(case.padding, str) else "explicit"
    if name == "batched":
        return case.batch is not None
    if name == "stride_divides":
        return _leftover(case) == (0, 0)
    if name == "uneven_padding":
        top, bottom, left, right = case.paddings
        return top != bottom or left != right
    return getattr(case, name)


def _matches(name: str, actual: Any, wanted: Any) -> bool:
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
        raise ValueError(f"capabilities: {where} must be a mapping of field to value, not {type(raw).__name__}")
    items = []
    for name, value in raw.items():
        if name not in FIELDS and name not in DERIVED:
            raise ValueError(f"capabilities: {where} names unknown field {name!r}; "
                             f"known: {sorted([*FIELDS, *DERIVED])}")
        value = tuple(value) if isinstance(value, list) else value
        if not _valid(name, value):
            raise ValueError(f"capabilities: {where}: {name}={value!r} is not {({**FIELDS, **DERIVED})[name]}")
        items.append((name, value))
    return tuple(sorted(items))


def _valid(name: str, value: Any) -> bool:
    def integer(v: object, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if name in GEOMETRY:
        low = 0 if name == "padding" else 1
        return (integer(value, low) or (name == "padding" and value in ("same", "valid"))
                or (isinstance(value, tuple) and len(value) == 2 and all(integer(v, low) for v in value)))
    if name in ("bias", "batched", "stride_divides", "uneven_padding"):
        return isinstance(value, bool)
    choices = {"dtype": DTYPES, "layout": LAYOUTS, "data": DATA_KINDS, "device": DEVICES,
               "padding_mode": ("same", "valid", "explicit")}
    if name in choices:
        return value in choices[name]
    if name == "batch":
        return value is None or integer(value, 0)
    return integer(value, 1)


def shown(condition: Condition) -> str:
    """``condition`` as `harness list` and the reports show it: ``padding='same', dilation=1``."""
    return ", ".join(f"{name}={list(value) if isinstance(value, tuple) else value!r}" for name, value in condition)


def to_data(condition: Condition) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in condition}


def imposed(case: Case, condition: Condition) -> Case | None:
    """``case`` changed as little as it takes to meet ``condition``, or None where that cannot
    be done by setting fields (the strategies' way to draw inside a conditional limit without
    throwing draws away). Geometry keeps the form (int or pair) it was drawn in, and the input
    grows to fit a kernel that grew."""
    last = sorted(condition, key=lambda item: item[0] == "stride_divides")  # once the size is set
    for name, wanted in last:
        if _matches(name, value_of(case, name), wanted):
            continue
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
            case = replace(case, padding="same", stride=1 if isinstance(case.stride, int) else (1, 1),
                           dilation=case.dilation if dh % 2 else dilation,
                           kernel=(kh + kh % 2, kw))
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


def _fitted(case: Case) -> Case:
    """``case`` with its input grown, if need be, to hold the dilated kernel."""
    top, bottom, left, right = case.paddings
    (dh, dw), (kh, kw) = pair(case.dilation), case.kernel
    return replace(case, height=max(case.height, dh * (kh - 1) + 1 - top - bottom),
                   width=max(case.width, dw * (kw - 1) + 1 - left - right))
