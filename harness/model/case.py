"""One conv2d problem, and its one-line id.

A `Case` is the single representation of a problem everywhere: the strategies draw it,
the oracle and runner take it, the corpus stores it, reports and replay name it by its id.
The id is a benchdnn-style descriptor that names every dimension and parses back to the
same case (tensor data included, via the data kind and seed):

    mb2ic4oc8g2ih7iw5kh3kw2sh1sw2p1d1-bias-float32-contiguous-uniform-cpu-seed12

Stride, padding and dilation keep the form they were given in: ``s2`` is the int ``2``,
``sh2sw2`` the pair ``(2, 2)``; implementations have bugs that only one form shows.

Two dimensions explored only for an implementation that declares them follow the seed,
each only where it is not its default (so every id written before them still names the
same case): the weight's own memory layout, ``-weight_channels_last`` (by default the
weight is laid out as the input is), and torch's thread count for the call, ``-threads4``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from harness.model.text import clipped

IntOrPair = int | tuple[int, int]
Padding = int | tuple[int, int] | str

MAX_SEED = 2**32 - 1
MAX_DIMENSION = 2**63 - 1  # torch takes sizes, strides and paddings as int64
# More digits than any field in range can have: refused before int() (which gives up at
# 4,300 digits with a ValueError) and before anything is computed from them.
MAX_DIGITS = len(str(MAX_DIMENSION))
# The largest case replayed or shown unless --max-elements / --max-macs say otherwise:
# ~7x the shipped shape sets' most elements (2,515,456; ResNet-50 at batch 1) and ~145x
# their most multiply-adds (118,013,952). Measured on a 2-core machine, replaying a case
# against the six shipped implementations peaked at 1.4 GB at the element limit, and took
# 26 s at 1.9e10 multiply-adds.
MAX_ELEMENTS = 2**24
MAX_MACS = 2**34
DTYPES = ("float32", "float64", "float16", "bfloat16")  # simplest first: shrinking goes left
LAYOUTS = ("contiguous", "channels_last", "strided", "transposed", "expanded")
# The weight's layout: "same" as the input's, or one that keeps its values (an expanded
# weight would need a reference of its own for every input layout).
WEIGHT_LAYOUTS = ("same", "contiguous", "channels_last", "strided", "transposed")
# Realistic sizes, (lowest, highest), for an implementation that declares a share of them
# (`harness.generate.strategies`): batch, channels (in and out), image height and width.
REALISTIC = {"batch": (8, 64), "channels": (16, 128), "image": (32, 64)}
MAX_THREADS = 256  # a hostile id must not start a thousand threads per call
DATA_KINDS = ("uniform", "int", "special")
DEVICES = ("cpu", "cuda")
_ARGUMENTS = ("kernel", "stride", "padding", "dilation")  # JSON lists, tuples in a Case


class CaseError(ValueError):
    """A case that cannot be used (a bad id or plain-data form, or one too large to run);
    the message says which part is wrong, in one line."""


class CaseIdError(CaseError):
    """A case id that does not parse; the message says which part is wrong."""


def pair(value: IntOrPair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


@dataclass(frozen=True)
class Case:
    """A conv2d problem: shapes, arguments, dtype, memory layout, and how its data is made."""

    batch: int | None  # None: an unbatched (C, H, W) input
    in_channels: int
    out_channels: int
    groups: int
    height: int
    width: int
    kernel: tuple[int, int]
    stride: IntOrPair = 1
    padding: Padding = 0
    dilation: IntOrPair = 1
    bias: bool = False
    dtype: str = "float32"
    layout: str = "contiguous"
    data: str = "uniform"
    device: str = "cpu"
    seed: int = 0
    weight_layout: str = "same"
    threads: int = 1

    # -- derived quantities -------------------------------------------------------------

    @property
    def realistic(self) -> bool:
        """Whether the channels and image are of `REALISTIC` sizes (the batch may be any)."""
        channels, image = REALISTIC["channels"][0], REALISTIC["image"][0]
        return min(self.in_channels, self.out_channels) >= channels and min(self.height, self.width) >= image

    @property
    def weight_memory(self) -> str:
        """The layout the weight is made in: its own, or the input's."""
        return self.layout if self.weight_layout == "same" else self.weight_layout

    @property
    def input_shape(self) -> tuple[int, ...]:
        chw = (self.in_channels, self.height, self.width)
        return chw if self.batch is None else (self.batch, *chw)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def paddings(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) as torch applies them; 'same' puts the odd pixel last."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            (kh, kw), (dh, dw) = self.kernel, pair(self.dilation)
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        ph, pw = pair(self.padding)  # type: ignore[arg-type]
        return (ph, ph, pw, pw)

    @property
    def output_hw(self) -> tuple[int, int]:
        top, bottom, left, right = self.paddings
        (sh, sw), (dh, dw), (kh, kw) = pair(self.stride), pair(self.dilation), self.kernel
        return (
            (self.height + top + bottom - dh * (kh - 1) - 1) // sh + 1,
            (self.width + left + right - dw * (kw - 1) - 1) // sw + 1,
        )

    @property
    def output_shape(self) -> tuple[int, ...]:
        chw = (self.out_channels, *self.output_hw)
        return chw if self.batch is None else (self.batch, *chw)

    @property
    def reduction_length(self) -> int:
        """K: how many products are summed into one output element."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def elements(self) -> int:
        """Elements of the padded input, the dilated weight and the output, an empty batch
        counted as one: what replaying the case allocates grows with this (implementations
        pad the input and spread the kernel out before they convolve: a 6-element case
        with padding 8,000 and dilation 16,000 pads to 256 million), and no dimension
        escapes it behind a zero."""
        one = self._nonempty()
        top, bottom, left, right = one.paddings
        (dh, dw), (kh, kw) = pair(one.dilation), one.kernel
        padded = (*one.input_shape[:-2], one.height + top + bottom, one.width + left + right)
        dilated = (*one.weight_shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        return math.prod(padded) + math.prod(dilated) + math.prod(one.output_shape)

    @property
    def macs(self) -> int:
        """Multiply-adds of one forward pass (output elements times K), an empty batch counted
        as one: what replaying the case costs in time grows with this."""
        return math.prod(self._nonempty().output_shape) * self.reduction_length

    def _nonempty(self) -> Case:
        return replace(self, batch=1) if self.batch == 0 else self

    def type_problems(self) -> list[str]:
        """Fields of the wrong type (a hand-edited corpus file, say), checked before any maths."""

        def integer(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def int_or_pair(value: object) -> bool:
            return integer(value) or (isinstance(value, tuple) and len(value) == 2 and all(integer(v) for v in value))

        checks = {
            "batch": self.batch is None or integer(self.batch),
            "kernel": isinstance(self.kernel, tuple) and int_or_pair(self.kernel),
            "stride": int_or_pair(self.stride),
            "padding": int_or_pair(self.padding) or isinstance(self.padding, str),
            "dilation": int_or_pair(self.dilation),
            "bias": isinstance(self.bias, bool),
            **{
                name: integer(getattr(self, name))
                for name in ("in_channels", "out_channels", "groups", "height", "width", "seed", "threads")
            },
            **{
                name: isinstance(getattr(self, name), str)
                for name in ("dtype", "layout", "data", "device", "weight_layout")
            },
        }
        return [
            f"{name} has the wrong type ({type(getattr(self, name)).__name__})" for name, ok in checks.items() if not ok
        ]

    def problems(self) -> list[str]:
        """Why F.conv2d would reject this case; empty when it is a valid problem."""
        found = self.type_problems()
        if found:
            return found
        if not 0 <= self.seed <= MAX_SEED:
            found.append(f"seed must be in [0, {MAX_SEED}]")
        positive = {
            "in_channels": (self.in_channels,),
            "out_channels": (self.out_channels,),
            "groups": (self.groups,),
            "height": (self.height,),
            "width": (self.width,),
            "kernel": self.kernel,
            "stride": pair(self.stride),
            "dilation": pair(self.dilation),
        }
        found += [f"{name} must be >= 1" for name, values in positive.items() if min(values) < 1]
        if self.batch is not None and self.batch < 0:
            found.append("batch must be >= 0")
        numbers = {
            **positive,
            "batch": (self.batch or 0,),
            "padding": (0,) if isinstance(self.padding, str) else pair(self.padding),
        }
        found += [
            f"{name} must be at most 2**63 - 1 (torch's int64)"
            for name, values in numbers.items()
            if max(values) > MAX_DIMENSION
        ]
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                found.append(f"padding must be an int, a pair, 'same' or 'valid', not {self.padding!r}")
            elif self.padding == "same" and pair(self.stride) != (1, 1):
                found.append("padding='same' needs stride 1")
        elif min(pair(self.padding)) < 0:
            found.append("padding must be >= 0")
        if self.groups >= 1 and (self.in_channels % self.groups or self.out_channels % self.groups):
            found.append("in_channels and out_channels must be multiples of groups")
        if not found and min(self.output_hw) < 1:
            found.append("the dilated kernel is larger than the padded input")
        if self.dtype not in DTYPES:
            found.append(f"dtype must be one of {DTYPES}")
        if self.layout not in LAYOUTS:
            found.append(f"layout must be one of {LAYOUTS}")
        if self.data not in DATA_KINDS:
            found.append(f"data must be one of {DATA_KINDS}")
        if self.device not in DEVICES:
            found.append(f"device must be one of {DEVICES}")
        if self.weight_layout not in WEIGHT_LAYOUTS:
            found.append(f"weight_layout must be one of {WEIGHT_LAYOUTS}")
        if not 1 <= self.threads <= MAX_THREADS:
            found.append(f"threads must be in [1, {MAX_THREADS}]")
        return found

    # -- the id -------------------------------------------------------------------------

    @functools.cached_property  # asked for on every call (journal, choice of thorough variant)
    def id(self) -> str:
        mb = "none" if self.batch is None else str(self.batch)
        shape = (
            f"mb{mb}ic{self.in_channels}oc{self.out_channels}g{self.groups}"
            f"ih{self.height}iw{self.width}kh{self.kernel[0]}kw{self.kernel[1]}"
            f"{_arg('s', self.stride)}{_arg('p', self.padding)}{_arg('d', self.dilation)}"
        )
        return "-".join(
            [
                shape,
                "bias" if self.bias else "nobias",
                self.dtype,
                self.layout,
                self.data,
                self.device,
                f"seed{self.seed}",
                *([f"weight_{self.weight_layout}"] if self.weight_layout != "same" else []),
                *([f"threads{self.threads}"] if self.threads != 1 else []),
            ]
        )

    def __str__(self) -> str:
        return self.id

    @classmethod
    def from_id(cls, text: str) -> Case:
        """Parse an id back into the case it names; raise `CaseIdError` saying what is wrong."""
        parts = text.strip().split("-")
        if len(parts) < 7:
            raise _parts_error(text, len(parts))
        shape, bias, dtype, layout, data, device, seed = parts[:7]
        weight_layout, threads = _optional_parts(text, parts[7:])
        match = _SHAPE.fullmatch(shape)
        if not match:
            raise CaseIdError(
                f"case id shape {clipped(shape)!r} is not of the form "
                "mb2ic4oc8g2ih7iw5kh3kw2s1p0d1 (s/p/d may be sh1sw2 pairs, p may be psame/pvalid)"
            )
        if bias not in ("bias", "nobias"):
            raise CaseIdError(f"case id part {clipped(bias)!r} must be 'bias' or 'nobias'")
        if not seed.startswith("seed") or not (seed[4:].isascii() and seed[4:].isdigit()):
            raise CaseIdError(f"case id part {clipped(seed)!r} must be 'seed' followed by digits")
        g = match.groupdict()
        for name, digits in {**g, "seed": seed[4:]}.items():
            if digits is not None and len(digits) > MAX_DIGITS:
                raise CaseIdError(
                    f"case id {clipped(text)!r}: {name} has {len(digits):,} digits; "
                    f"no valid value has more than {MAX_DIGITS}"
                )
        case = cls(
            batch=None if g["mb"] == "none" else int(g["mb"]),
            in_channels=int(g["ic"]),
            out_channels=int(g["oc"]),
            groups=int(g["g"]),
            height=int(g["ih"]),
            width=int(g["iw"]),
            kernel=(int(g["kh"]), int(g["kw"])),
            stride=_parse_arg(g, "s"),
            padding=_parse_arg(g, "p"),
            dilation=_parse_arg(g, "d"),
            bias=bias == "bias",
            dtype=dtype,
            layout=layout,
            data=data,
            device=device,
            seed=int(seed[4:]),
            weight_layout=weight_layout,
            threads=threads,
        )
        problems = case.problems()
        if problems:
            raise CaseIdError(f"case id {clipped(text)!r} is not a valid conv2d problem: {'; '.join(problems)}")
        return case

    # -- plain data, for JSON -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field, less the `OPTIONAL` ones at their default: a case written before them
        is written as it was."""
        data = asdict(self)
        return {k: v for k, v in data.items() if k not in OPTIONAL or v != _DEFAULTS[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        """The case ``data`` describes, as `to_dict` writes it; raise `CaseError` naming the
        field when one is unknown, missing (never quietly the dataclass's default), of the
        wrong type or out of range."""
        names = [field.name for field in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise CaseError(f"unknown field(s) {clipped(', '.join(map(repr, unknown)))}")
        missing = [name for name in names if name not in data and name not in OPTIONAL]
        if missing:
            raise CaseError(f"missing field(s) {', '.join(missing)}")
        forms: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) and key in _ARGUMENTS else value for key, value in data.items()
        }
        case = cls(**forms)
        problems = case.problems()
        if problems:
            raise CaseError(f"out of range: {'; '.join(problems)}")
        return case


@dataclass(frozen=True)
class Limits:
    """The largest case the harness will run, checked on its numbers before anything is
    allocated: a mistyped or hostile id or corpus entry must not exhaust the machine."""

    elements: int = MAX_ELEMENTS
    macs: int = MAX_MACS

    def check(self, case: Case) -> None:
        """Raise `CaseError` naming ``case``, the limit it is over and the flag that raises it."""
        for amount, limit, what, flag in (
            (case.elements, self.elements, "elements (padded input + dilated weight + output)", "--max-elements"),
            (case.macs, self.macs, "multiply-adds", "--max-macs"),
        ):
            if amount > limit:
                raise CaseError(
                    f"case {clipped(case.id)!r} is too large: {amount:,} {what}, over the "
                    f"limit of {limit:,}; raise the limit with {flag} N"
                )


# Fields a case written before them lacks (a corpus file): their default is what it meant.
OPTIONAL = ("weight_layout", "threads")
_DEFAULTS = {field.name: field.default for field in fields(Case)}


def _optional_parts(text: str, parts: list[str]) -> tuple[str, int]:
    """The weight layout and thread count an id's parts after the seed name, in that order."""
    weight_layout, threads = "same", 1
    rest = list(parts)
    if rest and rest[0].startswith("weight_") and rest[0] != "weight_same":  # the default is never written
        weight_layout = rest.pop(0)[len("weight_") :]
    if rest and rest[0].startswith("threads") and rest[0][7:].isascii() and rest[0][7:].isdigit():
        if len(rest[0]) - 7 > MAX_DIGITS:
            raise CaseIdError(f"case id {clipped(text)!r}: threads has {len(rest[0]) - 7:,} digits")
        threads = int(rest.pop(0)[7:])
    if rest:
        raise _parts_error(text, 7 + len(parts))
    return weight_layout, threads


def _parts_error(text: str, count: int) -> CaseIdError:
    return CaseIdError(
        f"case id {clipped(text)!r} must have 7 '-'-separated parts "
        f"(shape-bias-dtype-layout-data-device-seed), then optionally weight_LAYOUT and threadsN, found {count}"
    )


def _arg(letter: str, value: Padding) -> str:
    if isinstance(value, (int, str)):
        return f"{letter}{value}"
    return f"{letter}h{value[0]}{letter}w{value[1]}"


def _arg_pattern(letter: str, single: str = r"\d+") -> str:
    return rf"(?:{letter}(?P<{letter}>{single})|{letter}h(?P<{letter}h>\d+){letter}w(?P<{letter}w>\d+))"


_SHAPE = re.compile(
    r"mb(?P<mb>none|\d+)ic(?P<ic>\d+)oc(?P<oc>\d+)g(?P<g>\d+)ih(?P<ih>\d+)iw(?P<iw>\d+)"
    r"kh(?P<kh>\d+)kw(?P<kw>\d+)" + _arg_pattern("s") + _arg_pattern("p", r"\d+|same|valid") + _arg_pattern("d"),
    re.ASCII,
)


def _parse_arg(groups: dict[str, str | None], letter: str) -> Any:
    single = groups[letter]
    if single is not None:
        return single if single in ("same", "valid") else int(single)
    return (int(groups[f"{letter}h"]), int(groups[f"{letter}w"]))  # type: ignore[arg-type]
