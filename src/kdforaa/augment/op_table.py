"""The op table: every fact about an augmentation op, in one entry per op.

An entry (:class:`OpSpec`) says what the rest of the engine needs to know about one op:

- its **name** (its position in :data:`OPS` is the op id an :class:`~kdforaa.augment.params.AugParams`
  stores);
- its **kind**: ``colour`` (a per-pixel kernel, applied before the warp), ``geometric`` (an inverse
  affine map, fused with the others of a sample into the one warp per batch) or ``identity``;
- whether its argument is **signed** (the sign is drawn per sample);
- its **level rule**: the argument at level ``L`` (the usual 0-10 magnitude scale, "increasing"
  convention, *not capped*: level 15, 20 or 30 keeps scaling until the argument reaches its physical
  bound); ops without a rule take no argument and record level 0;
- its **torch kernel** (colour ops, :mod:`kdforaa.augment.kernels`), its **inverse map** (geometric
  ops, :mod:`kdforaa.augment.geometry`), and its **native code**, the op's number in the C kernels'
  enum (``native_kernels.c``; a test checks the two agree).

The op sets (colour, geometric, signed, argument-free), the kernels a batch runs, its geometry maps and
its native codes are all derived from this table. Adding an op means adding one entry here plus its
kernels (torch, C and GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from kdforaa.augment import geometry, kernels
from kdforaa.errors import BadInput

# The largest level a policy accepts. Every argument is saturated (rotate wraps) long before, and the
# bound keeps levels and arguments finite in float32 after any magnitude_std noise or AutoAugment scale.
MAX_LEVEL = 1e6

# Past 255 an addition saturates every pixel below the threshold: a stronger level changes nothing.
MAX_SOLARIZE_ADDITION = 255.0

#: level ``(B,)``, sign ``(B,)`` (+1 or -1), image height, width -> argument ``(B,)`` (float tensors)
LevelRule = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]
#: per-sample arguments ``(N,)`` float64, image height, width -> inverse maps ``(N,3,3)`` float64
InverseMap = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass(frozen=True)
class OpSpec:
    """One op: see the module docstring for what each field means."""

    name: str
    kind: Literal["colour", "geometric", "identity"]
    level_rule: LevelRule | None = None
    signed: bool = False
    kernel: Callable[..., torch.Tensor] | None = None
    inverse_map: InverseMap | None = None
    native_code: int = 0


def _enhance(L: torch.Tensor, s: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Enhance factor, 1 = unchanged, floored at 0."""
    return (1.0 + s * 0.09 * L).clamp(min=0.0)


OPS: tuple[OpSpec, ...] = (
    OpSpec("identity", "identity"),
    OpSpec("autocontrast", "colour", kernel=kernels.autocontrast, native_code=1),
    OpSpec("equalize", "colour", kernel=kernels.equalize, native_code=2),
    OpSpec("invert", "colour", kernel=kernels.invert, native_code=3),
    OpSpec(
        "rotate",
        "geometric",
        level_rule=lambda L, s, h, w: s * 3.0 * L,  # degrees, counter-clockwise
        signed=True,
        inverse_map=geometry.rotate_map,
    ),
    OpSpec(
        "posterize",
        "colour",
        level_rule=lambda L, s, h, w: (8.0 - torch.round(0.4 * L)).clamp(min=0.0),  # bits kept
        kernel=kernels.posterize,
        native_code=4,
    ),
    OpSpec(
        "solarize",
        "colour",
        level_rule=lambda L, s, h, w: (256.0 - 25.6 * L).clamp(min=0.0),  # invert pixels >= threshold
        kernel=kernels.solarize,
        native_code=5,
    ),
    OpSpec(
        "solarize_add",
        "colour",
        level_rule=lambda L, s, h, w: (11.0 * L).clamp(max=MAX_SOLARIZE_ADDITION),  # added below 128
        kernel=kernels.solarize_add,
        native_code=6,
    ),
    # "color" is the op's name in the papers, Pillow (ImageEnhance.Color) and users' augment.ops lists;
    # "colour" is the kind, spelt like the rest of the code. Renaming either would break written configs.
    OpSpec("color", "colour", level_rule=_enhance, signed=True, kernel=kernels.color, native_code=7),
    OpSpec("contrast", "colour", level_rule=_enhance, signed=True, kernel=kernels.contrast, native_code=8),
    OpSpec(
        "brightness", "colour", level_rule=_enhance, signed=True, kernel=kernels.brightness, native_code=9
    ),
    OpSpec("sharpness", "colour", level_rule=_enhance, signed=True, kernel=kernels.sharpness, native_code=10),
    OpSpec(
        "shear_x",
        "geometric",
        level_rule=lambda L, s, h, w: s * 0.03 * L,  # shear factor
        signed=True,
        inverse_map=lambda factor, h, w: geometry.shear_x_map(factor),
    ),
    OpSpec(
        "shear_y",
        "geometric",
        level_rule=lambda L, s, h, w: s * 0.03 * L,
        signed=True,
        inverse_map=lambda factor, h, w: geometry.shear_y_map(factor),
    ),
    OpSpec(
        "translate_x",
        "geometric",
        level_rule=lambda L, s, h, w: s * 0.045 * L * w,  # pixels: 0.45 of the width at level 10
        signed=True,
        inverse_map=lambda pixels, h, w: geometry.translate_map(pixels, 0.0),
    ),
    OpSpec(
        "translate_y",
        "geometric",
        level_rule=lambda L, s, h, w: s * 0.045 * L * h,
        signed=True,
        inverse_map=lambda pixels, h, w: geometry.translate_map(0.0, pixels),
    ),
)

BY_NAME: dict[str, OpSpec] = {spec.name: spec for spec in OPS}

# Sets derived from the table: OP_NAMES, SIGNED_OPS and ARGUMENT_FREE_OPS are what the engine reads
# (params, policies); COLOUR_OPS and GEOMETRIC_OPS are for callers that pick ops by kind (the tests do).
OP_NAMES: tuple[str, ...] = tuple(spec.name for spec in OPS)
COLOUR_OPS = frozenset(spec.name for spec in OPS if spec.kind == "colour")
GEOMETRIC_OPS = frozenset(spec.name for spec in OPS if spec.kind == "geometric")
SIGNED_OPS = frozenset(spec.name for spec in OPS if spec.signed)
ARGUMENT_FREE_OPS = frozenset(spec.name for spec in OPS if spec.level_rule is None)


def check_op_name(op: str, argument: str = "op") -> str:
    """``op`` itself, or BadInput (a ValueError) naming ``argument`` and the accepted names."""
    if op not in OP_NAMES:  # a tuple: an unhashable value is simply not in it
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
    rule = BY_NAME[check_op_name(op)].level_rule
    L = torch.as_tensor(level, dtype=torch.float32)
    if rule is None:
        return torch.zeros_like(L)
    s = torch.as_tensor(sign, dtype=torch.float32, device=L.device)
    return rule(L, s, height, width).to(torch.float32)
