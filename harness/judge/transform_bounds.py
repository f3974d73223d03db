"""How far a convolution computed through a transform (FFT, Winograd) may round, derived.

Direct summation rounds each output by at most (K + 2) * u * M, M the sum of the absolute
terms of that very output (`harness.judge.oracle`). A transform mixes every input of a channel
into every coefficient, so its error is norm-wise: an output near zero carries an error of
the size of the whole signal's rounding. Both bounds here are first order in u, per output
channel ``o`` of batch item ``n``, summed over the input channels ``c`` of its group
(README, "The oracle", has the derivation and what each is loose by):

- FFT: (3 * eps_N + C_g + 2) * u * sum_c ||x[n, c]||_2 * ||w[o, c]||_1, where eps_N =
  `FFT_STAGE` * log2(N) is an FFT's error relative to its 2-norm (Higham, *Accuracy and
  Stability of Numerical Algorithms*, 2nd ed., Theorem 24.2), N the transform's length:
  two forward transforms and one inverse, the products, and the sum over channels.
- Winograd F(m, r): (6 * alpha + 6 + C_g) * u * beta_h * beta_w * sum_c max|x[n, c]| *
  max|w[o, c]|, alpha = m + r - 1 points per tile and beta the growth of the transform
  matrices, ``max_i (|A^T| (|G| 1 * |B^T| 1))_i`` (`growth`): componentwise error of the
  three transforms, the products and the sum over channels, bounded by the largest entries.

Inputs that are not finite count as zero: they make the reference non-finite wherever they
reach, and the outputs that are still finite owe nothing to them.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import torch

from harness.model.case import Case, pair

# Higham's Theorem 24.2: a radix-2 FFT with twiddle factors accurate to mu errs by at most
# log2(N) * eta relative to its 2-norm, eta = mu + gamma_4 (sqrt(2) + mu), about 6.7u for
# twiddles accurate to u; rounded up for mixed-radix passes (radix 3, 4, 5, ...).
FFT_STAGE = 8
# An implementation may transform at any length from the padded input's (the circular
# correlation is right on every output kept) to a power of two above the full linear
# correlation's, and a Bluestein FFT inside doubles that again: up to this many times the
# full correlation's length, per dimension. Only log2(N) enters the bound.
FFT_LENGTH_SLACK = 4
# Winograd points in the order tiles use them (Lavin and Gray; NNPACK's F(6x6, 3x3) uses all
# seven), the point at infinity last; a tile has at most LARGEST_TILE points per dimension.
WINOGRAD_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2))
LARGEST_TILE = len(WINOGRAD_POINTS) + 1


def fft_length(case: Case) -> int:
    """The largest 2-D transform length N a correct FFT convolution of ``case`` may use."""
    top, bottom, left, right = case.paddings
    (kh, kw), (dh, dw) = case.kernel, pair(case.dilation)
    full = (case.height + top + bottom + dh * (kh - 1), case.width + left + right + dw * (kw - 1))
    return math.prod(FFT_LENGTH_SLACK * length for length in full)


def fft_terms(case: Case) -> float:
    """The FFT bound's multiple of u * sum_c ||x||_2 ||w||_1: the two forward transforms' and
    the inverse's relative error, under 3 for each complex product (sqrt(2) * gamma_2), and
    C_g - 1 for summing the channels."""
    return 3 * FFT_STAGE * math.log2(fft_length(case)) + case.in_channels // case.groups + 2


def _evaluation(points: tuple[Fraction, ...], size: int) -> list[list[Fraction]]:
    """Evaluating a polynomial with ``size`` coefficients at ``points`` and at infinity (its
    leading coefficient)."""
    return [[p**k for k in range(size)] for p in points] + [[Fraction(int(k == size - 1)) for k in range(size)]]


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Gauss-Jordan in exact fractions (Vandermonde matrices of at most 8 points)."""
    size = len(matrix)
    rows = [row + [Fraction(int(i == j)) for j in range(size)] for i, row in enumerate(matrix)]
    for column in range(size):
        pivot = next(r for r in range(column, size) if rows[r][column])
        rows[column], rows[pivot] = rows[pivot], rows[column]
        rows[column] = [value / rows[column][column] for value in rows[column]]
        for r in range(size):
            if r != column and rows[r][column]:
                factor = rows[r][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column], strict=True)]
    return [row[size:] for row in rows]


Matrix = tuple[tuple[Fraction, ...], ...]


@functools.cache
def toom_cook(m: int, r: int) -> tuple[Matrix, Matrix, Matrix]:
    """A^T (m x alpha), G (alpha x r) and B^T (alpha x alpha) of Winograd's F(m, r), so that
    ``A^T ((G g) * (B^T d))`` is the correlation of a tile ``d`` of alpha = m + r - 1 inputs
    with ``g``: the transpose of Toom-Cook's linear convolution (evaluate at the points,
    multiply, interpolate). Scaling rows of G against those of B^T changes no growth."""
    alpha = m + r - 1
    assert alpha <= LARGEST_TILE, f"F({m}, {r}) needs {alpha} points; there are {LARGEST_TILE}"
    points = WINOGRAD_POINTS[: alpha - 1]
    a_t = tuple(zip(*_evaluation(points, m), strict=True))
    b_t = tuple(zip(*_inverse(_evaluation(points, alpha)), strict=True))
    return a_t, tuple(map(tuple, _evaluation(points, r))), b_t


