"""What the installed torch and this machine can run: probed, not assumed.

float16 and bfloat16 convolutions on the CPU arrived in different torch releases, and
CUDA is there or not. Fuzzing a dtype the installed ``F.conv2d`` rejects would report
every implementation as failing for torch's reasons, so the campaign draws only what a
tiny probe convolution shows works here. Case ids may still name anything: replaying
such a case where it cannot run skips it and says why.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
import torch.nn.functional as F

from harness.model.capabilities import Capabilities
from harness.model.case import DEVICES


@functools.cache
def devices() -> tuple[str, ...]:
    return tuple(d for d in DEVICES if d == "cpu" or (d == "cuda" and torch.cuda.is_available()))


@functools.cache
def computes(dtype: str, device: str) -> bool:
    """Whether ``F.conv2d`` runs in ``dtype`` on ``device`` (padding and groups included)."""
    if device not in devices():
        return False
    try:
        x = torch.ones(1, 2, 3, 3, dtype=getattr(torch, dtype), device=device)
        w = torch.ones(2, 1, 2, 2, dtype=x.dtype, device=device)
        return F.conv2d(x, w, torch.ones(2, dtype=x.dtype, device=device), 1, 1, 1, 2).dtype == x.dtype
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def unavailable(dtype: str, device: str) -> str | None:
    """Why a case in ``dtype`` on ``device`` cannot run here, or None."""
    if device not in devices():
        return f"no {device} device here"
    if not computes(dtype, device):
        return f"torch {torch.__version__} cannot convolve {dtype} on {device}"
    return None


def runnable(domain: Capabilities) -> Capabilities | None:
    """``domain`` narrowed to the dtypes and devices that run here; None if nothing does."""
    here = [d for d in domain.devices if d in devices()]
    dtypes = [t for t in domain.dtypes if any(computes(t, d) for d in here)]
    if not here or not dtypes:
        return None
    return replace(domain, dtypes=tuple(dtypes), devices=tuple(here))


def full_domain() -> Capabilities:
    """Everything F.conv2d accepts that this machine can run."""
    domain = runnable(Capabilities())
    assert domain is not None  # float32 on the CPU always runs
    return domain
