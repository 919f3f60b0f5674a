"""Which augmentation backends a benchmark can time on a device, and which code a timed row really ran
(a ``triton`` row whose kernels failed to compile ran the torch path: its figure must say so)."""

from __future__ import annotations

import torch

from kdforaa.augment.apply import choose_backend, triton_fallback, triton_interpreted


def backends_here(device: torch.device) -> list[str]:
    """The backends that run a batch on ``device``: triton and torch on CUDA; on the CPU native (where it
    builds) and torch, and triton under ``TRITON_INTERPRET=1``."""
    if device.type == "cuda":
        return ["triton", "torch"]
    probe = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    names = ["native", "torch"] if choose_backend("auto", probe.device, "nearest") == "native" else ["torch"]
    return (["triton"] if triton_interpreted() else []) + names


def code_that_ran(contender: str) -> str:
    """What a row's contender ran: ``triton`` is the torch path once its kernels failed to compile."""
    why = triton_fallback() if contender == "triton" else None
    return contender if why is None else f"torch path (Triton failed: {why})"
