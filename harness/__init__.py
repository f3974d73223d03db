"""im2col-harness: differential fuzzing of conv2d implementations against torch.nn.Conv2d.

The public front; everything else may change.
"""

from importlib.metadata import PackageNotFoundError, version

from harness.api import assert_conv2d_matches
from harness.campaign import CampaignResult, Finding, fuzz
from harness.capabilities import Capabilities, declare
from harness.case import Case
from harness.check import check_case
from harness.registry import Implementation, discover, implementation_from
from harness.verdict import KINDS, Verdict

try:
    __version__ = version("im2col-harness")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

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
