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
- its **arguments** as the public function :mod:`kdforaa.augment.ops` checks them: the drawn one first
  (the level rule's: its name, bounds and whether it is whole), then any the policies never draw, each
  with its default (solarize_add's threshold);
- its **reference**: what the public function does, naming the Pillow call it matches (its docstring);
- its **torch kernel** (colour ops, :mod:`kdforaa.augment.kernels`), its **inverse map** (geometric
  ops, :mod:`kdforaa.augment.affine`), and its **native code**, the op's number in the C kernels'
  enum (``native_kernels.c``), which the Triton kernel switches over too;
- its **RandAugment position**: where it stands in the op list of the RandAugment paper (None: not
  there), which RandAugment and TrivialAugment draw from by index.

The op sets (colour, geometric, signed, argument-free, RandAugment's), the public functions of
:mod:`kdforaa.augment.ops`, the kernels a batch runs, its geometry maps and its native codes are all
derived from this table. Adding an op means adding one entry here plus one kernel per backend
(``tests/augment/test_op_contract.py`` checks that every backend has every op).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from kdforaa.augment import affine, kernels
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
class ArgumentSpec:
    """An op argument as its public function takes it: the parameter's name, the accepted values
    (``low..high``, whole numbers only when ``whole``), and the default of an argument the policies never
    draw (None: the argument is required)."""

    name: str
    low: float = -math.inf
    high: float = math.inf
    whole: bool = False
    default: float | None = None


@dataclass(frozen=True)
class OpSpec:
    """One op: see the module docstring for what each field means."""

    name: str
    kind: Literal["colour", "geometric", "identity"]
    reference: str
    level_rule: LevelRule | None = None
    signed: bool = False
    arguments: tuple[ArgumentSpec, ...] = ()
    kernel: Callable[..., torch.Tensor] | None = None
    inverse_map: InverseMap | None = None
    native_code: int = 0
    randaugment_position: int | None = None


def _enhance(L: torch.Tensor, s: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Enhance factor, 1 = unchanged, floored at 0."""
    return (1.0 + s * 0.09 * L).clamp(min=0.0)


# An enhance factor (1 = unchanged) and a shift or shear, as the public functions accept them.
_FACTOR = ArgumentSpec("factor", low=0.0)
_SHEAR = ArgumentSpec("factor")
_PIXELS = ArgumentSpec("pixels")


def _enhance_op(
    name: str,
    reference: str,
    kernel: Callable[..., torch.Tensor],
    *,
    native_code: int,
    randaugment_position: int,
) -> OpSpec:
    """One of Pillow's four ``ImageEnhance`` ops: a signed factor (:func:`_enhance`), 1 = unchanged."""
    return OpSpec(
        name,
        "colour",
        reference,
        level_rule=_enhance,
        signed=True,
        arguments=(_FACTOR,),
        kernel=kernel,
        native_code=native_code,
        randaugment_position=randaugment_position,
    )


OPS: tuple[OpSpec, ...] = (
    OpSpec("identity", "identity", "A copy of ``x``, unchanged.", randaugment_position=0),
    OpSpec(
        "autocontrast",
        "colour",
        """``ImageOps.autocontrast(img)`` (cutoff 0), per channel of each sample.

        Stretches ``lo..hi`` to ``0..255`` by Pillow's float64 table ``int(v * scale + offset)`` with
        ``scale = 255 / (hi - lo)``, ``offset = -lo * scale``; constant channels stay as they are.""",
        kernel=kernels.autocontrast,
        native_code=1,
        randaugment_position=1,
    ),
    OpSpec(
        "equalize",
        "colour",
        """``ImageOps.equalize(img)``, each channel of each sample with its own histogram.

        Pillow's rule: ``step = (pixels - count of the highest occupied level) // 255``; level ``v`` maps
        to ``(step // 2 + pixels below v) // step``; a channel with ``step == 0`` (e.g. one level) stays.""",
        kernel=kernels.equalize,
        native_code=2,
        randaugment_position=2,
    ),
    OpSpec(
        "invert", "colour", "``ImageOps.invert(img)``: ``255 - x``.", kernel=kernels.invert, native_code=3
    ),
    OpSpec(
        "rotate",
        "geometric",
        "Rotate counter-clockwise about the image centre: ``img.rotate(degrees, NEAREST, fillcolor=fill)``.",
        level_rule=lambda L, s, h, w: s * 3.0 * L,  # degrees, counter-clockwise
        signed=True,
        arguments=(ArgumentSpec("degrees"),),
        inverse_map=affine.rotate_map,
        randaugment_position=3,
    ),
    OpSpec(
        "posterize",
        "colour",
        "``ImageOps.posterize(img, bits)``: keep the ``bits`` highest bits; 0 bits gives black.",
        level_rule=lambda L, s, h, w: (8.0 - torch.round(0.4 * L)).clamp(min=0.0),  # bits kept
        arguments=(ArgumentSpec("bits", low=0, high=8, whole=True),),
        kernel=kernels.posterize,
        native_code=4,
        randaugment_position=6,
    ),
    OpSpec(
        "solarize",
        "colour",
        "``ImageOps.solarize(img, threshold)``: invert every pixel >= threshold (0..256).",
        level_rule=lambda L, s, h, w: (256.0 - 25.6 * L).clamp(min=0.0),  # invert pixels >= threshold
        arguments=(ArgumentSpec("threshold", low=0, high=256),),
        kernel=kernels.solarize,
        native_code=5,
        randaugment_position=4,
    ),
    OpSpec(
        "solarize_add",
        "colour",
        """Add ``addition`` to every pixel < threshold, clipping to 0..255; other pixels stay.

        Pillow has no such op; the reference is the table ``min(255, max(0, int(v + addition)))`` for
        ``v < threshold`` applied with ``img.point``. Fractional additions round down.""",
        level_rule=lambda L, s, h, w: (11.0 * L).clamp(max=MAX_SOLARIZE_ADDITION),  # added below 128
        arguments=(
            ArgumentSpec("addition"),
            ArgumentSpec("threshold", low=0, high=256, default=int(kernels.SOLARIZE_ADD_THRESHOLD)),
        ),
        kernel=kernels.solarize_add,
        native_code=6,
    ),
    # "color" is the op's name in the papers, Pillow (ImageEnhance.Color) and users' augment.ops lists;
    # "colour" is the kind, spelt like the rest of the code. Renaming either would break written configs.
    _enhance_op(
        "color",
        """``ImageEnhance.Color(img).enhance(factor)``: a blend with the image's grey version.

        A grey image is its own grey version, so one channel comes back unchanged.""",
        kernels.color,
        native_code=7,
        randaugment_position=5,
    ),
    _enhance_op(
        "contrast",
        "``ImageEnhance.Contrast(img).enhance(factor)``: a blend with the mean grey level (rounded).",
        kernels.contrast,
        native_code=8,
        randaugment_position=7,
    ),
    _enhance_op(
        "brightness",
        "``ImageEnhance.Brightness(img).enhance(factor)``: a blend with black, i.e. ``x * factor``.",
        kernels.brightness,
        native_code=9,
        randaugment_position=8,
    ),
    _enhance_op(
        "sharpness",
        """``ImageEnhance.Sharpness(img).enhance(factor)``: a blend with the SMOOTH-filtered image.

        The filter leaves the one-pixel border as it is, so border pixels never change. Inside, SMOOTH is
        ``round(S / 13)`` for the sum ``S`` of the 3x3 neighbourhood plus 4 times the centre pixel;
        ``S/13 + 0.5`` is never a tie, so ``floor((S + 6) / 13)`` reproduces Pillow's float arithmetic.""",
        kernels.sharpness,
        native_code=10,
        randaugment_position=9,
    ),
    OpSpec(
        "shear_x",
        "geometric",
        "Shear along x: ``img.transform(size, AFFINE, (1, factor, 0, 0, 1, 0), NEAREST, fillcolor=fill)``.",
        level_rule=lambda L, s, h, w: s * 0.03 * L,  # shear factor
        signed=True,
        arguments=(_SHEAR,),
        inverse_map=lambda factor, h, w: affine.shear_x_map(factor),
        randaugment_position=10,
    ),
    OpSpec(
        "shear_y",
        "geometric",
        "Shear along y: ``img.transform(size, AFFINE, (1, 0, 0, factor, 1, 0), NEAREST, fillcolor=fill)``.",
        level_rule=lambda L, s, h, w: s * 0.03 * L,
        signed=True,
        arguments=(_SHEAR,),
        inverse_map=lambda factor, h, w: affine.shear_y_map(factor),
        randaugment_position=11,
    ),
    OpSpec(
        "translate_x",
        "geometric",
        "Output pixel x reads input x + pixels (content moves left for pixels > 0), Pillow's AFFINE.",
        level_rule=lambda L, s, h, w: s * 0.045 * L * w,  # pixels: 0.45 of the width at level 10
        signed=True,
        arguments=(_PIXELS,),
        inverse_map=lambda pixels, h, w: affine.translate_map(pixels, 0.0),
        randaugment_position=12,
    ),
    OpSpec(
        "translate_y",
        "geometric",
        "Output pixel y reads input y + pixels (content moves up for pixels > 0), Pillow's AFFINE.",
        level_rule=lambda L, s, h, w: s * 0.045 * L * h,
        signed=True,
        arguments=(_PIXELS,),
        inverse_map=lambda pixels, h, w: affine.translate_map(0.0, pixels),
        randaugment_position=13,
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
