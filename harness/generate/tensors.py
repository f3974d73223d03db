"""The tensors of a case, made from its seed the same way on every torch version and machine.

torch's random generators may change between releases, and a corpus case must replay
bit-for-bit years later, so data come from a fixed integer hash of (seed, tensor, index)
computed with exact int64 arithmetic. Three kinds of data:

- ``uniform``: values in [-1, 1] with a full 53-bit mantissa, rounded to the case dtype,
  so that computing in a lower precision than asked shows up;
- ``int``: small integers, so every partial sum is exact and a correct result matches the
  reference exactly (benchdnn's trick);
- ``special``: ``uniform`` with special values (0, +-inf, NaN, huge, tiny) in one input
  element in eight (at least one), so that a NaN swallowed or an inf created shows up.

Then the layout of input and weight (the weight's may be a layout of its own, one that
keeps its values): ``channels_last``; ``strided`` (every other element
of a wider buffer); ``transposed`` (H and W swapped in memory, a transposed view) - all
with the same values; or ``expanded``: dim 0 (the batch, or the channels of an unbatched
input; the weight's output channels) is a stride-0 broadcast of its first slice, so its
values repeat that slice: an implementation that writes into its input, or assumes every
element has its own memory, meets the tensors broadcasting really produces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.model.case import Case

GENERATOR = "hash32-v2"  # named in corpus files; change the name if the bits ever change
INT_RANGE = 4  # ``int`` data lie in [-INT_RANGE, INT_RANGE]
# Huge and tiny stay finite and normal in float32 and their sums cannot overflow here.
SPECIAL_VALUES = (0.0, math.inf, -math.inf, math.nan, 1e30, -1e30, 1e-30)
FLOAT16_HUGE = 1e3  # float16 tops out at 65504: its huge values must stay finite when summed
_MASK32 = 0xFFFFFFFF
# Multipliers below 2**31 keep every product of a 32-bit value inside int64.
_ROUNDS = (0x2C1B3C6D, 0x297A2D39, 0x7FEB352D)


@dataclass(frozen=True)
class Inputs:
    """What an implementation is called with: input, weight and (optional) bias."""

    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None

    def clone(self) -> Inputs:
        """A copy with the same strides: Tensor.clone() would make a strided view contiguous."""
        bias = None if self.bias is None else _strided_copy(self.bias)
        return Inputs(_strided_copy(self.input), _strided_copy(self.weight), bias)

    def in_layout(self, layout: str, weight_layout: str = "same") -> Inputs:
        """A copy in memory layout ``layout``, the weight in ``weight_layout`` unless that is
        "same" (the bias, 1-D, is just copied)."""
        weight = layout if weight_layout == "same" else weight_layout
        return Inputs(
            lay_out(self.input, layout), lay_out(self.weight, weight), None if self.bias is None else self.bias.clone()
        )

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.input, self.weight, self.bias) if t is not None]


def _strided_copy(tensor: torch.Tensor) -> torch.Tensor:
    if 0 in tensor.stride() and tensor.numel():
        # Stride-0 (expanded) dims share memory, which copy_ refuses to write into: copy
        # one slice and expand that.
        one = tensor[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in tensor.stride())]
        return one.clone(memory_format=torch.contiguous_format).expand(tensor.shape)
    copy = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, device=tensor.device)
    return copy.copy_(tensor)


def _hash32(index: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    x = (index ^ key) & _MASK32
    for multiplier in _ROUNDS:
        x = ((x ^ (x >> 16)) * multiplier) & _MASK32
    return x ^ (x >> 15)


def values_from_seed(seed: int, data: str, dtype: torch.dtype, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """Values for each of ``shapes`` (input, weight, bias: their roles, in that order).

    Each tensor's values depend on the seed, its role and each element's index in it, and
    on nothing else: dropping the bias or changing the weight's shape leaves the input as
    it was, so that a feature set back while attributing a failure changes that feature
    and no data. Element i takes the hashes of 2i and 2i + 1 under its tensor's key: a
    tensor's first values do not depend on its size either. One hash pass for all three
    (each op costs microseconds).
    """
    sizes = [math.prod(shape) for shape in shapes]
    index = torch.cat([torch.arange(2 * size) for size in sizes])
    key = torch.cat(
        [torch.full((2 * size,), (seed * 0x9E3779B1 + role * 0x632BE5AB) & _MASK32) for role, size in enumerate(sizes)]
    )
    high, low = _hash32(index, key).view(-1, 2).unbind(1)
    if data == "int":
        values = (high % (2 * INT_RANGE + 1) - INT_RANGE).to(torch.float64)
    else:
        mantissa = (high >> 5) * 2**26 + (low >> 6)  # 53 random bits
        values = mantissa.to(torch.float64) * 2.0**-52 - 1.0
    if data == "special" and sizes[0]:
        # One input element in eight, and at least one, becomes 0, +-inf, NaN, huge or tiny:
        # those with the smallest hashes, so that the smallest input of all still holds one
        # (which, the seed decides: a shrinker finds the seed that puts a NaN there).
        # Weights and bias stay ordinary, so that where a NaN or an inf appears does not
        # depend on the order of summation.
        chosen = low[: sizes[0]].argsort(stable=True)[: -(-sizes[0] // 8)]
        table = torch.tensor(SPECIAL_VALUES, dtype=torch.float64)
        if dtype == torch.float16:
            table = torch.where(table.isinf(), table, table.clamp(-FLOAT16_HUGE, FLOAT16_HUGE))
        values[chosen] = table[(high[chosen] >> 8) % len(SPECIAL_VALUES)]
    return [part.reshape(shape) for part, shape in zip(torch.split(values.to(dtype), sizes), shapes, strict=True)]


def keeps_values(layout: str) -> bool:
    """Whether ``layout`` rearranges memory only (all but ``expanded``)."""
    return layout != "expanded"


def lay_out(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """A copy of ``tensor`` in memory layout ``layout`` (``expanded`` keeps only dim 0's first slice)."""
    if layout == "strided":
        # Every other element of a buffer twice as wide: same values, non-unit stride.
        buffer = torch.zeros((*tensor.shape[:-1], 2 * tensor.shape[-1]), dtype=tensor.dtype, device=tensor.device)
        view = buffer[..., ::2]
        view.copy_(tensor)
        return view
    if layout == "channels_last" and tensor.dim() == 4:
        return tensor.clone(memory_format=torch.channels_last)
    if layout == "transposed":
        return tensor.transpose(-1, -2).clone(memory_format=torch.contiguous_format).transpose(-1, -2)
    if layout == "expanded":
        return tensor[:1].clone(memory_format=torch.contiguous_format).expand(tensor.shape)
    return tensor.clone(memory_format=torch.contiguous_format)


def make_inputs(case: Case) -> Inputs:
    """The input, weight and bias of ``case``: same seed, same bits, on any torch."""
    shapes = [case.input_shape, case.weight_shape] + ([(case.out_channels,)] if case.bias else [])
    device = torch.device(case.device)
    x, w, *rest = (t.to(device) for t in values_from_seed(case.seed, case.data, getattr(torch, case.dtype), shapes))
    return Inputs(x, w, rest[0] if rest else None).in_layout(case.layout, case.weight_layout)


def upstream_gradient(case: Case) -> torch.Tensor:
    """The gradient flowing into the output in a gradient check: made like the case's data
    (exact integers for ``int``), from a seed of its own, on the case's device."""
    data = "int" if case.data == "int" else "uniform"
    (values,) = values_from_seed(case.seed ^ 0x5EED, data, getattr(torch, case.dtype), [case.output_shape])
    return values.to(case.device)


_INT_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality, so that NaN == NaN and -0.0 != 0.0 (viewing as integers costs
    no copy, whatever the strides)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    view = _INT_VIEWS[a.element_size()]
    return torch.equal(a.view(view), b.view(view))
