"""What a correct implementation returns for a case, and how far from it rounding may go.

The reference is what ``torch.nn.Conv2d`` computes, evaluated in float64 on the CPU: its
forward pass is ``F.conv2d`` with the module's weight, bias and arguments (zero padding),
and the reference calls that function through a reference taken when this module was
imported, so that an implementation replacing ``F.conv2d`` in this process cannot change
the answer it is judged against (`harness.execute.process_state` puts such a change back too).

The tolerance is derived, not guessed: one output element sums K = C_in/groups * kh * kw
products plus a bias, so any summation order in the case dtype is within
(K + 2) * (u * M + eta) of the exact value, where u is the dtype's unit roundoff,
M = conv(|x|, |w|) + |b| (computed in float64), and eta the dtype's smallest subnormal (what
a result near underflow may be off by, whatever M is). An index bug is off by O(M);
rounding by O(K * u * M). With ``int`` data every partial sum is exact and the tolerance
is zero. On CUDA, float32 matmuls and convolutions may run in TF32 (10-bit
mantissa) when torch's switches allow it; the reference never does (it is float64 on the
CPU), so the tolerance uses TF32's unit roundoff there instead of float32's.

That bound is for direct summation. An implementation that declares another algorithm
(`Capabilities.algorithm`) is judged against `for_algorithm`'s expectation instead: the
norm-wise bound of its transform (`harness.judge.transform_bounds`), never exact, and a transform
may spread a NaN or an infinity over every output it mixes it into.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from harness.generate.tensors import INT_RANGE, Inputs
from harness.judge import transform_bounds
from harness.model.case import Case

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "float16": 2.0**-11, "bfloat16": 2.0**-8, "tf32": 2.0**-11}
SMALLEST_SUBNORMAL = {"float32": 2.0**-149, "float64": 2.0**-1074, "float16": 2.0**-24, "bfloat16": 2.0**-133}
# A check where most outputs are exactly zero by construction could not have seen a bug.
MISTRUST_ZERO_FRACTION = 0.5

CONV2D = F.conv2d  # taken at import: see the module docstring


@dataclass(frozen=True)
class Expected:
    """The reference output (float64), the error each element may have, and the shape/dtype."""

    values: torch.Tensor
    allowed_error: torch.Tensor
    magnitude: torch.Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    exact: bool
    mistrusted: bool  # most outputs are zero by construction: the check could see little
    # None: NaN and each infinity exactly where the reference has them (direct summation).
    # For a transform: where the reference is finite but NaN is right too (what the output
    # element is computed from holds a NaN or an infinity); any NaN or infinity is right
    # where the reference has one.
    spread: torch.Tensor | None = None


def convolve(case: Case, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """The case's convolution of ``x`` by ``w`` and ``b``, as Conv2d computes it."""
    with warnings.catch_warnings():
        # torch warns that 'same' padding with an even kernel copies the input: true, and
        # harmless here; and an implementation's warning filters must not turn it into an error.
        warnings.simplefilter("ignore")
        return CONV2D(x, w, b, case.stride, case.padding, case.dilation, case.groups)


def tf32_allowed() -> bool:
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def unit_roundoff(case: Case) -> float:
    """u for the case's dtype, as the case's device may compute it."""
    if case.device == "cuda" and case.dtype == "float32" and tf32_allowed():
        return UNIT_ROUNDOFF["tf32"]
    return UNIT_ROUNDOFF[case.dtype]


def is_exact(case: Case, reduction_length: int | None = None) -> bool:
    """Whether every partial sum of ``reduction_length`` (default: the case's K) products of
    its integer data, plus a bias, is representable in its dtype."""
    if case.data != "int":
        return False
    length = case.reduction_length if reduction_length is None else reduction_length
    largest = length * INT_RANGE * INT_RANGE + INT_RANGE
    return largest < 1 / unit_roundoff(case)  # 2**p, p the significand's bits


def rounding_bound(case: Case, reduction_length: int | None = None) -> float:
    """How far a sum of ``reduction_length`` (default: the case's K) products plus a bias
    may round, as a multiple of M: (K + 2) * u, or 0 where every partial sum is exact."""
    length = case.reduction_length if reduction_length is None else reduction_length
    return 0.0 if is_exact(case, length) else (length + 2) * unit_roundoff(case)


