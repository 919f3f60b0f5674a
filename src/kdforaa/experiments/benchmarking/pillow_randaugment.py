"""The baseline the benchmarks compare against: RandAugment through Pillow, one image at a time, as timm
runs it in a DataLoader's CPU workers. Same 14 ops and level table as ours (``op_argument``), so that the
two differ in how they run, not in what they compute."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from kdforaa.augment.op_table import SIGNED_OPS, op_argument
from kdforaa.augment.policies import RANDAUGMENT_OPS

PillowOp = Callable[[Image.Image, float], Image.Image]


def _affine(data: Callable[[float], tuple[float, ...]]) -> PillowOp:
    """An affine op whose 2x3 inverse matrix is ``data(argument)``, nearest neighbour, black fill."""

    def run(img: Image.Image, arg: float) -> Image.Image:
        fill = (0,) * len(img.getbands())
        return img.transform(
            img.size, Image.Transform.AFFINE, data(arg), Image.Resampling.NEAREST, fillcolor=fill
        )

    return run


# Each op of our table by name, taking the argument our level table gives (an angle, a factor, pixels ...)
PILLOW_OPS: dict[str, PillowOp] = {
    "identity": lambda img, a: img,
    "autocontrast": lambda img, a: ImageOps.autocontrast(img),
    "equalize": lambda img, a: ImageOps.equalize(img),
    "invert": lambda img, a: ImageOps.invert(img),
    "rotate": lambda img, a: img.rotate(a, Image.Resampling.NEAREST, fillcolor=(0,) * len(img.getbands())),
    "posterize": lambda img, a: ImageOps.posterize(img, int(a)),
    # Pillow inverts the levels v >= threshold; for whole levels v, v < a is v < ceil(a) (a: 25.6 at 9)
    "solarize": lambda img, a: ImageOps.solarize(img, math.ceil(a)),
    "solarize_add": lambda img, a: img.point(
        [min(255, v + int(a)) if v < 128 else v for v in range(256)] * 3
    ),
    "color": lambda img, a: ImageEnhance.Color(img).enhance(a),
    "contrast": lambda img, a: ImageEnhance.Contrast(img).enhance(a),
    "brightness": lambda img, a: ImageEnhance.Brightness(img).enhance(a),
    "sharpness": lambda img, a: ImageEnhance.Sharpness(img).enhance(a),
    "shear_x": _affine(lambda a: (1, a, 0, 0, 1, 0)),
    "shear_y": _affine(lambda a: (1, 0, 0, a, 1, 0)),
    "translate_x": _affine(lambda a: (1, 0, a, 0, 1, 0)),
    "translate_y": _affine(lambda a: (1, 0, 0, 0, 1, a)),
}


class PillowRandAugment:
    """RandAugment(``num_ops``, ``magnitude``) one image at a time through Pillow; ``rng`` draws the ops
    and signs (a DataLoader worker reseeds it, see the benchmarks' ``seed_worker``).

    Op arguments come from our level table, computed once per image size (timm's level-to-argument
    functions are plain Python arithmetic, so per-image torch calls would handicap Pillow).
    """

    def __init__(self, num_ops: int, magnitude: float, seed: int = 0) -> None:
        self.num_ops, self.magnitude = num_ops, magnitude
        self.rng = random.Random(seed)
        self._arguments: dict[tuple[int, int], dict[tuple[str, float], float]] = {}

    def _table(self, height: int, width: int) -> dict[tuple[str, float], float]:
        """Each (op, sign)'s argument at this magnitude for ``height`` x ``width`` images."""
        if (height, width) not in self._arguments:
            self._arguments[(height, width)] = {
                (op, sign): float(op_argument(op, self.magnitude, sign, height=height, width=width))
                for op in RANDAUGMENT_OPS
                for sign in (-1.0, 1.0)
            }
        return self._arguments[(height, width)]

    def augment_one(self, img: Image.Image) -> Image.Image:
        """``num_ops`` ops drawn from the 14, each with its sign, on one Pillow image."""
        table = self._table(img.height, img.width)
        for _ in range(self.num_ops):
            op = self.rng.choice(RANDAUGMENT_OPS)
            sign = self.rng.choice((-1.0, 1.0)) if op in SIGNED_OPS else 1.0
            img = PILLOW_OPS[op](img, table[(op, sign)])
        return img

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` uint8 (any device) -> ``(B, C, H, W)`` uint8 on the CPU, the conversions to
        and from Pillow included (a Pillow pipeline pays them too)."""
        arrays = x.permute(0, 2, 3, 1).cpu().numpy()
        out = [np.asarray(self.augment_one(Image.fromarray(a))) for a in arrays]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
