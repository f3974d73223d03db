"""Hypothesis strategies for conv2d cases inside what an implementation declares.

Every case drawn is a valid problem (F.conv2d accepts it). Each dimension is one draw
from a short list ordered from simplest to hardest, for two reasons: Hypothesis shrinks a
draw towards the start of its list, so a minimal failure has stride 1, no padding, one
group... wherever the bug allows it; and each draw costs tens of microseconds, so fewer
draws mean more checks per second. Shapes stay small so that a case costs milliseconds.

An implementation may declare more to explore (`capabilities.EXPLORING`), each drawn only
then, so that every other declaration draws what it always drew: a weight layout of its own,
torch's thread count (`THREADS`), and a share of cases at realistic sizes (`REALISTIC`),
where backends pick other kernels. The size class is drawn first, small first, so that a
failure that does not need the size shrinks to a small case.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeVar

from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants

from harness.generate.support import full_domain
from harness.model.capabilities import Capabilities, fitted, refusal
from harness.model.case import DATA_KINDS, MAX_SEED, REALISTIC, Case, IntOrPair, pair
from harness.model.conditions import met

SPATIAL_SLACK = 6  # input sizes go up to this much above the smallest valid one
# How often each is drawn, relative to the others allowed: the everyday dtype and data most.
DTYPE_WEIGHTS = {"float32": 3, "float64": 2, "float16": 1, "bfloat16": 1}
DATA_WEIGHTS = {"uniform": 2, "int": 1, "special": 1}
# How many more times a draw is made when the first cannot meet the conditional limits, or
# meets the one lifted to draw just outside it.
RETRIES = 2
# Torch thread counts explored: one, two, this machine's cores, and more than its cores. One
# case in `SEVERAL_THREADS` gets more than one: on a busy machine a small conv2d takes 10 to
# 100 times as long on several threads (measured here: 0.9 ms on one, 8 to 16 ms on two).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
THREADS = tuple(sorted({1, 2, _CORES, _CORES + 1}))
SEVERAL_THREADS = 4
# Each realistic case (`REALISTIC`) costs at most this many multiply-adds (fewer images,
# smaller, fewer channels until it does, not below the lowest), each group of each image
# counted as `GROUP_MACS` more: torch's native CPU path convolves group by group, image by
# image. Measured on this project's 2-core machine: the slowest path, float16 with oneDNN
# off, runs one such call in ~80 ms, the float64 reference in ~10 ms; a depthwise case of
# 24 images and 48 groups (1,152 group-calls, 6e6 multiply-adds) had taken 5 s for its
# 16 variants and gradient check with oneDNN off.
REALISTIC_MACS = 2**25
GROUP_MACS = 2**17
T = TypeVar("T")


# Every strategy below is built once per distinct argument and reused: Hypothesis works out
# each new strategy object's properties on first use, and building them afresh for every
# draw cost more than the draws themselves (measured: 6 ms per case, 2 ms cached).


@contextlib.contextmanager
def steady_draws() -> Iterator[None]:
    """Hypothesis draws without the literals of the modules loaded at the time.

    Hypothesis (since 6.131) draws some integers, one in forty or so, from the constants in
    the source of the *local* modules loaded when it draws: the harness's own (installed
    editable), a plugin file, whatever a test imported before. So what a ``--seed`` drew
    depended on which modules happened to be loaded (in a pytest-xdist worker, on which
    tests it ran before: seen failing a seed-bound test under xdist that passed alone) and
    changed with any edit that added a literal. Inside this block that pool is empty (its
    own constants, the same for every caller, are kept); outside it, as it was, so that a
    user's own Hypothesis tests in the same process draw as they would without the harness.
    Hypothesis has no setting for it: ``_get_local_constants`` is its one source, swapped
    here (and its cache of the constants each draw may take, which would hold them, cleared).
    """
    own = getattr(providers, "_get_local_constants", None)
    if own is None:  # a Hypothesis without local constants: nothing to hold steady
        yield
        return
    providers._get_local_constants = _no_local_constants
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = own
        providers.CONSTANTS_CACHE.cache.clear()


_NO_CONSTANTS = Constants()


def _no_local_constants() -> Constants:
    return _NO_CONSTANTS


@functools.cache
def _arguments(values: range, forms: tuple[str, ...], square_only: bool = False) -> st.SearchStrategy[IntOrPair]:
    """Ints and pairs over ``values``, simplest first: 1, (1, 1), 2, (1, 2), (2, 1), (2, 2)..."""
    options: list[IntOrPair] = []
    for high in values:
        if "int" in forms:
            options.append(high)
        if "pair" in forms:
            options += [
                (a, b)
                for a, b in itertools.product(values, repeat=2)
                if max(a, b) == high and not (square_only and a != b)
            ]
    return st.sampled_from(options)


@functools.cache
def _one_of(options: tuple[T, ...]) -> st.SearchStrategy[T]:
    return st.sampled_from(options)


@functools.cache
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@functools.cache
def _weighted(choices: tuple[tuple[T, int], ...]) -> st.SearchStrategy[T]:
    """One of ``choices`` with the given weights, shrinking towards the first.

    Measured here: over a short run, Hypothesis's ``sampled_from`` reached a value listed
    twice in four as rarely as 7% of the time (mean 23%); an integer mapped onto the
    choices stays closer to the weights (19%, mean 34% for 3 in 8).
    """
    table = [value for value, weight in choices for _ in range(weight)]
    if len(table) == 1:
        return st.just(table[0])
    return st.integers(0, len(table) - 1).map(table.__getitem__)


@st.composite
def cases(draw: st.DrawFn, capabilities: Capabilities | None = None, data_kinds: tuple[str, ...] = DATA_KINDS) -> Case:
    """A valid conv2d case that ``capabilities`` claims (default: everything this machine
    runs, `harness.generate.support.full_domain`), shrinking towards the simplest.

    A dimension with one allowed value costs no draw: the campaign enumerates layouts
    itself and draws only the rest. A draw that breaks a conditional limit is changed to
    meet it (`capabilities.fitted`), not thrown away; one that cannot be is drawn again, and
    so is one that meets a lifted limit's ``require`` (`capabilities.widenings`: just outside
    a limit, the draws that break it are wanted), up to `RETRIES` times.
    """
    c = full_domain() if capabilities is None else capabilities
    avoided = [limit.avoid for limit in c.limits if limit.avoid]
    drawn = None
    for _ in range(1 + RETRIES):
        case = _case(draw, c, data_kinds)
        if case is not None:
            drawn = case
            if not any(met(case, avoid) for avoid in avoided):
                break
    if drawn is None:
        reject()
    return drawn


def _case(draw: st.DrawFn, c: Capabilities, data_kinds: tuple[str, ...]) -> Case | None:
    """One draw of `cases`: a case inside ``c``, or None where its limits cannot be met."""

    share = round(100 * c.realistic)  # percent
    realistic = _realistic(c) and draw(_weighted((("small", 100 - share), ("realistic", share)))) == "realistic"
    # Batch 0 has nothing to compare but the shape: rarely drawn (the campaign checks every
    # batched draw with an empty batch too).
    batched: tuple[tuple[int | None, int], ...] = ((1, 3), (2, 3), (3, 3), (0, 1)) if c.batched else ()
    batch = draw(_weighted(batched + (((None, 3),) if c.unbatched else ())))

    most = min(c.max_in_channels or 3, c.max_out_channels or 3)
    groups = draw(_one_of(tuple(g for g in (1, 2, 3) if g <= most) if c.groups else (1,)))
    most_in = c.max_in_channels or 3 * groups
    most_out = c.max_out_channels or 3 * groups
    in_per_group = draw(_integers(1, max(1, min(3, most_in // groups))))
    out_per_group = draw(_integers(1, max(1, min(3, most_out // groups))))

    kernel: tuple[int, int] = draw(_arguments(range(1, 5), ("pair",), c.square_kernels_only))  # type: ignore[assignment]
    # Every draw is made whatever the mode, so that 'same' does not look simpler to the
    # shrinker than explicit padding just because it skips draws.
    mode = draw(_weighted((("explicit", 4), *((m, 3 if m == "same" else 1) for m in c.padding_modes))))
    explicit = draw(_arguments(range(4), c.forms("padding")))
    padding = explicit if mode == "explicit" else mode
    stride = draw(_arguments(range(1, 4), c.forms("stride")))
    if padding == "same":  # torch allows 'same' with stride 1 only
        stride = 1 if "int" in c.forms("stride") else (1, 1)
    one: IntOrPair = 1 if "int" in c.forms("dilation") else (1, 1)
    dilation = draw(_arguments(range(1, 4), c.forms("dilation"))) if c.dilation else one

    probe = Case(batch, 1, 1, 1, 1, 1, kernel, stride, padding, dilation)
    top, bottom, left, right = probe.paddings
    (dh, dw), (kh, kw) = pair(dilation), kernel
    height = max(1, dh * (kh - 1) + 1 - top - bottom) + draw(_integers(0, SPATIAL_SLACK))
    width = max(1, dw * (kw - 1) + 1 - left - right) + draw(_integers(0, SPATIAL_SLACK))

    case = Case(
        batch=batch,
        in_channels=groups * in_per_group,
        out_channels=groups * out_per_group,
        groups=groups,
        height=height,
        width=width,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=draw(_one_of((False, True))) if c.bias else False,
        dtype=draw(_weighted(tuple((t, DTYPE_WEIGHTS[t]) for t in c.dtypes))),
        layout=draw(_one_of(c.layouts)),
        data=draw(_weighted(tuple((d, DATA_WEIGHTS[d]) for d in data_kinds))),
        device=draw(_one_of(c.devices)),
        seed=draw(_integers(0, MAX_SEED)),
        weight_layout=draw(_one_of(("same", *c.weight_layouts))) if c.weight_layouts else "same",
        threads=draw(_threads()) if c.threads else 1,
    )
    if realistic:
        case = _capped(_sized(draw, c, case))
    if not c.limits:
        return case
    inside = fitted(c, case)
    return None if inside is None or refusal(c, inside) is not None else inside


def _threads() -> st.SearchStrategy[int]:
    """One thread in all but one case in `SEVERAL_THREADS`, each other count alike."""
    several = len(THREADS) - 1
    return _weighted(((1, several * (SEVERAL_THREADS - 1)), *((count, 1) for count in THREADS[1:])))


def _realistic(c: Capabilities) -> bool:
    """Whether realistic sizes are declared, and fit the declared channel limits."""
    low = REALISTIC["channels"][0]
    return c.realistic > 0 and min(c.max_in_channels or low, c.max_out_channels or low) >= low


def _sized(draw: st.DrawFn, c: Capabilities, case: Case) -> Case:
    """``case`` at realistic sizes: its batch (if batched), channels and image drawn again in
    `REALISTIC`'s ranges, one group, a few, or one per channel (depthwise)."""
    (low, high), most = REALISTIC["channels"], REALISTIC["channels"][1]
    in_channels = draw(_integers(low, min(high, c.max_in_channels or most)))
    out_channels = draw(_integers(low, min(high, c.max_out_channels or most)))
    grouping = draw(_one_of(("one", "grouped", "depthwise"))) if c.groups else "one"
    groups = 1
    if grouping == "grouped":
        groups = draw(_one_of((2, 4, 8)))
        in_channels, out_channels = in_channels - in_channels % groups, out_channels - out_channels % groups
    elif grouping == "depthwise":
        groups = in_channels = out_channels = min(in_channels, out_channels)
    image = _integers(*REALISTIC["image"])
    return replace(
        case,
        batch=None if case.batch is None else draw(_integers(*REALISTIC["batch"])),
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
        height=draw(image),
        width=draw(image),
    )


