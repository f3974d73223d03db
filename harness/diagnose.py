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
        shift = shifted(got, expected)
        return "same values in another order (they match once sorted)" + (f"; {shift}" if shift else "")
    return None


# Up to two rows and/or columns either way, smallest first: an offset off by one or two
# moves the whole output.
_SHIFTS = sorted(((rows, cols) for rows in range(-2, 3) for cols in range(-2, 3) if rows or cols),
                 key=lambda shift: (max(map(abs, shift)), abs(shift[0]) + abs(shift[1])))


def _overlap(by: int) -> tuple[slice, slice]:
    """The part of got, and of the reference, that line up along one dimension when got is
    the reference moved on by ``by``."""
    if by > 0:
        return slice(by, None), slice(None, -by)
    if by < 0:
        return slice(None, by), slice(-by, None)
    return slice(None), slice(None)


def _written(rows: slice, cols: slice) -> str:
    return ", ".join(f"{'' if part.start is None else part.start}:{'' if part.stop is None else part.stop}"
                     for part in (rows, cols))


def _moves(by: int, forward: str, back: str, unit: str) -> list[str]:
    return [f"{forward if by > 0 else back} by {abs(by)} {unit}{'s' if abs(by) > 1 else ''}"] if by else []


def shifted(got: torch.Tensor, expected: Expected) -> str | None:
    """Name the move by a row or two and/or a column or two that lines ``got`` up with the
    reference on their overlap (the values that remain, more than half of them), if one does.

    On the overlap, ``got`` must match the moved reference everywhere; and the shift must
    explain what is wrong, not what any value would match. So it is judged on the telling
    elements: finite, non-zero values that the reference where they stand does not match
    (an output of NaN, or zeros, matches a reference with a block of them anywhere). There
    must be two or more, not all one value, at least as many as the wrong elements the
    shift leaves unexplained (outside the overlap), and they must match closely: on average
    within a quarter of their rounding bound (a loose bfloat16 bound lets neighbours match
    by chance; true rounding rarely comes near it).
    """
    if tuple(got.shape) != expected.shape or got.dim() < 2:
        return None
    got = got.to(torch.float64)
    reference, allowed = expected.values, expected.allowed_error
    wrong = _misfit(got, reference, allowed) > 1
    telling = wrong & got.isfinite() & (got != 0)
    for rows, cols in _SHIFTS:
        (mine_rows, their_rows), (mine_cols, their_cols) = _overlap(rows), _overlap(cols)
        mine = got[..., mine_rows, mine_cols]
        if 2 * mine.numel() <= got.numel():  # half the output moved out or more: it would say little
            continue
        fit = _misfit(mine, reference[..., their_rows, their_cols], allowed[..., their_rows, their_cols])
        if fit.max() > 1:
            continue
        told = telling[..., mine_rows, mine_cols]
        values, unexplained = mine[told], int(wrong.sum()) - int(wrong[..., mine_rows, mine_cols].sum())
        if (values.numel() >= max(2, unexplained) and bool((values != values[0]).any())
                and float(fit[told].mean()) <= 0.25):
            how = " and ".join(_moves(rows, "down", "up", "row") + _moves(cols, "right", "left", "column"))
            return (f"shifted {how}: got[..., {_written(mine_rows, mine_cols)}] matches "
                    f"expected[..., {_written(their_rows, their_cols)}]")
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


def _padding_fact(case: Case, batched: torch.Tensor) -> list[str]:
    """Whether all the wrong elements are where the window overlaps padding, or all where it
    does not (nothing when they are on both sides, or the output has only one)."""
    rows, cols = _border_masks(case)
    border = (rows[:, None] | cols[None, :]).expand_as(batched)
    if not border.any() or border.all():
        return []
    if not batched[~border].any():
        return ["where the window overlaps padding (border)"]
    if not batched[border].any():
        return ["where the window does not touch padding (interior)"]
    return []


def where_wrong(case: Case, expected: Expected, got: torch.Tensor, wrong: torch.Tensor) -> str:
    """Where the wrong elements of ``got`` (``wrong``, a boolean mask of the output, every
    wrong element in it, NaN/inf or finite) are, as a phrase to follow their count.

    A shift explains them all, and is said instead. Otherwise every fact that holds of all
    of them is said, none picked over another: a last row whose windows overlap padding is
    both, and naming one would point away from the other.
    """
    shift = shifted(got, expected)
    if shift:
        return f"; {shift}"
    count = int(wrong.sum())
    if count == wrong.numel():
        return ": every element"
    batched = wrong if case.batch is not None else wrong.unsqueeze(0)
    facts = _padding_fact(case, batched)
    if count == 1:
        return "".join([f", at {tuple(wrong.nonzero()[0].tolist())}"] + [f", {fact}" for fact in facts])
    last = [name for name, size, dim in (("row", case.output_hw[0], -2), ("column", case.output_hw[1], -1))
            if size > 1 and not batched.narrow(dim, 0, size - 1).any()]
    if last:
        facts.append(f"in the last output {' and '.join(last)} (output size?)")
    items = batched.flatten(1).any(1).nonzero().flatten().tolist()
    if case.batch is not None and len(items) < batched.shape[0]:
        facts.append(f"in batch items {items}")
    channels = batched.transpose(0, 1).flatten(1).any(1).nonzero().flatten().tolist()
    if len(channels) < case.out_channels:
        per_group = case.out_channels // case.groups
        groups = sorted({c // per_group for c in channels})
        in_groups = f" (groups {groups})" if case.groups > 1 else ""
        facts.append(f"in output channels {channels}{in_groups}")
    return f", all {', '.join(facts)}" if facts else ""
