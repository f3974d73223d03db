"""A second reference that runs no torch kernel: conv2d by direct summation in NumPy.

The oracle (`harness.judge.oracle`) is torch's own float64 ``F.conv2d``. If that kernel is wrong,
every correct implementation fails against it, and one with the same bug passes: the
harness would report torch's bug as theirs. This module computes the same convolution
from its definition instead: windows over the zero-padded input
(``sliding_window_view``), one product per term and their sum per output element, per
group, plus the bias. The sum is NumPy's own ``einsum`` loop (no ``optimize``: that would
hand it to ``tensordot`` and the BLAS torch's im2col path may share). The only torch code
it runs is reading the tensors' values (``.to(float64)``, a data move).

``int`` data are summed in integers, exactly: in int64 while no partial sum can leave it
(bounded from the values themselves), in Python ints beyond. Any other data in float64,
so that NaN and infinities arise as direct summation makes them (0 * inf is NaN, +inf
plus -inf is NaN), wherever torch's float64 must make them too.

Its gradients (`gradients`: of ``sum(output * g)`` by input, weight and bias, what
`harness.judge.gradients` takes from torch's autograd) come from the same windows: a weight's
is its tap's pixels times ``g`` summed over the windows, an input pixel's is ``g`` times the
weights of every window and tap that read it (a transposed convolution), added into a
padded gradient through those windows, and the bias's is ``g`` summed.

`cross_check` compares torch's float64 reference with this one (`cross_check_gradients`,
torch's float64 gradients, each with its own K and M). Each is within
(K + 2) * (u * M + eta) of the exact sum, u and eta float64's (`harness.judge.oracle`'s bound,
M computed here too), so two correct ones may differ by twice that; and by nothing at
all on ``int`` data while every partial sum fits float64's significand. Beyond that, the
finding is "torch's reference is wrong", never a failure of the implementation judged
against it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from harness.generate.tensors import Inputs
from harness.judge.gradients import WITH_RESPECT_TO, reduction_lengths
from harness.judge.oracle import allowed_error, is_exact
from harness.model.case import Case, pair

INT64_LIMIT = 2**63  # an int64 sum of products stays below this in magnitude, or is summed in Python ints
_PYTHON_INTS = np.frompyfunc(int, 1, 1)  # an object array of Python ints, exact at any size


@dataclass(frozen=True)
class CrossCheck:
    """Whether torch's float64 reference and the independent one agree, and where they
    are furthest apart (``index`` None: no element to compare)."""

    agree: bool
    index: tuple[int, ...] | None
    torch_value: float
    independent_value: float
    allowed: float  # how far apart they may be there; NaN where only NaN/inf placement counts
    description: str


def _values(tensor: torch.Tensor) -> NDArray[np.float64]:
    return tensor.detach().cpu().to(torch.float64).numpy()


def _batched(case: Case, a: NDArray[Any]) -> NDArray[Any]:
    """An input or output array with its batch axis, one item for an unbatched case."""
    return a if case.batch is not None else a[np.newaxis]


def _grouped(case: Case, a: NDArray[Any]) -> NDArray[Any]:
    """A batched (N, C, H, W) array as (N, groups, C / groups, H, W): a view of a contiguous one
    (`_windows` writes through it)."""
    n, channels, height, width = a.shape
    return a.reshape(n, case.groups, channels // case.groups, height, width)


def _padded(case: Case, batched: NDArray[Any]) -> NDArray[Any]:
    """A zero-padded copy of a batched input, as torch pads it (`Case.paddings`)."""
    top, bottom, left, right = case.paddings
    return np.pad(batched, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _windows(case: Case, padded: NDArray[Any], writeable: bool = False) -> NDArray[Any]:
    """The window each output element reads, over a padded input or anything of its shape:
    (N, groups, C / groups, Ho, Wo, kh, kw), a view of ``padded`` (C-contiguous). Element
    [n, g, c, y, x, i, j] is the pixel kernel tap (i, j) meets at output (y, x). One tap's
    pixels, ``[..., i, j]``, are distinct pixels, so a ``writeable`` view may be added into
    one tap at a time."""
    (sh, sw), (dh, dw), (kh, kw) = pair(case.stride), pair(case.dilation), case.kernel
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    windows = sliding_window_view(_grouped(case, padded), span, axis=(3, 4), writeable=writeable)
    return windows[:, :, :, ::sh, ::sw, ::dh, ::dw]


def _kernels(case: Case, w: NDArray[Any]) -> NDArray[Any]:
    """The weight as (groups, out_channels / groups, C / groups, kh, kw)."""
    return w.reshape(case.groups, case.out_channels // case.groups, *w.shape[1:])


def _direct(case: Case, x: NDArray[Any], w: NDArray[Any], b: NDArray[Any] | None) -> NDArray[Any]:
    """The case's convolution by direct summation, in the arrays' dtype (float64, int64 or
    object), shaped as Conv2d returns it."""
    windows, kernels = _windows(case, _padded(case, _batched(case, x))), _kernels(case, w)
    n, g, _, ho, wo, kh, kw = windows.shape
    # One kernel position at a time, its pixels copied together: each einsum sums over the
    # group's channels with output pixels in its inner loop. Measured on ResNet-50's 3x3
    # layers, one einsum over all three sums was 5x slower, and summing strided views 2x.
    total = np.zeros((n, g, case.out_channels // g, ho, wo), dtype=np.result_type(x, w))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf made as direct summation makes them
        for i, j in itertools.product(range(kh), range(kw)):
            pixels = np.ascontiguousarray(windows[..., i, j])
            total += np.einsum("ngchw,goc->ngohw", pixels, kernels[..., i, j])
        out = total.reshape(n, case.out_channels, ho, wo)
        if b is not None:
            out = out + b[:, np.newaxis, np.newaxis]
    return out if case.batch is not None else out[0]


def _direct_gradients(
    case: Case, x: NDArray[Any], w: NDArray[Any], upstream: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """d(sum((conv(x, w) + b) * upstream)) by x, w and b, by direct summation over the
    forward's own windows, in the arrays' dtype. Output (y, x) read tap (i, j)'s pixel of
    its window times w[o, c, i, j], so:

    - that pixel's gradient collects upstream[n, o, y, x] * w[o, c, i, j], over every output
      channel o of its group and every window and tap that read it (a transposed
      convolution): added into a zero-padded gradient through the same windows, one tap at
      a time, then the padding cropped off;
    - w[o, c, i, j]'s collects upstream[n, o, y, x] times that pixel, over every batch item
      and output position;
    - b[o]'s collects upstream[n, o, y, x] over every batch item and output position.
    """
    batched = _batched(case, x)
    padded = _padded(case, batched)
    windows, kernels = _windows(case, padded), _kernels(case, w)
    grouped = _grouped(case, _batched(case, upstream))  # (N, groups, O / groups, Ho, Wo)
    kind = np.result_type(x, w, upstream)
    collected = np.zeros(padded.shape, dtype=kind)  # the padded input's gradient
    into = _windows(case, collected, writeable=True)
    weight = np.zeros(kernels.shape, dtype=kind)
    for i, j in itertools.product(range(case.kernel[0]), range(case.kernel[1])):
        into[..., i, j] += np.einsum("ngohw,goc->ngchw", grouped, kernels[..., i, j])
        weight[..., i, j] = np.einsum("ngohw,ngchw->goc", grouped, np.ascontiguousarray(windows[..., i, j]))
    top, _, left, _ = case.paddings
    height, width = batched.shape[2:]
    input_ = collected[:, :, top : top + height, left : left + width]
    bias = grouped.sum(axis=(0, 3, 4)).reshape(case.out_channels)
    return input_ if case.batch is not None else input_[0], weight.reshape(w.shape), bias


def _largest(case: Case, arrays: Sequence[NDArray[np.float64]]) -> list[int]:
    """The largest magnitude in each of a case's ``int`` data arrays, refusing values that
    are not integers."""
    if not all(np.array_equal(a, np.trunc(a)) for a in arrays):  # NaN and inf fail too
        raise ValueError(f"case {case.id} has int data, but its inputs hold values that are not integers")
    return [int(np.abs(a).max()) if a.size else 0 for a in arrays]


def _as_int(a: NDArray[np.float64], bound: int) -> NDArray[Any]:
    """Integer values as int64 where no partial sum made from them can reach ``bound`` (the
    largest possible one) beyond int64, as Python ints (an object array) where one might."""
    # Each value is an integer float64 holds exactly, and so does int64 when the sums fit.
    return a.astype(np.int64) if bound < INT64_LIMIT else np.asarray(_PYTHON_INTS(a), dtype=object)


def _exactly(case: Case, x: NDArray[np.float64], w: NDArray[np.float64], b: NDArray[np.float64] | None) -> NDArray[Any]:
    """Integer data summed in integers."""
    largest = _largest(case, [a for a in (x, w, b) if a is not None])
    bound = case.reduction_length * largest[0] * largest[1] + (largest[2] if b is not None else 0)
    return _direct(case, _as_int(x, bound), _as_int(w, bound), None if b is None else _as_int(b, bound))


def reference(case: Case, inputs: Inputs) -> NDArray[np.float64]:
    """The case's conv2d output computed without torch, as float64, in Conv2d's shape
    (``int`` data: the exact integer sums, rounded once to float64)."""
    x, w = _values(inputs.input), _values(inputs.weight)
    b = None if inputs.bias is None else _values(inputs.bias)
    if case.data == "int":
        return _exactly(case, x, w, b).astype(np.float64)
    return _direct(case, x, w, b)


def gradients(case: Case, inputs: Inputs, upstream: torch.Tensor) -> tuple[NDArray[np.float64] | None, ...]:
    """The gradients of sum(conv2d(input, weight, bias) * upstream) by input, weight and bias
    (None without a bias) computed without torch, as float64 (``int`` data: the exact integer
    sums, rounded once): what `harness.judge.gradients` gets from torch's autograd."""
    x, w, g = (_values(t) for t in (inputs.input, inputs.weight, upstream))
    if case.data == "int":
        # Sums of products of the upstream gradient with weights (an input pixel's) or with
        # pixels (a weight's), and of the upstream gradient alone (the bias's).
        largest_x, largest_w, largest_g = _largest(case, [x, w, g])
        into_input, per_output, _ = reduction_lengths(case)
        bound = max(into_input * largest_g * largest_w, per_output * largest_g * max(largest_x, 1))
        found = tuple(a.astype(np.float64) for a in _direct_gradients(case, *(_as_int(a, bound) for a in (x, w, g))))
    else:
        found = _direct_gradients(case, x, w, g)
    return found if inputs.bias is not None else (*found[:2], None)