def _capped(case: Case) -> Case:
    """``case`` within `REALISTIC_MACS` (`GROUP_MACS` counted): fewer images, then smaller
    ones, then fewer channels (fewer groups where depthwise), each no lower than
    `REALISTIC`'s lowest."""

    def less(value: int, low: int, scale: float) -> int:
        return max(low, min(value - 1, int(value * scale)))

    def cost(case: Case) -> int:
        return case.macs + GROUP_MACS * (case.batch or 1) * case.groups

    while cost(case) > REALISTIC_MACS:
        scale = REALISTIC_MACS / cost(case)
        groups, per_in, per_out = case.groups, case.in_channels // case.groups, case.out_channels // case.groups
        channels = REALISTIC["channels"][0]
        if case.batch is not None and case.batch > REALISTIC["batch"][0]:
            smaller = replace(case, batch=less(case.batch, REALISTIC["batch"][0], scale))
        elif max(case.height, case.width) > REALISTIC["image"][0]:
            side = math.sqrt(scale)
            low = REALISTIC["image"][0]
            smaller = replace(case, height=less(case.height, low, side), width=less(case.width, low, side))
        elif per_in == 1 < groups:  # depthwise
            groups = less(groups, channels, scale)
            smaller = replace(case, groups=groups, in_channels=groups, out_channels=groups * per_out)
        else:
            side = math.sqrt(scale)
            per_in, per_out = less(per_in, -(-channels // groups), side), less(per_out, -(-channels // groups), side)
            smaller = replace(case, in_channels=groups * per_in, out_channels=groups * per_out)
        if smaller == case:
            break  # as small as realistic goes
        case = smaller
    return case
