"""What one call of an implementation did, as plain data: what `harness.execute.runner` records,
what an isolated child sends back, and what `harness.judge.compare` and `harness.judge.gradients` judge.
Its own module so that judging needs nothing of how calls are made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.model.noise import Noise


@dataclass(frozen=True)
class Change:
    """Something a call changed (and the guard put back): ``what`` names it the same way
    every time, ``detail`` says from what to what."""

    what: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what} ({self.detail})" if self.detail else self.what


@dataclass(slots=True)  # not frozen: one is made for every call, and frozen ones cost more to make
class Outcome:
    """What one call produced, as plain data that can cross a process boundary."""

    result: torch.Tensor | None = None
    returned: str = ""  # the type of what was returned
    device: str = ""
    aliased: bool = False
    modified: tuple[str, ...] = ()
    error_type: str = ""
    error_message: str = ""
    error_site: str = ""
    abnormal: str = ""  # "crash", "timeout" or "memory": the call did not end normally
    grads: tuple[torch.Tensor | None, ...] | None = None  # of input, weight, bias, when asked for
    changed: tuple[Change, ...] = ()  # process-wide state the call changed (and the guard put back)
    noise: Noise | None = None  # what it warned or wrote meanwhile (`harness.execute.capture`), if anything