def _magnitude(case: Case, inputs: Inputs) -> NDArray[np.float64]:
    """M = conv(|x|, |w|) + |b|, in float64, by the same direct summation."""
    b = None if inputs.bias is None else np.abs(_values(inputs.bias))
    return _direct(case, np.abs(_values(inputs.input)), np.abs(_values(inputs.weight)), b)


def _twice_the_bound(case64: Case, magnitude: NDArray[np.float64], length: int | None = None) -> NDArray[np.float64]:
    """How far two correct float64 sums of ``length`` (default: the case's K) products may
    be apart, given their M; NaN where M is not finite (only NaN/inf placement counts)."""
    allowed = 2 * allowed_error(case64, torch.from_numpy(magnitude), length).numpy()
    allowed[~np.isfinite(magnitude)] = np.nan
    return allowed


def cross_check(case: Case, inputs: Inputs, torch_reference: torch.Tensor) -> CrossCheck:
    """Whether ``torch_reference`` (torch's float64 conv2d of ``inputs``, as `oracle.expect`
    computes it) is a correct direct summation, judged against `reference`: NaN and each
    infinity in the same places, and every other element within twice the float64 bound
    (exactly equal where the case's float64 sums are exact)."""
    mine = reference(case, inputs)
    case64 = replace(case, dtype="float64", device="cpu")
    exact = is_exact(case64)  # int data
    allowed = np.zeros_like(mine) if exact else _twice_the_bound(case64, _magnitude(case, inputs))
    return _compared("torch's float64 reference", _values(torch_reference), mine, allowed, exact)


