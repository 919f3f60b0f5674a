"""Choosing the training device and the CPU thread count from the config."""

from __future__ import annotations

import torch

from kdforaa.errors import BadInput


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; an explicit CUDA device without CUDA is bad input."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"train.device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"train.device is {name!r} but this machine has no CUDA: use train.device=cpu")
    return device
