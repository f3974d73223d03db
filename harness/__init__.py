"""im2col-harness: differential fuzzing of conv2d implementations against torch.nn.Conv2d.

The public front; everything else may change. Each name is imported on first use (PEP 562),
not with the package: the pytest plugin and the Hypothesis profiles import ``harness`` in
every test run of an environment where it is installed, and must not pull in torch there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports them
    from harness.api import assert_conv2d_matches, fuzz
    from harness.campaign.check import check_case
    from harness.campaign.engine import CampaignResult
    from harness.model.capabilities import Capabilities, declare
    from harness.model.case import Case
    from harness.model.finding import Finding
    from harness.model.registry import Implementation, discover, implementation_from
    from harness.model.verdict import KINDS, Verdict

_HOMES = {
    "assert_conv2d_matches": "harness.api",
    "CampaignResult": "harness.campaign.engine",
    "fuzz": "harness.api",  # the campaign, with the caller's process as it was afterwards
    "Capabilities": "harness.model.capabilities",
    "declare": "harness.model.capabilities",
    "Case": "harness.model.case",
    "check_case": "harness.campaign.check",
    "Finding": "harness.model.finding",
    "Implementation": "harness.model.registry",
    "discover": "harness.model.registry",
    "implementation_from": "harness.model.registry",
    "KINDS": "harness.model.verdict",
    "Verdict": "harness.model.verdict",
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
        from harness.model.provenance import harness_version

        value: Any = harness_version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:  # also how ``from harness import corpus`` falls through to the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
