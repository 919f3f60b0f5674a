"""Choosing the training device and the CPU thread count from the config."""

from __future__ import annotations

import torch

from kdforaa.errors import BadInput


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available (GPU ``local_rank`` under torchrun); CUDA without CUDA is bad."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cuda" and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"train.device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"train.device is {name!r} but this machine has no CUDA: use train.device=cpu")
    return device