def cross_check_gradients(
    case: Case, inputs: Inputs, upstream: torch.Tensor, torch_gradients: Sequence[torch.Tensor | None]
) -> dict[str, CrossCheck]:
    """`cross_check` for gradients: each of ``torch_gradients`` (torch's float64 autograd's,
    by input, weight and bias, as `harness.judge.gradients.expect_gradients` makes them for
    ``upstream``) judged against `gradients`, by name, within twice the float64 bound of its
    own K and M (exactly where its float64 sums are exact)."""
    mine = gradients(case, inputs, upstream)
    case64 = replace(case, dtype="float64", device="cpu")
    lengths = reduction_lengths(case)
    exact = [is_exact(case64, length) for length in lengths]
    magnitudes: Sequence[NDArray[np.float64] | None] = [None] * len(lengths)
    if not all(exact):
        absolute = (np.abs(_values(t)) for t in (inputs.input, inputs.weight, upstream))
        magnitudes = _direct_gradients(case, *absolute)
    checks = {}
    for name, theirs, ours, length, magnitude, sure in zip(
        WITH_RESPECT_TO, torch_gradients, mine, lengths, magnitudes, exact, strict=True
    ):
        assert (theirs is None) == (ours is None), "a bias gradient on one side only"
        if theirs is None or ours is None:
            continue
        allowed = np.zeros_like(ours) if sure or magnitude is None else _twice_the_bound(case64, magnitude, length)
        checks[name] = _compared(f"torch's float64 {name} gradient", _values(theirs), ours, allowed, sure)
    return checks