def allowed_error(case: Case, magnitude: torch.Tensor, reduction_length: int | None = None) -> torch.Tensor:
    """How far each element may round: (K + 2) * (u * M + eta), where eta, the dtype's
    smallest subnormal, is the absolute error underflow adds (a float16 result near 1e-5
    is off by up to 3e-8, however small u * M is); 0 where every partial sum is exact."""
    length = case.reduction_length if reduction_length is None else reduction_length
    bound = rounding_bound(case, length)
    if not bound:
        return torch.zeros_like(magnitude)
    return bound * magnitude + (length + 2) * SMALLEST_SUBNORMAL[case.dtype]


def _in_float64(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    # Float64 copies with standard strides: torch 2.13's oneDNN path segfaults on some
    # channels_last-strided weights (README, "A torch bug"), even 1x1 ones that
    # .contiguous() leaves as they are; and float64 is the reference we want anyway.
    x, w = (
        t.detach().cpu().to(torch.float64, memory_format=torch.contiguous_format) for t in (inputs.input, inputs.weight)
    )
    return x, w, None if inputs.bias is None else inputs.bias.detach().cpu().to(torch.float64)


def _mistrusted(uninformative: torch.Tensor) -> bool:
    return bool(uninformative.numel()) and float(uninformative.double().mean()) > MISTRUST_ZERO_FRACTION


def expect(case: Case, inputs: Inputs) -> Expected:
    """Run the reference once per case; every implementation is judged against it (as
    `for_algorithm` makes it for its algorithm)."""
    x, w, b = _in_float64(inputs)
    with torch.no_grad():
        values = convolve(case, x, w, b)
        magnitude = convolve(case, x.abs(), w.abs(), None if b is None else b.abs())
    exact = is_exact(case)
    # Where M is infinite or NaN the reference is too, and the bound would be infinite,
    # vouching for any value (even a finite one where the reference has an inf): NaN makes
    # every comparison with it false, so those elements are judged by where NaN and inf
    # are, and nothing else.
    allowed = torch.where(magnitude.isfinite(), allowed_error(case, magnitude), torch.nan)
    # Mostly zeros by construction, or mostly NaN/inf: the check could see little.
    mistrusted = _mistrusted((magnitude == 0) | ~values.isfinite())
    return Expected(values, allowed, magnitude, tuple(values.shape), getattr(torch, case.dtype), exact, mistrusted)


def transform_terms(case: Case, algorithm: str) -> float:
    """How many roundings, each up to the smallest subnormal near underflow, the algorithm's
    bound counts (the transforms' counts times their growth)."""
    fft = transform_bounds.fft_terms(case) if algorithm in ("fft", "any") else 0.0
    winograd = (transform_bounds.winograd_terms(case) or 0.0) if algorithm in ("winograd", "any") else 0.0
    return max(case.reduction_length + 2, fft, winograd)


def for_algorithm(case: Case, inputs: Inputs, expected: Expected, algorithm: str) -> Expected:
    """``expected`` (from `expect`, for ``inputs``) as an implementation of ``algorithm`` is judged.

    ``direct``: as it is. A transform ("fft", "winograd"; "any": the loosest of them) may
    round each output by its own norm-wise bound or by the direct bound, whichever is larger
    (a library falls back to direct summation for shapes its transform does not suit), plus
    u * M for adding the bias and rounding the result; no exactness is claimed for ``int``
    data; and NaN may appear wherever what an output is computed from is not finite.
    """
    if algorithm == "direct":
        return expected
    x, w, b = _in_float64(inputs)
    u, magnitude = unit_roundoff(case), expected.magnitude
    transform = torch.zeros(())
    if algorithm in ("fft", "any"):
        transform = transform_bounds.fft_error(case, x, w, u)
    if algorithm in ("winograd", "any"):
        transform = torch.maximum(transform, transform_bounds.winograd_error(case, x, w, u))
    rounding = torch.maximum((case.reduction_length + 2) * u * magnitude, transform + 2 * u * magnitude)
    underflow = transform_terms(case, algorithm) * SMALLEST_SUBNORMAL[case.dtype]
    allowed = torch.where(magnitude.isfinite(), rounding + underflow, torch.nan)
    spread = transform_bounds.spread(case, x, w, b).expand(expected.shape)
    # An output that may be NaN says nothing when it is, nor one that may round by as much
    # as its terms add up to (float16 and bfloat16 transforms): an index bug would pass.
    mistrusted = _mistrusted((magnitude == 0) | ~expected.values.isfinite() | spread | (allowed >= magnitude))
    return replace(expected, allowed_error=allowed, exact=False, mistrusted=mistrusted, spread=spread)
