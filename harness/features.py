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

from harness.case import DATA_KINDS, DEVICES, DTYPES, LAYOUTS, Case, IntOrPair, Padding, pair


@dataclass(frozen=True)
class Feature:
    name: str
    present: Callable[[Case], bool]
    simplest: Callable[[Case], Case]


def _same_form(value: Padding, high: int, wide: int) -> IntOrPair:
    """``(high, wide)`` in the form ``value`` had: an int stays an int."""
    return high if isinstance(value, int) else (high, wide)


def _square(value: Padding) -> IntOrPair:
    assert not isinstance(value, str), "a padding mode has no height and width"
    h, w = pair(value)
    return _same_form(value, max(h, w), max(h, w))


def _is(dimension: str, value: str) -> Callable[[Case], bool]:
    return lambda case: bool(getattr(case, dimension) == value)


def _set(dimension: str, value: str) -> Callable[[Case], Case]:
    changes: dict[str, Any] = {dimension: value}
    return lambda case: replace(case, **changes)


FEATURES = (
    Feature("bias", lambda c: c.bias, lambda c: replace(c, bias=False)),
    Feature("unbatched", lambda c: c.batch is None, lambda c: replace(c, batch=1)),
    Feature("batch=0", lambda c: c.batch == 0, lambda c: replace(c, batch=1)),
    Feature("batch>1", lambda c: (c.batch or 1) > 1, lambda c: replace(c, batch=1)),
    # One group over the same channels: the input keeps its shape, and so its values.
    Feature("groups>1", lambda c: c.groups > 1, lambda c: replace(c, groups=1)),
    Feature("in_channels>groups", lambda c: c.in_channels > c.groups,
            lambda c: replace(c, in_channels=c.groups)),
    Feature("out_channels>groups", lambda c: c.out_channels > c.groups,
            lambda c: replace(c, out_channels=c.groups)),
    # More than one channel at all, however grouped (a memory-layout bug needs no more).
    Feature("in_channels>1", lambda c: c.in_channels > 1, lambda c: replace(c, in_channels=1, groups=1)),
    Feature("out_channels>1", lambda c: c.out_channels > 1, lambda c: replace(c, out_channels=1, groups=1)),
    Feature("kernel>1", lambda c: c.kernel != (1, 1), lambda c: replace(c, kernel=(1, 1))),
    Feature("kh!=kw", lambda c: c.kernel[0] != c.kernel[1],
            lambda c: replace(c, kernel=(max(c.kernel),) * 2)),
    Feature("stride>1", lambda c: pair(c.stride) != (1, 1),
            lambda c: replace(c, stride=_same_form(c.stride, 1, 1))),
    Feature("stride_h!=stride_w", lambda c: len(set(pair(c.stride))) > 1,
            lambda c: replace(c, stride=_square(c.stride))),
    Feature("padding='same'", lambda c: c.padding == "same", lambda c: replace(c, padding=0)),
    Feature("padding='valid'", lambda c: c.padding == "valid", lambda c: replace(c, padding=0)),
    Feature("padding>0", lambda c: not isinstance(c.padding, str) and pair(c.padding) != (0, 0),
            lambda c: replace(c, padding=_same_form(c.padding, 0, 0))),
    Feature("padding_h!=padding_w", lambda c: not isinstance(c.padding, str) and len(set(pair(c.padding))) > 1,
            lambda c: replace(c, padding=_square(c.padding))),
    Feature("dilation>1", lambda c: pair(c.dilation) != (1, 1),
            lambda c: replace(c, dilation=_same_form(c.dilation, 1, 1))),
    Feature("dilation_h!=dilation_w", lambda c: len(set(pair(c.dilation))) > 1,
            lambda c: replace(c, dilation=_square(c.dilation))),
    Feature("height!=width", lambda c: c.height != c.width,
            lambda c: replace(c, height=max(c.height, c.width), width=max(c.height, c.width))),
    # The dimensions with named values: each value but the simplest (listed first) is a feature.
    *(Feature(f"{dimension}={value}", _is(dimension, value), _set(dimension, values[0]))
      for dimension, values in (("layout", LAYOUTS), ("dtype", DTYPES), ("data", DATA_KINDS), ("device", DEVICES))
      for value in values[1:]),
)


def features(case: Case) -> frozenset[str]:
    return frozenset(feature.name for feature in FEATURES if feature.present(case))


def needed(case: Case, still_fails: Callable[[Case], bool],
           allowed: Callable[[Case], bool] = lambda case: True) -> frozenset[str]:
    """The features of ``case`` without which it stops failing (as ``still_fails`` sees it).

    A simplification that leaves the kernel larger than the padded input (no padding
    instead of 'same', say) grows the input to fit it; one that still makes an invalid
    problem, or one outside what the implementation claims (``allowed``), tells nothing and
    is skipped.
    """
    found = set()
    for feature in FEATURES:
        if not feature.present(case):
            continue
        simpler = fitted(feature.simplest(case))
        if simpler.problems() or not allowed(simpler):
            continue
        if not still_fails(simpler):
            found.add(feature.name)
    return frozenset(found)


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
    return replace(case, height=max(case.height, dh * (kh - 1) + 1 - top - bottom),
                   width=max(case.width, dw * (kw - 1) + 1 - left - right))


# A feature that goes without saying once another is named: more than one group, or more
# channels than groups, means more than one channel.
IMPLIED_BY = {"in_channels>1": ("groups>1", "in_channels>groups"),
              "out_channels>1": ("groups>1", "out_channels>groups")}


def describe(needs: frozenset[str]) -> str:
    """"fails this way only with" the features needed, less those another one named implies."""
    shown = [f.name for f in FEATURES if f.name in needs and not needs & set(IMPLIED_BY.get(f.name, ()))]
    if not shown:
        return "fails on the simplest case it can"
    return "fails this way only with " + ", ".join(shown)