def _compared(
    subject: str, theirs: NDArray[np.float64], mine: NDArray[np.float64], allowed: NDArray[np.float64], exact: bool
) -> CrossCheck:
    """Whether ``theirs`` (torch's, named ``subject``) agrees with ``mine`` (direct
    summation): the same shape, NaN and each infinity in the same places, and every other
    element within ``allowed`` (NaN: only placement counts)."""
    if theirs.shape != mine.shape:
        return CrossCheck(
            False, None, np.nan, np.nan, np.nan, f"{subject} has shape {theirs.shape}, direct summation {mine.shape}"
        )
    if not mine.size:
        return CrossCheck(
            True, None, np.nan, np.nan, np.nan, f"{subject} and direct summation are both empty, of shape {mine.shape}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf where both are the same infinity; x / 0
        misplaced = (np.isnan(theirs) != np.isnan(mine)) | ((np.isinf(theirs) | np.isinf(mine)) & (theirs != mine))
        difference = np.abs(theirs - mine)
        # How many times the allowed difference each element is (0 / 0: none of it).
        share = np.where(
            np.isfinite(theirs) & np.isfinite(mine) & ~np.isnan(allowed) & (difference > 0), difference / allowed, 0.0
        )
    worst = np.argwhere(misplaced)[0] if misplaced.any() else np.unravel_index(np.argmax(share), share.shape)
    index = tuple(int(i) for i in worst)
    agree = bool(not misplaced.any() and share[index] <= 1)
    t, m, a = float(theirs[index]), float(mine[index]), float(allowed[index])
    bound = "exactly" if exact else "within twice the float64 bound"
    if agree:
        used = "" if exact else f", {share[index]:.2g} of the {a:.3g} allowed"
        description = (
            f"{subject} agrees with direct summation {bound} on {mine.size} elements "
            f"(nearest the limit at {index}: {t!r} and {m!r}{used})"
        )
    else:
        description = (
            f"{subject} is wrong at {index}: {t!r} where direct summation gives {m!r} "
            f"(they must agree {bound}{'' if exact else f', {a:.3g} there'})"
        )
    return CrossCheck(agree, index, t, m, a, description)