def tile_growth(m: int, r: int) -> Fraction:
    """beta of F(m, r): ``max_i (|A^T| (|G| 1 * |B^T| 1))_i``, what one tile's outputs sum in
    absolute value when every input and weight is 1 in absolute value."""
    a_t, g, b_t = toom_cook(m, r)
    inner = [sum(map(abs, g_row)) * sum(map(abs, b_row)) for g_row, b_row in zip(g, b_t, strict=True)]
    return max(sum((abs(a) * h for a, h in zip(row, inner, strict=True)), Fraction(0)) for row in a_t)


@functools.cache
def growth(r: int) -> float | None:
    """beta for a kernel of ``r`` taps: the largest over every tile F(m, r) of at most
    `LARGEST_TILE` points; None where no such tile exists (the kernel is summed directly)."""
    found = [tile_growth(m, r) for m in range(1, LARGEST_TILE - r + 2)]
    return float(max(found)) if found else None


def winograd_terms(case: Case) -> float | None:
    """The Winograd bound's multiple of u * sum_c max|x| max|w|, or None where the kernel is
    too large for any tile: each of the three transforms' two matrix products of at most alpha
    terms (2 * alpha), and 2 for its inexact entries, one rounding per product and C_g - 1 for
    summing the channels, times the growth of both dimensions."""
    (kh, kw), (dh, dw) = case.kernel, pair(case.dilation)
    betas = []
    for taps, dilation in ((kh, dh), (kw, dw)):
        # A dilated kernel is either a tile's r = its extent, or d^2 sub-problems of r = k taps.
        found = [beta for beta in map(growth, {taps, dilation * (taps - 1) + 1}) if beta is not None]
        if not found:
            return None
        betas.append(max(found))
    return (6 * LARGEST_TILE + 6 + case.in_channels // case.groups) * betas[0] * betas[1]


def _over_output(case: Case, per_item_and_channel: torch.Tensor) -> torch.Tensor:
    """An (N, C_out) tensor shaped to broadcast over the output: (N, C_out, 1, 1), or
    (C_out, 1, 1) for an unbatched case (N = 1)."""
    shaped = per_item_and_channel[..., None, None]
    return shaped if case.batch is not None else shaped[0]


def _per_output(case: Case, x: torch.Tensor, w: torch.Tensor, ord_x: float, ord_w: float) -> torch.Tensor:
    """sum over the group's input channels c of ||x[n, c]||_ord_x * ||w[o, c]||_ord_w, per
    batch item n and output channel o (`_over_output`)."""
    batched = x if case.batch is not None else x.unsqueeze(0)
    finite_x, finite_w = (t.nan_to_num(0.0, posinf=0.0, neginf=0.0) for t in (batched, w))
    per_group = case.in_channels // case.groups  # an empty batch leaves nothing for reshape to infer
    x_norms = torch.linalg.vector_norm(finite_x, ord_x, dim=(-2, -1)).reshape(len(batched), case.groups, per_group)
    w_norms = torch.linalg.vector_norm(finite_w, ord_w, dim=(-2, -1)).reshape(case.groups, -1, per_group)
    return _over_output(case, torch.einsum("ngc,goc->ngo", x_norms, w_norms).flatten(1))


def fft_error(case: Case, x: torch.Tensor, w: torch.Tensor, u: float) -> torch.Tensor:
    """The FFT bound for each (batch item, output channel), before the bias is added and the
    result rounded."""
    return fft_terms(case) * u * _per_output(case, x, w, 2, 1)


def winograd_error(case: Case, x: torch.Tensor, w: torch.Tensor, u: float) -> torch.Tensor:
    """The Winograd bound for each (batch item, output channel), before the bias is added and
    the result rounded; 0 where no tile fits the kernel (a library sums those directly, and
    the direct bound holds)."""
    terms = winograd_terms(case)
    return (terms or 0.0) * u * _per_output(case, x, w, math.inf, math.inf)


def spread(case: Case, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Per (batch item, output channel) (`_over_output`): whether anything it is computed
    from (that item's input channels of its group, its weights and bias) is NaN or
    infinite, which a transform spreads over all of it."""
    batched = x if case.batch is not None else x.unsqueeze(0)
    bad_inputs = ~batched.isfinite().flatten(2).all(2)  # (N, C_in)
    bad_groups = bad_inputs.reshape(len(batched), case.groups, case.in_channels // case.groups).any(2)
    bad = bad_groups.repeat_interleave(case.out_channels // case.groups, dim=1)  # (N, C_out)
    bad = bad | ~w.isfinite().flatten(1).all(1)
    if b is not None:
        bad = bad | ~b.isfinite()
    return _over_output(case, bad)
