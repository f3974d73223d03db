"""The transform bounds: each covers a correct transform's worst measured error, by a known
factor, and stays far enough below M in float32 that an index bug still shows."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import fft_conv
import pytest
import torch
import torch.nn.functional as F

from harness.generate.tensors import Inputs, make_inputs
from harness.judge.oracle import expect, for_algorithm
from harness.judge.transform_bounds import growth, tile_growth, toom_cook, winograd_terms
from harness.model.case import Case

Rows = list[list[int | Fraction]]

# Lavin and Gray's F(2, 3), "Fast algorithms for convolutional neural networks" (2016).
LAVIN_F23: tuple[Rows, Rows, Rows] = (
    [[1, 1, 1, 0], [0, 1, -1, -1]],
    [
        [1, 0, 0],
        [Fraction(1, 2), Fraction(1, 2), Fraction(1, 2)],
        [Fraction(1, 2), Fraction(-1, 2), Fraction(1, 2)],
        [0, 0, 1],
    ],
    [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
)


def _fractions(rows: Rows) -> list[list[Fraction]]:
    """The same numbers, all Fractions (the paper writes its integers as integers)."""
    return [[Fraction(value) for value in row] for row in rows]


def _tile_correlation(m: int, r: int, d: list[Fraction], g: list[Fraction]) -> list[Fraction]:
    a_t, g_matrix, b_t = toom_cook(m, r)
    kernel = [sum(a * b for a, b in zip(row, g, strict=True)) for row in g_matrix]
    data = [sum(a * b for a, b in zip(row, d, strict=True)) for row in b_t]
    return [sum((a * k * v for a, k, v in zip(row, kernel, data, strict=True)), Fraction(0)) for row in a_t]


@pytest.mark.parametrize("r", range(1, 9))
def test_toom_cook_tiles_compute_the_correlation_exactly(r: int) -> None:
    rng = random.Random(r)
    for m in range(1, 10 - r):
        d = [Fraction(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(m + r - 1)]
        g = [Fraction(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(r)]
        assert _tile_correlation(m, r, d, g) == [sum(d[i + k] * g[k] for k in range(r)) for i in range(m)]


def test_the_growth_of_lavins_f23_is_8_however_its_rows_are_scaled() -> None:
    a_t, g, b_t = map(_fractions, LAVIN_F23)
    inner = [sum(map(abs, row_g)) * sum(map(abs, row_b)) for row_g, row_b in zip(g, b_t, strict=True)]
    assert max(sum(abs(a) * h for a, h in zip(row, inner, strict=True)) for row in a_t) == 8
    assert tile_growth(2, 3) == 8


def test_growth_takes_the_largest_tile_of_at_most_eight_points() -> None:
    assert growth(3) == float(tile_growth(6, 3)) == max(float(tile_growth(m, 3)) for m in range(1, 7))
    assert growth(8) == float(tile_growth(1, 8)) and growth(9) is None
    assert (
        winograd_terms(Case(batch=1, in_channels=1, out_channels=1, groups=1, height=9, width=9, kernel=(9, 3))) is None
    )  # summed directly: the direct bound holds


def _winograd_conv2d(x: torch.Tensor, w: torch.Tensor, m: int, padding: int) -> torch.Tensor:
    """Winograd F(m x m, kh x kw) in x's dtype (m smaller where the tile would pass 8 points):
    stride 1, no dilation, groups or bias."""
    kh, kw = w.shape[-2:]
    m_h, m_w = min(m, 9 - kh), min(m, 9 - kw)
    (at_h, g_h, bt_h), (at_w, g_w, bt_w) = (
        [torch.tensor([[float(v) for v in row] for row in matrix], dtype=x.dtype) for matrix in toom_cook(tile, r)]
        for tile, r in ((m_h, kh), (m_w, kw))
    )
    x = F.pad(x, (padding,) * 4)
    out_h, out_w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
    tiles_h, tiles_w = -(-out_h // m_h), -(-out_w // m_w)
    x = F.pad(x, (0, tiles_w * m_w + kw - 1 - x.shape[-1], 0, tiles_h * m_h + kh - 1 - x.shape[-2]))
    tiles = x.unfold(2, m_h + kh - 1, m_h).unfold(3, m_w + kw - 1, m_w)  # (N, C, tiles_h, tiles_w, alphas)
    data = bt_h @ tiles @ bt_w.T
    kernel = g_h @ w @ g_w.T
    products = torch.einsum("nctsij,ocij->notsij", data, kernel)
    out = at_h @ products @ at_w.T  # (N, C_out, tiles_h, tiles_w, m_h, m_w)
    return out.permute(0, 1, 2, 4, 3, 5).reshape(*out.shape[:2], tiles_h * m_h, tiles_w * m_w)[..., :out_h, :out_w]


def _random_case(rng: random.Random, dtype: str, data: str, transform: str) -> Case:
    """A random problem: every argument for the FFT; stride 1, no dilation, groups or bias
    for the Winograd helper."""
    fft = transform == "fft"
    groups = rng.choice([1, 1, 2, 3]) if fft else 1
    dilation = rng.choice([1, 1, 2]) if fft else 1
    kh, kw = rng.randint(1, 5), rng.randint(1, 5)
    return Case(
        batch=rng.randint(1, 2),
        in_channels=groups * rng.randint(1, 4),
        out_channels=groups * rng.randint(1, 3),
        groups=groups,
        height=rng.randint(dilation * (kh - 1) + 1, 20),
        width=rng.randint(dilation * (kw - 1) + 1, 20),
        kernel=(kh, kw),
        stride=rng.choice([1, 1, 2]) if fft else 1,
        padding=rng.randint(0, 2),
        dilation=dilation,
        bias=fft and rng.random() < 0.5,
        dtype=dtype,
        data=data,
        seed=rng.randrange(2**32),
    )


def _by_fft(case: Case, inputs: Inputs) -> torch.Tensor:
    out: torch.Tensor = fft_conv.conv2d(
        inputs.input, inputs.weight, inputs.bias, case.stride, case.padding, case.dilation, case.groups
    )
    return out


def _worst(transform: str, dtype: str, data: str, count: int, m: int = 0) -> tuple[float, float]:
    """Over ``count`` random cases: the largest error of a correct ``transform`` as a fraction
    of the bound, and the median (over cases) of the bound as a fraction of M."""
    rng = random.Random(f"{transform}-{dtype}-{data}-{m}")
    worst, loose = 0.0, []
    for _ in range(count):
        case = _random_case(rng, dtype, data, transform)
        inputs = make_inputs(case)
        expected = for_algorithm(case, inputs, expect(case, inputs), transform)
        got = (
            _by_fft(case, inputs)
            if transform == "fft"
            else _winograd_conv2d(inputs.input, inputs.weight, m, case.padding)  # type: ignore[arg-type]
        )
        worst = max(worst, float(((got.double() - expected.values).abs() / expected.allowed_error).max()))
        loose.append(float((expected.allowed_error / expected.magnitude).median()))
    return worst, sorted(loose)[len(loose) // 2]


# Measured on these cases (fixed by their seeds), for the README: the worst error of a
# correct transform as a fraction of its bound, and how much of M the bound is.
@pytest.mark.parametrize("dtype, data", [("float32", "uniform"), ("float32", "int"), ("float64", "uniform")])
def test_the_fft_bound_covers_a_correct_fft_convolution_and_is_within_a_known_factor_of_it(
    dtype: str, data: str
) -> None:
    worst, bound_over_m = _worst("fft", dtype, data, 300)
    assert 1 / 1000 < worst <= 1, worst  # the worst error is within 1000x of the bound
    if dtype == "float32":
        assert bound_over_m < 1e-3  # an index bug, off by O(M), is far outside it


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_winograd_bound_covers_every_tile_up_to_f6x6_and_is_within_a_known_factor_of_it(m: int, dtype: str) -> None:
    worst, bound_over_m = _worst("winograd", dtype, "uniform", 200, m)
    # Loosest for small tiles: the bound is the largest tile's, whichever the library uses.
    assert 1 / 10_000 < worst <= 1, worst
    if dtype == "float32":
        assert bound_over_m < 2e-2


def test_a_lower_precision_transform_is_outside_the_float64_bound() -> None:
    rng = random.Random(0)
    case = _random_case(rng, "float64", "uniform", "fft")
    inputs = make_inputs(case)
    expected = for_algorithm(case, inputs, expect(case, inputs), "fft")
    single = Inputs(inputs.input.float(), inputs.weight.float(), None if inputs.bias is None else inputs.bias.float())
    in_float32 = _by_fft(case, single).double()
    assert ((in_float32 - expected.values).abs() > expected.allowed_error).any()
    assert math.isfinite(float(expected.allowed_error.max()))
