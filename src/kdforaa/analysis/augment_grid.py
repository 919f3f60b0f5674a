"""A picture of what a policy does as its level grows: rows = images, columns = the clean image, then levels.

Each cell is the image (upscaled with nearest so small images stay readable) with the ops that produced
it written underneath, so a person can see at which level an op destroys the content. Rows the level
does not change (the image drew only ops without an argument: identity, autocontrast, equalize ...)
give way to images it does; an op without an argument gets one column, "any level".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from kdforaa import atomic
from kdforaa.augment.checks import check_images
from kdforaa.augment.params import AugParams
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


def grid_size(num_images: int, num_columns: int, height: int, width: int, scale: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the grid PNG (``num_columns`` counts the clean column)."""
    cell_w, cell_h = width * scale, height * scale + CAPTION_LINES * LINE
    return PAD + num_columns * (cell_w + PAD), HEADER + PAD + num_images * (cell_h + PAD)


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


def _level_varying(columns: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(N,)`` bool: which images differ between the levels' augmented batches ``(N,C,H,W)``."""
    first = columns[0]
    varies = torch.zeros(first.shape[0], dtype=torch.bool)
    for other in columns[1:]:
        varies |= (other != first).flatten(1).any(1).cpu()
    return varies


def render_grid(
    images: torch.Tensor,
    policy_factory: Callable[[float], Policy],
    path: str | Path,
    *,
    levels: Sequence[float] = (0, 5, 10, 15, 20, 30),
    seed: int = 0,
    scale: int | None = None,
    rows: int | None = None,
) -> Path:
    """Write a PNG grid of images ``(N,C,H,W) uint8`` augmented by ``policy_factory(level)``.

    Image ``i`` uses key ``(seed, 0, i)`` at every level, so with a single-op factory a row shows the
    same op and sign growing. ``rows`` (default all ``N``) images are drawn: first those the level
    changes, in order, then the others. When no image changes with the level (an op without an
    argument) the levels collapse into one column. Returns the path written.
    """
    check_images(images)
    if len(levels) == 0:
        raise BadInput("levels must list at least one level")
    keys = make_keys(seed, 0, torch.arange(images.shape[0]))
    drawn: list[tuple[str, torch.Tensor, AugParams | None]] = []
    for level in levels:
        policy = policy_factory(level)
        params = policy.sample(keys)
        drawn.append((f"level {level:g}", policy.apply(images, params), params))
    varies = _level_varying([augmented for _, augmented, _ in drawn])
    if not varies.any():
        drawn = [("any level", *drawn[0][1:])]
    order = torch.cat([varies.nonzero()[:, 0], (~varies).nonzero()[:, 0]])[: rows or images.shape[0]]
    n, _, h, w = images.shape
    n = order.numel()
    scale = scale or upscale_factor(h, w)
    canvas = Image.new("RGB", grid_size(n, 1 + len(drawn), h, w, scale), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(11)
    cell_w, cell_h = w * scale, h * scale + CAPTION_LINES * LINE
    columns = [("clean", images, None), *drawn]
    for col, (label, batch, shown) in enumerate(columns):
        left = PAD + col * (cell_w + PAD)
        draw.text((left, 3), label, fill="black", font=font)
        for row, index in enumerate(order.tolist()):
            top = HEADER + PAD + row * (cell_h + PAD)
            canvas.paste(_to_pil(batch[index], scale), (left, top))
            caption = f"#{index}" if shown is None else shown.describe(index)
            for line, text in enumerate(_caption(caption, font, cell_w)):
                draw.text((left, top + h * scale + line * LINE), text, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, private=False) as partial:  # the name's extension picks the format
        canvas.save(partial, format=Image.registered_extensions().get(path.suffix.lower()))
    return path
