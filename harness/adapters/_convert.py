"""Tensors in and out of a library that takes NumPy arrays, written once for every adapter.

NumPy has no bfloat16: a bfloat16 tensor leaves as float32 (exactly; every bfloat16 is a
float32) and the adapter casts it to its library's own bfloat16, and the result comes back
the same way. No arithmetic happens here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Pair = tuple[int, int]


def to_numpy(tensor: torch.Tensor) -> np.ndarray[Any, Any]:
    """The tensor's values as a NumPy array (bfloat16 as float32, exactly)."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def from_numpy(array: Any, like: torch.Tensor) -> torch.Tensor:
    """A library's result as a tensor on ``like``'s device, in the dtype the library gave
    it (a wrong dtype is the library's, and is reported as such). A bfloat16 result (NumPy
    with ml_dtypes' bfloat16, as JAX and TensorFlow give it) goes through float32, exactly."""
    array = np.array(array)
    if str(array.dtype) == "bfloat16":
        return torch.from_numpy(array.astype(np.float32)).to(like.device, torch.bfloat16)
    return torch.from_numpy(array).to(like.device)


def batched(input: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Every library here takes a batch dimension: an unbatched (C, H, W) input gets one."""
    return (input, True) if input.dim() == 4 else (input.unsqueeze(0), False)


def unbatched(result: torch.Tensor, was_batched: bool) -> torch.Tensor:
    return result if was_batched else result.squeeze(0)
