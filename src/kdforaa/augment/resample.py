"""One resample per batch: every sample through its own affine inverse map, in Pillow's arithmetic.

:func:`warp` takes the maps of :mod:`kdforaa.augment.affine`, so any number of geometric ops costs a
single resample. With nearest interpolation, samples whose output rows are runs of consecutive input
pixels (shifts, crops, mirrors, horizontal shears: :func:`row_runs`) are copied row by row, the others
gathered pixel by pixel; bilinear samples blend their 2x2 neighbours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from kdforaa.augment.affine import ONE, moving_samples, sample_parts
from kdforaa.augment.checks import check_fill, check_images
from kdforaa.augment.pieces import by_pieces, write_rows
from kdforaa.errors import BadInput

INTERPOLATIONS = ("nearest", "bilinear")

# Input values per piece when resampling a large batch (see by_pieces): a few images of 224x224.
_RESAMPLE_PIECE = 1 << 21


def _check_matrix(matrix: torch.Tensor, batch: int) -> None:
    if not isinstance(matrix, torch.Tensor) or matrix.shape[-2:] != (3, 3) or matrix.ndim not in (2, 3):
        shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise BadInput(f"matrix must be a (B,3,3) or (3,3) tensor; got {shape}")
    if matrix.ndim == 3 and matrix.shape[0] not in (1, batch):
        raise BadInput(f"matrix has {matrix.shape[0]} matrices for a batch of {batch} images")
    if not torch.isfinite(matrix).all():
        raise BadInput("matrix must contain only finite numbers")


def warp(
    x: torch.Tensor, matrix: torch.Tensor, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Resample a batch through per-sample inverse maps in one pass: ``(B,C,H,W)`` uint8 -> same.

    ``matrix`` is ``(B,3,3)``, ``(1,3,3)`` or ``(3,3)``: inverse maps in the convention of
    :mod:`kdforaa.augment.affine`; its bottom row is ignored. Output pixels that read outside the input
    get ``fill`` (0..255, all channels).
    ``"nearest"`` reproduces Pillow's ``Image.transform(..., AFFINE, data, NEAREST)`` pixel for pixel
    (16.16 fixed-point coordinates, floor); ``"bilinear"`` follows Pillow's ``BILINEAR`` within one
    grey level: a sample point inside the image blends its 2x2 neighbours (edge pixels repeated).
    An identity matrix returns an exact copy with either interpolation.
    """
    check_images(x)
    check_fill(fill)
    if interpolation not in INTERPOLATIONS:
        raise BadInput(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
    batch, channels, height, width = x.shape
    _check_matrix(matrix, batch)
    maps = matrix.detach().cpu().numpy().astype(np.float64).reshape(-1, 3, 3)
    return _resample(x, np.broadcast_to(maps, (batch, 3, 3)), fill, interpolation)


def warp_moved(x: torch.Tensor, m: np.ndarray, fill: int, interpolation: str, owned: bool) -> torch.Tensor:
    """:func:`warp` for the samples whose ``(B,3,3)`` float64 map is not the identity; the others stay.

    No validation (callers pass checked arguments). Writes into ``x`` when ``owned``, else into a copy;
    returns ``x`` itself when nothing moves.
    """
    moving = moving_samples(m)
    if not moving.any():
        return x
    if moving.all():
        return _resample(x, m, fill, interpolation)
    out = x.contiguous() if owned else x.clone(memory_format=torch.contiguous_format)
    samples = moving.nonzero()[0]
    return _resample(x, m[samples], fill, interpolation, out=out, samples=samples)


def _resample(
    x: torch.Tensor,
    matrix: np.ndarray,
    fill: int,
    interpolation: str,
    out: torch.Tensor | None = None,
    samples: np.ndarray | None = None,
) -> torch.Tensor:
    """Resample the samples ``samples`` of ``x`` (all when None), each through its map in ``matrix``.

    ``matrix`` is ``(N,3,3)`` float64, one per resampled sample. Each kind of sample goes through its
    own kernel (row runs or single pixels, for nearest), so results are written into ``out`` (a new
    tensor when None) unless one kernel takes the whole batch.
    """
    batch, _, height, width = x.shape
    x = x.contiguous()  # the kernels' canvases are viewed as flat rows
    if batch == 0:
        return torch.empty_like(x)
    rows, cols = sample_parts(matrix, height, width)
    # (which samples, their kernel, its extra per-sample arrays, its options)
    groups: list[tuple[np.ndarray, Callable[..., torch.Tensor], tuple[np.ndarray, ...], dict[str, bool]]]
    if interpolation == "bilinear":
        groups = [(np.ones(len(rows), dtype=bool), _bilinear, (), {})]
    else:
        runs, backward = row_runs(rows, cols)
        mirror = {"mirror": bool(backward[runs].any())}
        groups = [(runs, _copy_runs, (backward,), mirror), (~runs, _gather_points, (), {})]
    for chosen, kernel, extra, options in groups:
        if not chosen.any():
            continue
        parts = [torch.from_numpy(np.ascontiguousarray(t[chosen])).to(x.device) for t in (rows, cols, *extra)]
        index = chosen.nonzero()[0] if samples is None else samples[chosen]
        resample = functools.partial(kernel, fill=fill, **options)
        if out is None and len(index) == batch:
            return by_pieces(resample, _RESAMPLE_PIECE, x, *parts)  # one kernel for the whole batch
        targets = torch.from_numpy(index).to(x.device)
        out = torch.empty_like(x) if out is None else out
        write_rows(out, targets, by_pieces(resample, _RESAMPLE_PIECE, x.index_select(0, targets), *parts))
    assert out is not None  # the groups cover every sample of a non-empty batch
    return out


def row_runs(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` bool ``runs`` and ``backward``: for ``runs``, output row ``j`` reads one input row, at
    columns ``p_j + i`` for output column ``i`` (``p_j - i`` where ``backward``).

    True when y does not change along a row and x moves by exactly one pixel per column: either in
    16.16 (then for every row), or, where every row has the same x part, in the pixels of the first row.
    """
    x_cols, y_cols = cols[:, 0], cols[:, 1]
    level = (y_cols == y_cols[:, :1]).all(1)
    steps = np.diff(x_cols, axis=1)
    same_x = (rows[:, 0] == rows[:, 0, :1]).all(1)
    pixel_steps = np.diff((rows[:, 0, :1] + x_cols) >> 16, axis=1)
    forward = (steps == ONE).all(1) | (same_x & (pixel_steps == 1).all(1))
    backward = (steps == -ONE).all(1) | (same_x & (pixel_steps == -1).all(1))
    return level & (forward | backward), backward & ~forward


def _copy_runs(
    x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, backward: torch.Tensor, fill: int, mirror: bool
) -> torch.Tensor:
    """Nearest resampling of samples whose rows are runs (see :func:`row_runs`), one row copy each.

    Each output row is ``W`` consecutive pixels of a canvas holding the input with fill around it; a
    backward sample is mirrored there, which turns its runs forward. ``mirror`` says whether any sample
    is backward (known on the host, so a GPU batch is not synchronised to ask).
    """
    batch, channels, height, width = x.shape
    first = (rows[:, 0] + cols[:, 0, :1]).bitwise_right_shift_(16)  # (B,H) input column of output column 0
    source = (rows[:, 1] + cols[:, 1, :1]).bitwise_right_shift_(16)  # (B,H) input row
    mirrored = backward.view(batch, 1)
    first = torch.where(mirrored, (width - 1) - first, first)
    # Canvas row 0 is fill, row k+1 is input row k followed by W fill pixels.
    if mirror:
        x = torch.where(mirrored.view(batch, 1, 1, 1), x.flip(3), x)
    canvas = F.pad(x, (0, width, 1, 0), value=fill)
    # A run starting p pixels left (p < 0) or right of input row k starts p pixels from canvas row k+1: its
    # pixels outside the input are the fill at the end of the row above or of its own row. Runs starting
    # a whole width or more outside the input, and rows outside it, read fill only (row 0).
    inside = (source >= 0) & (source < height)
    column = torch.where(inside, first.clamp_(-width, width), 0)
    line = 2 * width
    offset = torch.where(inside, source + 1, 0).mul_(line).add_(column)
    planes = torch.arange(batch * channels, device=x.device).view(batch, channels, 1) * ((height + 1) * line)
    starts = (planes + offset.view(batch, 1, height)).view(-1)
    runs = canvas.view(-1).unfold(0, width, 1).index_select(0, starts)
    return runs.view(x.shape)


def _gather_points(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, fill: int) -> torch.Tensor:
    """Nearest resampling pixel by pixel, from a copy of ``x`` framed by one pixel of ``fill``.

    Clamping pixel indices to the ``(H+2, W+2)`` canvas sends every point outside the image to the frame.
    """
    batch, channels, height, width = x.shape
    line = width + 2
    canvas = F.pad(x, (1, 1, 1, 1), value=fill)
    rows = rows + ONE  # one pixel of margin: canvas coordinates (|rows|, |cols| < 2**29, no overflow)
    px = (rows[:, 0, :, None] + cols[:, 0, None, :]).bitwise_right_shift_(16).clamp_(0, line - 1)
    py = (rows[:, 1, :, None] + cols[:, 1, None, :]).bitwise_right_shift_(16).clamp_(0, height + 1)
    index = py.mul_(line).add_(px).to(torch.int64).view(batch, 1, height * width)
    index = index.expand(batch, channels, height * width)
    return canvas.view(batch, channels, -1).gather(2, index).view(x.shape)


def bilinear_margin(height: int, width: int) -> float:
    """What a bilinear value gets before truncation: 1/64, more above 256 px, where float32
    coordinate error grows with the image side (see :func:`_bilinear`)."""
    return max(1.0 / 64, max(height, width) * 2.0**-14)


def _bilinear(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, fill: int) -> torch.Tensor:
    """Pillow's bilinear filter via ``grid_sample``: 2x2 neighbours of the point (edges repeated).

    Points outside the image read ``fill``. Pillow truncates the blended value; we truncate after
    adding a margin (1/64, more above 256 px) that absorbs float32 coordinate error, so whole values
    (an identity map, whole-pixel shifts) stay exact, and we differ from Pillow by one grey level
    only where its value lies within the margin below a whole number.
    """
    height, width = x.shape[2:]
    points = rows[:, :, :, None] + cols[:, :, None, :]
    size = torch.tensor([width, height], dtype=torch.int32, device=x.device).view(1, 2, 1, 1)
    inside = ((points >= 0) & (points < size * ONE)).all(1, keepdim=True)
    # Pixel-centre coordinates (pixel i at i), normalised so that -1 and 1 are the first and last centre.
    scale = 2.0 / (size - 1).clamp(min=1).to(torch.float32)
    grid = points.to(torch.float32).mul_(1.0 / ONE).sub_(0.5).mul_(scale).sub_(1.0).permute(0, 2, 3, 1)
    value = F.grid_sample(
        x.to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    value = value.add_(bilinear_margin(height, width)).to(torch.uint8)
    return value.mul_(inside).add_((~inside).view(torch.uint8) * fill)
