"""Say in words what is wrong with an output, the way a person debugging it would ask.

Two questions come first: are these the right numbers in the wrong arrangement (the
notebook's bug: nine right values shaped (9, 1) instead of (1, 3, 3)), and if the numbers
are wrong, where are they wrong: where the window overlaps padding (border), only the last
row or column (output size), some batch items, some channels?
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch

from harness.case import Case, pair
from harness.oracle import Expected


def _misfit(got: torch.Tensor, reference: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Each element's error as a fraction of its own rounding bound: at most 1 is within it.

    An exact match (NaN to NaN, an infinity to the same infinity) is 0; anything else where
    the bound is not finite is infinite: the oracle gives elements whose terms are not all
    finite a NaN bound, and such an element vouches only for an exact match, however a bound
    (an infinite one, say) compares with its error.
    """
    same = (got == reference) | (got.isnan() & reference.isnan())
    ratio = (got - reference).abs() / allowed  # x/0 is inf; NaN where a side or the bound is
    ratio = torch.where(allowed.isfinite() & ~ratio.isnan(), ratio, torch.inf)
    return torch.where(same, 0.0, ratio)


def _matches(candidate: torch.Tensor, expected: Expected) -> bool:
    """Within the rounding bound everywhere, NaN matching NaN and inf matching inf."""
    if tuple(candidate.shape) != expected.shape:
        return False
    return bool((_misfit(candidate.to(torch.float64), expected.values, expected.allowed_error) <= 1).all())


def _reorders(dims: int) -> Iterator[tuple[int, ...]]:
    """Every order of ``dims`` dimensions but the one they are in."""
    return (order for order in itertools.permutations(range(dims)) if list(order) != sorted(order))


def _listed(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def rearrangement(got: torch.Tensor, expected: Expected) -> str | None:
    """Describe the reshape/permute that turns ``got`` into the reference, if one does.

    Both ways round: a transposed result read back in the wrong shape (permute, then
    reshape), and a result computed in another order of dimensions whose memory was read
    as this one ((C, N, H, W) written, (N, C, H, W) read: reshape, then permute back).
    Anything else is only known to be the same values once sorted, and said so.
    """
    if got.numel() != expected.values.numel() or got.numel() == 0:
        return None
    shape = expected.shape
    if tuple(got.shape) != shape and _matches(got.reshape(shape), expected):
        return f"same values in the same order, wrong shape: got.reshape({_listed(shape)}) matches"
    for order in _reorders(got.dim()):
        permuted = got.permute(order)
        if _matches(permuted.reshape(shape), expected):
            how = f"got.permute{order}" + ("" if tuple(permuted.shape) == shape else f".reshape({_listed(shape)})")
            return f"same values, different order: {how} matches"
    for order in _reorders(len(shape)):
        written = tuple(shape[i] for i in order)
        back = tuple(sorted(range(len(order)), key=order.__getitem__))
        if _matches(got.reshape(written).permute(back), expected):
            return f"same values, different order: got.reshape({_listed(written)}).permute{back} matches"
    mine = got.detach().to(torch.float64).flatten().sort().values  # NaN sorts last on both sides
    theirs, order = expected.values.flatten().sort()
    tolerance = expected.allowed_error.flatten()[order]  # each value's own rounding bound
    if bool((_misfit(mine, theirs, tolerance) <= 1).all()):
        return "same values in another order (they match once sorted)"
    return None


def _border_masks(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output row and column: does the window there overlap padding?"""
    top, _, left, _ = case.paddings
    masks = []
    for size, kernel, stride, dilation, before, count in zip(
        (case.height, case.width), case.kernel, pair(case.stride), pair(case.dilation),
        (top, left), case.output_hw,
    ):
        start = torch.arange(count) * stride - before
        masks.append((start < 0) | (start + dilation * (kernel - 1) >= size))
    return masks[0], masks[1]


def where_wrong(case: Case, wrong: torch.Tensor) -> str:
    """A sentence locating the wrong elements; ``wrong`` is a boolean mask of the output."""
    total, count = wrong.numel(), int(wrong.sum())
    batched = wrong if case.batch is not None else wrong.unsqueeze(0)
    summary = f"{count} of {total} output elements wrong"
    if count == total:
        return f"{summary}: every element"
    rows, cols = _border_masks(case)
    border = (rows[:, None] | cols[None, :]).expand_as(batched)
    if border.any() and not border.all():
        if bool(batched[~border].sum() == 0):
            return f"{summary}, all where the window overlaps padding (border)"
        if bool(batched[border].sum() == 0):
            return f"{summary}, all where the window does not touch padding (interior)"
    oh, ow = case.output_hw
    if oh > 1 and bool(batched[..., :-1, :].sum() == 0):
        return f"{summary}, all in the last output row (output size?)"
    if ow > 1 and bool(batched[..., :, :-1].sum() == 0):
        return f"{summary}, all in the last output column (output size?)"
    items = batched.flatten(1).any(1).nonzero().flatten().tolist()
    if case.batch is not None and len(items) < batched.shape[0]:
        return f"{summary}, only in batch items {items}"
    channels = batched.transpose(0, 1).flatten(1).any(1).nonzero().flatten().tolist()
    if len(channels) < case.out_channels:
        per_group = case.out_channels // case.groups
        groups = sorted({c // per_group for c in channels})
        in_groups = f" (groups {groups})" if case.groups > 1 else ""
        return f"{summary}, only in output channels {channels}{in_groups}"
    return summary
