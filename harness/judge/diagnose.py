"""Say in words what is wrong with an output, the way a person debugging it would ask.

Three questions come first: are these the right numbers in the wrong arrangement (the
notebook's bug: nine right values shaped (9, 1) instead of (1, 3, 3)); are they the right
numbers moved by a row or a column (an offset off by one); and if the numbers are wrong,
where are they wrong (where the window overlaps padding (border), only the last row or
column (output size), some batch items, some channels) and by how much (an index bug is
off by a sizeable part of M, the size of the terms summed; rounding at a lower precision
than the result's is off by that precision's rounding).

Every sentence must be true of the output it describes: where the evidence is thin (a
loose bfloat16 bound, an output of NaN, a few elements), a diagnosis says less.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator

import torch

from harness.judge.oracle import UNIT_ROUNDOFF, Expected, rounding_bound, unit_roundoff
from harness.model.case import DTYPES, Case, pair


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
    got = candidate.to(torch.float64)
    # All finite and within their finite bounds, in three operations (comparisons with NaN
    # are false: any NaN or non-finite bound falls through to the full test).
    if bool(((got - expected.values).abs() <= expected.allowed_error).all()):
        return True
    return bool((_misfit(got, expected.values, expected.allowed_error) <= 1).all())


def _reorders(dims: int) -> Iterator[tuple[int, ...]]:
    """Every order of ``dims`` dimensions but the one they are in."""
    return (order for order in itertools.permutations(range(dims)) if list(order) != sorted(order))


def _listed(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def _rearrangeable(got: torch.Tensor, expected: Expected) -> bool:
    """False where no rearrangement of ``got`` can match the reference, found in a few
    operations instead of one per order tried: each NaN and infinity must meet its like,
    and pairing finite values within their bounds keeps their sum, and the sum of their
    magnitudes, within the sum of the bounds (plus what summing itself may round)."""
    mine, theirs = got.to(torch.float64).flatten(), expected.values.flatten()
    for kind in (torch.isnan, torch.isposinf, torch.isneginf):
        if int(kind(mine).sum()) != int(kind(theirs).sum()):
            return False
    finite = theirs.isfinite()
    mine, theirs = mine[mine.isfinite()], theirs[finite]
    summing = mine.numel() * 2.0**-53 * (mine.abs().sum() + theirs.abs().sum())
    slack = expected.allowed_error.flatten()[finite].nan_to_num(0.0, posinf=0.0).sum() + summing
    pairs = ((mine, theirs), (mine.abs(), theirs.abs()))
    return all(bool((ours.sum() - yours.sum()).abs() <= slack) for ours, yours in pairs)


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
    if tuple(got.shape) != shape and _matches(got.reshape(shape), expected):  # the common case: one test
        return f"same values in the same order, wrong shape: got.reshape({_listed(shape)}) matches"
    if not _rearrangeable(got, expected):
        return None
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
    theirs, ranks = expected.values.flatten().sort()
    tolerance = expected.allowed_error.flatten()[ranks]  # each value's own rounding bound
    if bool((_misfit(mine, theirs, tolerance) <= 1).all()):
        shift = shifted(got, expected)
        return "same values in another order (they match once sorted)" + (f"; {shift}" if shift else "")
    return None


# Up to two rows and/or columns either way, smallest first: an offset off by one or two
# moves the whole output.
_SHIFTS = sorted(
    ((rows, cols) for rows in range(-2, 3) for cols in range(-2, 3) if rows or cols),
    key=lambda shift: (max(map(abs, shift)), abs(shift[0]) + abs(shift[1])),
)


def _overlap(by: int) -> tuple[slice, slice]:
    """The part of got, and of the reference, that line up along one dimension when got is
    the reference moved on by ``by``."""
    if by > 0:
        return slice(by, None), slice(None, -by)
    if by < 0:
        return slice(None, by), slice(-by, None)
    return slice(None), slice(None)


def _written(rows: slice, cols: slice) -> str:
    return ", ".join(
        f"{'' if part.start is None else part.start}:{'' if part.stop is None else part.stop}" for part in (rows, cols)
    )


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
    if int(telling.sum()) < 2:
        return None
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
        if (
            values.numel() >= max(2, unexplained)
            and bool((values != values[0]).any())
            and float(fit[told].mean()) <= 0.25
        ):
            how = " and ".join(_moves(rows, "down", "up", "row") + _moves(cols, "right", "left", "column"))
            return (
                f"shifted {how}: got[..., {_written(mine_rows, mine_cols)}] matches "
                f"expected[..., {_written(their_rows, their_cols)}]"
            )
    return None


def _border_masks(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output row and column: does the window there overlap padding?"""
    top, _, left, _ = case.paddings
    masks = []
    for size, kernel, stride, dilation, before, count in zip(
        (case.height, case.width),
        case.kernel,
        pair(case.stride),
        pair(case.dilation),
        (top, left),
        case.output_hw,
        strict=True,
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

    A shift that explains them is said instead. Otherwise every fact that holds of all of
    them is said, none picked over another: a last row whose windows overlap padding is
    both, and naming one would point away from the other. A single wrong element is given
    by its index, which says the rest.
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
    last = [
        name
        for name, size, dim in (("row", case.output_hw[0], -2), ("column", case.output_hw[1], -1))
        if size > 1 and not batched.narrow(dim, 0, size - 1).any()
    ]
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


def _held(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Whether each of ``values`` is a value of ``dtype``."""
    return values.to(dtype).to(values.dtype) == values


def _rounding_level(case: Case, expected: Expected, got: torch.Tensor, wrong: torch.Tensor) -> str | None:
    """The dtype, coarser than the case's, that the wrong elements were rounded to, if they
    show one: all of them values of it where the reference is not one (a result computed in
    it, then cast), and within its bound, (K + 2) * u * M. Within the bound alone is not
    enough: a loose (K + 2) * u * M holds an index bug's error too.

    The coarsest dtype that holds them is the one: bfloat16 values are float16 values too.
    A value of the next finer dtype is one of it by chance once in 2**bits (bits: the
    significand bits between the two; 3 from float16 to bfloat16), so it takes enough wrong
    elements for 20 bits of evidence.
    """
    mine, theirs = got[wrong], expected.values[wrong]
    own = unit_roundoff(case)
    roundoffs = sorted({UNIT_ROUNDOFF[name] for name in DTYPES} | {own})
    for name in sorted(DTYPES, key=UNIT_ROUNDOFF.__getitem__, reverse=True):  # coarsest first
        u, dtype = UNIT_ROUNDOFF[name], getattr(torch, name)
        if u <= own:
            return None
        if not bool(_held(mine, dtype).all()):
            continue
        bits = math.log2(u / max(v for v in roundoffs if v < u))
        bound = rounding_bound(dataclasses.replace(case, dtype=name)) * expected.magnitude[wrong]
        shown = mine.numel() * bits >= 20 and not bool(_held(theirs, dtype).any())
        return name if shown and bool(((mine - theirs).abs() <= bound).all()) else None
    return None


def _apart(mine: float, theirs: float) -> tuple[str, str]:
    """The two numbers with as many digits (six or more) as it takes to tell them apart."""
    for digits in range(6, 18):
        shown = f"{mine:.{digits}g}", f"{theirs:.{digits}g}"
        if shown[0] != shown[1]:
            break
    return shown


def worst(case: Case, expected: Expected, got: torch.Tensor, wrong: torch.Tensor) -> str:
    """The wrong element furthest outside its own rounding bound (the largest raw error may
    be within a bound of its own), and in plain words how far off it is: by how much of the
    size of the terms summed (M) an index bug is, or as rounding at a lower precision, or
    inexact where every partial sum is an exact integer."""
    beyond = torch.where(wrong, _misfit(got, expected.values, expected.allowed_error), -1.0)
    error = (got - expected.values).abs()
    at = int(torch.where(beyond == beyond.max(), error, -1.0).argmax())  # ties: a bound of 0, say
    mine, theirs = got.flatten()[at].item(), expected.values.flatten()[at].item()
    off, magnitude = abs(mine - theirs), expected.magnitude.flatten()[at].item()
    level = None if expected.exact else _rounding_level(case, expected, got, wrong)
    if expected.exact:
        how = f"not exact: off by {off:.3g} where every partial sum is an exact integer"
    elif level:
        how = f"off by {off:.3g}: {level}-level rounding in a {case.dtype} result"
    elif magnitude == 0:
        how = f"off by {off:.3g} where every term summed is zero"
    else:
        how = f"off by {off / magnitude:.2g}x the size of the terms summed (M)"
    shown = _apart(mine, theirs)
    return f"worst {shown[0]} vs {shown[1]}, {how}"
