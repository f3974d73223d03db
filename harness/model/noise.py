"""What an implementation said during a call besides its result: the warnings it issued and
what it wrote to stderr and stdout; and, per implementation, how many checks said something.

Real libraries are noisy: NumPy warns about invalid values, ONNX Runtime writes an error
line per call from C, TensorFlow prints banners. Said during a call, it belongs to the
implementation, not to the harness's output: `harness.execute.capture` catches it, it travels with
the call's outcome and verdict, and reports show it beside the failure it came with and,
counted, in the summary. Noise is never a failure by itself. It is untrusted text, clipped
where it was caught, and shown through `harness.model.text` like everything else the code under
test controls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# The channels, as reports name them.
WARNED, STDERR, STDOUT = "warned", "stderr", "stdout"
WARNINGS_KEPT = 3  # distinct warnings kept per call: the rest are only counted
FIRST_KEPT = 2  # distinct things kept per implementation and channel, for the summary


@dataclass(frozen=True)
class Noise:
    """What one call said (made only when it said something)."""

    warned: int = 0  # how many warnings it issued
    warnings: tuple[str, ...] = ()  # the first distinct ones: "RuntimeWarning: message (at file.py:12)"
    stderr: str = ""  # written to sys.stderr or file descriptor 2, clipped where it was caught
    stdout: str = ""  # the same for standard output

    def channels(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Each channel the call said something on, with what it said there."""
        if self.warned:
            yield WARNED, self.warnings
        if self.stderr:
            yield STDERR, (self.stderr,)
        if self.stdout:
            yield STDOUT, (self.stdout,)

    def to_json(self) -> dict[str, Any]:
        return {"warned": self.warned, "warnings": list(self.warnings), "stderr": self.stderr, "stdout": self.stdout}


@dataclass
class Heard:
    """How many checks of one implementation warned, wrote to stderr or wrote to stdout, and
    the first distinct things said on each: the summary's account of its noise. Bounded
    whatever the implementation says: counts, and at most `FIRST_KEPT` texts a channel."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, list[str]] = field(default_factory=dict)
    warnings: int = 0  # issued in all, by the checks that warned

    def add(self, noise: Noise) -> None:
        self.warnings += noise.warned
        for channel, said in noise.channels():
            self.counts[channel] += 1
            self._keep(channel, said)

    def update(self, other: Heard) -> None:
        """Add up another tally of the same implementation's (a shard's)."""
        self.counts.update(other.counts)
        self.warnings += other.warnings
        for channel, said in other.first.items():
            self._keep(channel, said)

    def _keep(self, channel: str, said: Iterable[str]) -> None:
        kept = self.first.setdefault(channel, [])
        for text in said:
            if len(kept) >= FIRST_KEPT:
                return
            if text not in kept:
                kept.append(text)

    def to_json(self) -> dict[str, Any]:
        said = {
            channel: {"checks": self.counts[channel], "first": self.first.get(channel, [])}
            for channel in (WARNED, STDERR, STDOUT)
            if self.counts[channel]
        }
        if WARNED in said:
            said[WARNED]["warnings"] = self.warnings
        return said
