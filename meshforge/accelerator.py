"""Device and dtype choice for the torch backends (FLUX, TripoSR), from their settings.

Imported only by processes that run a torch model; the control plane never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshforge.errors import InvalidInput

if TYPE_CHECKING:
    import torch

DTYPES = ("bfloat16", "float16", "float32")


def pick_device(setting: str) -> torch.device:
    """``auto`` is the first visible GPU (CUDA_VISIBLE_DEVICES decides which) or the CPU."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f'device "{setting}" was asked for, but torch sees no CUDA GPU')
    return device


def pick_dtype(setting: str, device: torch.device, gpu_default: str = "bfloat16") -> torch.dtype:
    """``auto`` is ``gpu_default`` on a GPU and float32 on the CPU (half precision is slow there)."""
    import torch

    name = setting
    if setting == "auto":
        name = gpu_default if device.type == "cuda" else "float32"
    if name not in DTYPES:
        raise InvalidInput(f'unknown dtype "{setting}": use auto or one of {", ".join(DTYPES)}')
    dtype: torch.dtype = getattr(torch, name)
    return dtype
