"""Where a result came from: the versions of torch, Python and the harness, and when.

Recorded with every saved failure and every report, so that a file found years later says
what made it.
"""

from __future__ import annotations

import datetime
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch


def harness_version() -> str:
    try:
        return version("im2col-harness")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def provenance() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "harness": harness_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
