"""im2col-harness: differential fuzzing of conv2d implementations against torch.nn.Conv2d.

The public front; everything else may change. Each name is imported on first use (PEP 562),
not with the package: the pytest plugin and the Hypothesis profiles import ``harness`` in
every test run of an environment where it is installed, and must not pull in torch there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports them
    from harness.api import assert_conv2d_matches
    from harness.campaign import CampaignResult, fuzz
    from harness.capabilities import Capabilities, declare
    from harness.case import Case
    from harness.check import check_case
    from harness.finding import Finding
    from harness.registry import Implementation, discover, implementation_from
    from harness.verdict import KINDS, Verdict

_HOMES = {
    "assert_conv2d_matches": "harness.api",
    "CampaignResult": "harness.campaign",
    "fuzz": "harness.campaign",
    "Capabilities": "harness.capabilities",
    "declare": "harness.capabilities",
    "Case": "harness.case",
    "check_case": "harness.check",
    "Finding": "harness.finding",
    "Implementation": "harness.registry",
    "discover": "harness.registry",
    "implementation_from": "harness.registry",
    "KINDS": "harness.verdict",
    "Verdict": "harness.verdict",
}

__all__ = [
    "KINDS",
    "CampaignResult",
    "Capabilities",
    "Case",
    "Finding",
    "Implementation",
    "Verdict",
    "assert_conv2d_matches",
    "check_case",
    "declare",
    "discover",
    "fuzz",
    "implementation_from",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for, then keep it."""
    if name == "__version__":
        from harness.provenance import harness_version

        value: Any = harness_version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:  # also how ``from harness import corpus`` falls through to the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
