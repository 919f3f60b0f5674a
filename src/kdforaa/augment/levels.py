"""Level -> op argument: the magnitude table of design.md §3.2.

A level ``L`` is the usual 0–10 magnitude scale of AutoAugment/RandAugment, in the "increasing"
convention (larger is always stronger) and **not capped**: level 15, 20 or 30 keeps scaling until an
argument reaches its physical bound (enhance factors floored at 0, posterize bits at 0, solarize
threshold at 0, solarize addition at 255). Signed ops take a sign ``s = ±1`` drawn per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdforaa.errors import BadInput

# Every op a policy can choose. The position in this tuple is the op id stored in AugParams.
OP_NAMES: tuple[str, ...] = (
    "identity",
    "autocontrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)

# Ops that move pixels: applied together as one fused affine resample per batch.
GEOMETRIC_OPS = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})

# Ops whose argument has a direction; the sign is drawn per sample.
SIGNED_OPS = GEOMETRIC_OPS | {"color", "contrast", "brightness", "sharpness"}

# Ops without an argument: the level does not change them, so their level is recorded as 0.
ARGUMENT_FREE_OPS = frozenset({"identity", "autocontrast", "equalize", "invert"})

# Past 255 an addition saturates every pixel below the threshold: a stronger level changes nothing.
MAX_SOLARIZE_ADDITION = 255.0

# The largest level a policy accepts. Every argument is saturated (rotate wraps) long before, and the
# bound keeps levels and arguments finite in float32 after any magnitude_std noise or AutoAugment scale.
MAX_LEVEL = 1e6

Argument = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def _enhance(L: torch.Tensor, s: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return (1.0 + s * 0.09 * L).clamp(min=0.0)


# op -> argument at level L with sign s (+1 or -1) for an image of height h and width w (pixels).
LEVEL_TO_ARGUMENT: dict[str, Argument] = {
    "rotate": lambda L, s, h, w: s * 3.0 * L,  # degrees, counter-clockwise
    "shear_x": lambda L, s, h, w: s * 0.03 * L,  # shear factor
    "shear_y": lambda L, s, h, w: s * 0.03 * L,
    "translate_x": lambda L, s, h, w: s * 0.045 * L * w,  # pixels: 0.45 of the width at level 10
    "translate_y": lambda L, s, h, w: s * 0.045 * L * h,
    "brightness": _enhance,  # enhance factor, 1 = unchanged
    "color": _enhance,
    "contrast": _enhance,
    "sharpness": _enhance,
    "posterize": lambda L, s, h, w: (8.0 - torch.round(0.4 * L)).clamp(min=0.0),  # bits kept
    "solarize": lambda L, s, h, w: (256.0 - 25.6 * L).clamp(min=0.0),  # invert pixels >= threshold
    "solarize_add": lambda L, s, h, w: (11.0 * L).clamp(max=MAX_SOLARIZE_ADDITION),  # added below 128
}


def check_op_name(op: str, argument: str = "op") -> str:
    """``op`` itself, or BadInput (a ValueError) naming ``argument`` and the accepted names."""
    if op not in OP_NAMES:
        raise BadInput(f"{argument}={op!r} is not a known op; accepted: {', '.join(OP_NAMES)}")
    return op


def op_argument(
    op: str,
    level: torch.Tensor | float,
    sign: torch.Tensor | float = 1.0,
    *,
    height: int,
    width: int,
) -> torch.Tensor:
    """The argument of ``op`` at ``level`` (float tensor ``(B,)`` or a number) and ``sign`` (±1).

    Returns a float32 tensor shaped like ``level``; ops without an argument (equalize, ...) return zeros.
    """
    check_op_name(op)
    L = torch.as_tensor(level, dtype=torch.float32)
    s = torch.as_tensor(sign, dtype=torch.float32, device=L.device)
    rule = LEVEL_TO_ARGUMENT.get(op)
    if rule is None:
        return torch.zeros_like(L)
    return rule(L, s, height, width).to(torch.float32)
