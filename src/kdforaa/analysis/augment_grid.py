"""A picture of what a policy does as its level grows: rows = images, columns = levels.

Each cell is the augmented image (upscaled with nearest so small images stay readable) with the ops
that produced it written underneath, so a person can see at which level an op destroys the content.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from kdforaa import atomic
from kdforaa.augment.geometry import check_images
from kdforaa.augment.policies import Policy
from kdforaa.augment.random import make_keys
from kdforaa.errors import BadInput

PAD = 6  # pixels between cells and around the grid
HEADER = 18  # height of the column labels
LINE = 12  # height of one caption line under a cell
CAPTION_LINES = 2  # caption lines under each cell (one op per line; the rest is elided)
MIN_CELL = 96  # small images are upscaled by an integer factor to at least this many pixels


def upscale_factor(height: int, width: int) -> int:
    """The integer nearest-neighbour zoom that makes the larger side at least ``MIN_CELL`` pixels."""
    return max(1, math.ceil(MIN_CELL / max(height, width)))


def grid_size(num_images: int, num_levels: int, height: int, width: int, scale: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the grid PNG."""
    cell_w, cell_h = width * scale, height * scale + CAPTION_LINES * LINE
    return PAD + num_levels * (cell_w + PAD), HEADER + PAD + num_images * (cell_h + PAD)


def _to_pil(image: torch.Tensor, scale: int) -> Image.Image:
    """``(C,H,W) uint8`` -> RGB Pillow image zoomed ``scale`` times with nearest."""
    array = image.permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(np.ascontiguousarray(array[..., 0] if array.shape[2] == 1 else array)).convert(
        "RGB"
    )
    return pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)


def _caption(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """One op per line, at most ``CAPTION_LINES`` lines, each cut to fit ``width`` pixels."""
    parts = text.split(", ")
    if len(parts) > CAPTION_LINES:
        parts = [*parts[: CAPTION_LINES - 1], "..."]
    fitted = []
    for part in parts:
        while len(part) > 1 and font.getlength(part) > width:
            part = part[:-1]
        fitted.append(part)
    return fitted


def render_grid(
    images: torch.Tensor,
    policy_factory: Callable[[float], Policy],
    path: str | Path,
    *,
    levels: Sequence[float] = (0, 5, 10, 15, 20, 30),
    seed: int = 0,
    scale: int | None = None,
) -> Path:
    """Write a PNG grid of ``images`` ``(N,C,H,W) uint8`` augmented by ``policy_factory(level)``.

    Image ``i`` uses key ``(seed, 0, i)`` at every level, so with a single-op factory a row shows the
    same op and sign growing. Returns the path written.
    """
    check_images(images)
    if len(levels) == 0:
        raise BadInput("levels must list at least one level")
    n, _, h, w = images.shape
    scale = scale or upscale_factor(h, w)
    canvas = Image.new("RGB", grid_size(n, len(levels), h, w, scale), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(11)
    keys = make_keys(seed, 0, torch.arange(n))
    cell_w, cell_h = w * scale, h * scale + CAPTION_LINES * LINE
    for col, level in enumerate(levels):
        policy = policy_factory(level)
        params = policy.sample(keys)
        augmented = policy.apply(images, params)
        left = PAD + col * (cell_w + PAD)
        draw.text((left, 3), f"level {level:g}", fill="black", font=font)
        for row in range(n):
            top = HEADER + PAD + row * (cell_h + PAD)
            canvas.paste(_to_pil(augmented[row], scale), (left, top))
            for line, text in enumerate(_caption(params.describe(row), font, cell_w)):
                draw.text((left, top + h * scale + line * LINE), text, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, private=False) as partial:  # the name's extension picks the format
        canvas.save(partial, format=Image.registered_extensions().get(path.suffix.lower()))
    return path
