"""Which features of a case a failure needs: "fails this way only with stride_h!=stride_w, bias".

After shrinking, each feature the minimal case still has is set back to its simplest value,
one at a time; the features whose removal makes the failure go away are the ones it
needs. That is the first thing a person debugging it wants to know, and it is also how the
campaign tells bugs apart: a failure on a case lacking something a known bug needs cannot
be that bug. "This way": without them the case may still fail another way (a crop one row
off gives wrong values with a kernel of 2 rows, and values in the wrong places with one),
which is then a failure of its own, reported on its own case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from harness.model.case import DATA_KINDS, DEVICES, DTYPES, LAYOUTS, WEIGHT_LAYOUTS, Case, IntOrPair, Padding, pair


@dataclass(frozen=True)
class Feature:
    name: str
    present: Callable[[Case], bool]
    simplest: Callable[[Case], Case]  # the case without it, as simple as it can be
    words: str = ""  # how a report says it, where its name is not plain enough


def _same_form(value: Padding, high: int, wide: int) -> IntOrPair:
    """``(high, wide)`` in the form ``value`` had: an int stays an int."""
    return high if isinstance(value, int) else (high, wide)


def _square(value: Padding) -> IntOrPair:
    assert not isinstance(value, str), "a padding mode has no height and width"
    h, w = pair(value)
    return _same_form(value, max(h, w), max(h, w))


def _small(case: Case) -> Case:
    """``case`` at the strategies' small sizes, grouped as it was (depthwise stays depthwise)."""
    groups = min(case.groups, 3)
    per_in, per_out = min(case.in_channels // case.groups, 3), min(case.out_channels // case.groups, 3)
    return replace(
        case,
        batch=None if case.batch is None else min(case.batch, 2),
        groups=groups,
        in_channels=groups * per_in,
        out_channels=groups * per_out,
        height=min(case.height, 8),
        width=min(case.width, 8),
    )


def _is(dimension: str, value: str) -> Callable[[Case], bool]:
    return lambda case: bool(getattr(case, dimension) == value)


def _set(dimension: str, value: str) -> Callable[[Case], Case]:
    changes: dict[str, Any] = {dimension: value}
    return lambda case: replace(case, **changes)


# -- The derived features' helpers (below, the derived features' own block in FEATURES) -----


def _per_dimension(values: list[int]) -> tuple[int, int]:
    return values[0], values[1]


def _reach(case: Case) -> tuple[int, int]:
    """How many input rows and columns one window spans (its dilated kernel)."""
    return _per_dimension([d * (k - 1) + 1 for d, k in zip(pair(case.dilation), case.kernel, strict=True)])


def _uneven_same(case: Case) -> bool:
    """'same' padding whose total is odd in H or W: torch puts the odd pixel bottom/right."""
    top, bottom, left, right = case.paddings
    return case.padding == "same" and (top != bottom or left != right)


def _evened(case: Case) -> Case:
    """``case`` with the kernel one larger where its dilated extent is even: 'same' padding
    then splits evenly, and the kernel is still larger than 1."""
    return replace(
        case,
        kernel=_per_dimension([k + d * (k - 1) % 2 for k, d in zip(case.kernel, pair(case.dilation), strict=True)]),
    )


def _within_reach(case: Case) -> Case:
    """``case`` with the kernel grown until its reach is each stride, and the input as much:
    no input row or column skipped, and the stride, the output's size and the rows left over
    as they were (a bug of strides larger than 1, or of a stride that does not divide, still
    shows)."""
    grown = [
        k if s <= r else -(-(s - 1) // d) + 1
        for k, s, r, d in zip(case.kernel, pair(case.stride), _reach(case), pair(case.dilation), strict=True)
    ]
    (dh, dw), (kh, kw) = pair(case.dilation), case.kernel
    return replace(
        case,
        kernel=_per_dimension(grown),
        height=case.height + dh * (grown[0] - kh),
        width=case.width + dw * (grown[1] - kw),
    )


def _grown(case: Case, dim: int) -> Case:
    """``case`` with one more output row (``dim`` 0) or column (1): the input a stride longer."""
    step = pair(case.stride)[dim]
    return replace(case, height=case.height + step) if dim == 0 else replace(case, width=case.width + step)


def _left_over(case: Case) -> tuple[int, int]:
    """Padded rows and columns after the last window: none reached by any."""
    top, bottom, left, right = case.paddings
    spans = (case.height + top + bottom, case.width + left + right)
    return _per_dimension([(n - r) % s for n, r, s in zip(spans, _reach(case), pair(case.stride), strict=True)])


def _unreached(case: Case) -> tuple[bool, bool]:
    """Per dimension: explicit padding that no window reaches on the bottom/right, though the
    first window starts in it on the top/left."""
    if isinstance(case.padding, str):
        return (False, False)
    _, bottom, _, right = case.paddings
    (rows, cols) = _left_over(case)
    return (bottom > 0 and rows >= bottom, right > 0 and cols >= right)


def _divided(case: Case, dims: tuple[bool, bool] = (True, True)) -> Case:
    """``case`` with the input grown (in ``dims``: height, width) until its last window ends
    at the end of the padded input: no row or column left over, the bottom/right padding
    reached."""
    (sh, sw), (rows, cols) = pair(case.stride), _left_over(case)
    return replace(
        case,
        height=case.height + ((sh - rows) % sh if dims[0] else 0),
        width=case.width + ((sw - cols) % sw if dims[1] else 0),
    )


# -- Derived features: what no one dimension says, the triggers of real bugs -----------------
# Checked like any other; not counted in the campaign's coverage, which is by dimension.
DERIVED = (
    Feature(
        "padding='same' uneven",
        _uneven_same,
        _evened,
        "an even kernel with padding='same' (torch pads one more on the bottom/right)",
    ),
    Feature("output_h=1", lambda c: c.output_hw[0] == 1, lambda c: _grown(c, 0), "an output one row high"),
    Feature("output_w=1", lambda c: c.output_hw[1] == 1, lambda c: _grown(c, 1), "an output one column wide"),
    Feature(
        "stride>reach",
        lambda c: any(s > r for s, r in zip(pair(c.stride), _reach(c), strict=True)),
        _within_reach,
        "a stride larger than the kernel's reach (input rows or columns skipped)",
    ),
    Feature(
        "rows left over",
        lambda c: _left_over(c) != (0, 0),
        _divided,
        "input rows or columns left over after the last window (the stride does not divide)",
    ),
    Feature(
        "padding one side",
        lambda c: any(_unreached(c)),
        lambda c: _divided(c, _unreached(c)),
        "windows reaching into the padding on one side only",
    ),
    Feature(
        "in_channels=1",
        lambda c: c.in_channels == 1,
        lambda c: replace(c, in_channels=2),
        "a single input channel",
    ),
    Feature(
        "depthwise",
        lambda c: 1 < c.groups == c.in_channels,
        lambda c: replace(c, in_channels=2 * c.groups),
        "depthwise (groups = in_channels)",
    ),
)
DERIVED_NAMES = frozenset(feature.name for feature in DERIVED)

FEATURES = (
    Feature("bias", lambda c: c.bias, lambda c: replace(c, bias=False)),
    Feature("unbatched", lambda c: c.batch is None, lambda c: replace(c, batch=1)),
    Feature("batch=0", lambda c: c.batch == 0, lambda c: replace(c, batch=1)),
    Feature("batch>1", lambda c: (c.batch or 1) > 1, lambda c: replace(c, batch=1)),
    # One group over the same channels: the input keeps its shape, and so its values.
    Feature("groups>1", lambda c: c.groups > 1, lambda c: replace(c, groups=1)),
    Feature("in_channels>groups", lambda c: c.in_channels > c.groups, lambda c: replace(c, in_channels=c.groups)),
    Feature("out_channels>groups", lambda c: c.out_channels > c.groups, lambda c: replace(c, out_channels=c.groups)),
    # More than one channel at all, however grouped (a memory-layout bug needs no more).
    Feature("in_channels>1", lambda c: c.in_channels > 1, lambda c: replace(c, in_channels=1, groups=1)),
    Feature("out_channels>1", lambda c: c.out_channels > 1, lambda c: replace(c, out_channels=1, groups=1)),
    Feature("kernel>1", lambda c: c.kernel != (1, 1), lambda c: replace(c, kernel=(1, 1))),
    Feature("kh!=kw", lambda c: c.kernel[0] != c.kernel[1], lambda c: replace(c, kernel=(max(c.kernel),) * 2)),
    Feature("stride>1", lambda c: pair(c.stride) != (1, 1), lambda c: replace(c, stride=_same_form(c.stride, 1, 1))),
    Feature(
        "stride_h!=stride_w", lambda c: len(set(pair(c.stride))) > 1, lambda c: replace(c, stride=_square(c.stride))
    ),
    Feature("padding='same'", lambda c: c.padding == "same", lambda c: replace(c, padding=0)),
    Feature("padding='valid'", lambda c: c.padding == "valid", lambda c: replace(c, padding=0)),
    Feature(
        "padding>0",
        lambda c: not isinstance(c.padding, str) and pair(c.padding) != (0, 0),
        lambda c: replace(c, padding=_same_form(c.padding, 0, 0)),
    ),
    Feature(
        "padding_h!=padding_w",
        lambda c: not isinstance(c.padding, str) and len(set(pair(c.padding))) > 1,
        lambda c: replace(c, padding=_square(c.padding)),
    ),
    Feature(
        "dilation>1", lambda c: pair(c.dilation) != (1, 1), lambda c: replace(c, dilation=_same_form(c.dilation, 1, 1))
    ),
    Feature(
        "dilation_h!=dilation_w",
        lambda c: len(set(pair(c.dilation))) > 1,
        lambda c: replace(c, dilation=_square(c.dilation)),
    ),
    Feature(
        "height!=width",
        lambda c: c.height != c.width,
        lambda c: replace(c, height=max(c.height, c.width), width=max(c.height, c.width)),
    ),
    # The dimensions with named values: each value but the simplest (listed first) is a feature.
    *(
        Feature(f"{dimension}={value}", _is(dimension, value), _set(dimension, values[0]))
        for dimension, values in (("layout", LAYOUTS), ("dtype", DTYPES), ("data", DATA_KINDS), ("device", DEVICES))
        for value in values[1:]
    ),
    # Explored only where declared (`capabilities.EXPLORING`): absent from every other case.
    *(
        Feature(f"weight_layout={value}", _is("weight_layout", value), _set("weight_layout", "same"))
        for value in WEIGHT_LAYOUTS[1:]
    ),
    Feature("threads>1", lambda c: c.threads > 1, lambda c: replace(c, threads=1)),
    Feature("size=realistic", lambda c: c.realistic, _small),
    *DERIVED,
)


def features(case: Case) -> frozenset[str]:
    return frozenset(feature.name for feature in FEATURES if feature.present(case))


@dataclass(frozen=True)
class Attribution:
    """What attribution found: the features a failure needs, and those it could not try
    without (the case without one was invalid, or outside what the implementation claims
    and refused there, or there was no time left): of those, it is not known."""

    needs: frozenset[str]
    untried: frozenset[str] = frozenset()


def needed(case: Case, still_fails: Callable[[Case], bool | None]) -> Attribution:
    """The features of ``case`` without which it stops failing (as ``still_fails`` sees it:
    None where it cannot tell), and those it could not try without.

    A simplification that leaves the kernel larger than the padded input (no padding
    instead of 'same', say) grows the input to fit it; one that still makes an invalid
    problem tells nothing, and is named as not tried.
    """
    found, untried = set(), set()
    for feature in FEATURES:
        if not feature.present(case):
            continue
        simpler = fitted(feature.simplest(case))
        fails = None if simpler.problems() else still_fails(simpler)
        if fails is None:
            untried.add(feature.name)
        elif not fails:
            found.add(feature.name)
    return Attribution(frozenset(found), frozenset(untried))


def without(case: Case, names: frozenset[str]) -> Case:
    """``case`` with each of the features ``names`` set back to its simplest value."""
    for feature in FEATURES:
        if feature.name in names and feature.present(case):
            case = feature.simplest(case)
    return fitted(case)


def fitted(case: Case) -> Case:
    """``case`` with its input grown just enough to fit its dilated kernel, if it does not."""
    if case.type_problems() or min(pair(case.stride) + pair(case.dilation) + case.kernel) < 1:
        return case
    top, bottom, left, right = case.paddings
    (dh, dw), (kh, kw) = pair(case.dilation), case.kernel
    return replace(
        case,
        height=max(case.height, dh * (kh - 1) + 1 - top - bottom),
        width=max(case.width, dw * (kw - 1) + 1 - left - right),
    )


# A feature that goes without saying once another is named: more than one group, or more
# channels than groups, means more than one channel; an uneven 'same' padding, a kernel
# larger than 1 and padding='same'; and so on.
IMPLIED_BY = {
    "in_channels>1": ("groups>1", "in_channels>groups", "depthwise"),
    "out_channels>1": ("groups>1", "out_channels>groups"),
    "groups>1": ("depthwise",),
    "kernel>1": ("padding='same' uneven",),
    "padding='same'": ("padding='same' uneven",),
    "stride>1": ("stride>reach", "rows left over"),
    "padding>0": ("padding one side",),
    "rows left over": ("padding one side",),
}
SIMPLEST = "fails on the simplest case it can"


def _said(names: frozenset[str]) -> list[str]:
    """``names`` in words, in the order of `FEATURES`, less those another one named implies."""
    return [f.words or f.name for f in FEATURES if f.name in names and not names & set(IMPLIED_BY.get(f.name, ()))]


def describe(
    needs: frozenset[str], untried: frozenset[str] = frozenset(), also_without: frozenset[str] = frozenset()
) -> str:
    """ "fails this way only with" the features needed, less those another one named implies;
    and what attribution could not try. "Fails on the simplest case it can" only where it
    tried setting back every feature the case has, and needed none of them. Where another
    case fails the same way without some of them (``also_without``), "only" is not true:
    they are what this case needs, one trigger among others."""
    shown = _said(needs)
    if shown and also_without:
        said = (
            f"this case fails this way only with {', '.join(shown)}, but not every case does: "
            f"one listed below fails without {', '.join(_said(also_without) or sorted(also_without))}"
        )
    else:
        said = "fails this way only with " + ", ".join(shown) if shown else "no feature found that it needs"
    if untried:
        tried_without = ", ".join(f.words or f.name for f in FEATURES if f.name in untried)
        return f"{said} (not tried without {tried_without})"
    return said if shown else SIMPLEST
