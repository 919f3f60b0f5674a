"""Affine inverse maps in Pillow's convention, and one batched resample that applies them.

Convention (the one of Pillow's ``Image.transform(size, AFFINE, data)``): an image is a continuous
plane in which pixel ``(i, j)`` (column ``i``, row ``j``) covers ``[i, i+1) x [j, j+1)``, so its
centre is at ``(i + 0.5, j + 0.5)``. A matrix ``M`` of shape ``(B,3,3)`` (float64, bottom row
``(0, 0, 1)``) is the *inverse* map of a transform: the output pixel whose centre is ``(x, y)`` reads
the input at ``M @ (x, y, 1)``. Its first two rows are Pillow's ``data = (a, b, c, d, e, f)``.

Every ``*_matrix`` function takes per-sample arguments as a ``(B,)`` tensor or a Python number and
returns ``(B,3,3)`` (``(1,3,3)`` when every argument is a number; it broadcasts against ``(B,3,3)``)
on the device of its tensor arguments. ``compose`` chains transforms, and ``warp`` resamples a whole
batch once, so any number of geometric ops costs a single gather.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from kdforaa.errors import BadInput

INTERPOLATIONS = ("nearest", "bilinear")

# Pillow's nearest-neighbour affine runs in 16.16 fixed point; we reproduce it exactly.
_ONE = 1 << 16
# Row and column parts of a coordinate are clamped to this (8192 px) so that their int32 sum (plus
# a margin) cannot overflow; every point that far out lies outside any image we resample, like
# Pillow's own fixed-point path, which needs +-32768 px.
_COORDINATE_LIMIT = 1 << 29


def check_images(x: torch.Tensor) -> None:
    """Raise :class:`BadInput` unless ``x`` is a ``(B,C,H,W)`` uint8 batch with ``C`` in {1, 3}."""
    if not isinstance(x, torch.Tensor):
        raise BadInput(f"x must be a uint8 torch.Tensor of shape (B,C,H,W); got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise BadInput(
            f"x must be a uint8 image batch (values 0..255); got dtype {x.dtype}: "
            "convert float images in [0, 1] with (x * 255).round().to(torch.uint8)"
        )
    if x.ndim != 4:
        raise BadInput(f"x must have shape (B,C,H,W); got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise BadInput(f"x must have 1 (grey) or 3 (RGB) channels; got C={x.shape[1]}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise BadInput(f"x must have a height and width of at least 1 pixel; got {tuple(x.shape)}")


def per_sample(value: torch.Tensor | float, name: str) -> torch.Tensor:
    """A per-sample argument as a ``(B,)`` float64 tensor (``(1,)`` for a number), on its own device."""
    if isinstance(value, bool) or not isinstance(value, torch.Tensor | numbers.Real):
        raise BadInput(f"{name} must be a number or a (B,) tensor; got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and (value.dtype == torch.bool or value.is_complex()):
        raise BadInput(f"{name} must be a real-valued tensor; got dtype {value.dtype}")
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except OverflowError:  # a Python int beyond float64
        size = f"an integer of {value.bit_length()} bits"
        raise BadInput(f"{name} must be a finite number; got {size}") from None
    if t.ndim > 1:
        raise BadInput(f"{name} must be a number or a (B,) tensor; got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _affine(rows: list[list[torch.Tensor | float]]) -> torch.Tensor:
    """Stack two rows of per-sample entries ``[[a, b, c], [d, e, f]]`` into ``(B,3,3)`` matrices."""
    entries = [e for row in rows for e in row]
    like = next((e for e in entries if isinstance(e, torch.Tensor)), None)
    device = like.device if like is not None else torch.device("cpu")
    tensors = torch.broadcast_tensors(
        *[
            e if isinstance(e, torch.Tensor) else torch.tensor([e], dtype=torch.float64, device=device)
            for e in entries
        ]
    )
    batch = tensors[0].shape[0]
    zero = torch.zeros(batch, dtype=torch.float64, device=device)
    one = torch.ones(batch, dtype=torch.float64, device=device)
    return torch.stack([*tensors, zero, zero, one], dim=1).reshape(batch, 3, 3)


def rotate_matrix(degrees: torch.Tensor | float, height: int, width: int) -> torch.Tensor:
    """Counter-clockwise rotation about the image centre ``(width/2, height/2)``: ``(B,3,3)``.

    Built exactly as ``Image.rotate(degrees)`` builds its matrix (angle taken modulo 360, cos and sin
    rounded to 15 decimals), so that single rotations resample exactly like Pillow.
    """
    angle = -torch.remainder(per_sample(degrees, "degrees"), 360.0) * (math.pi / 180.0)
    cos = torch.round(torch.cos(angle), decimals=15)
    sin = torch.round(torch.sin(angle), decimals=15)
    cx, cy = width / 2, height / 2
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return _affine([[cos, sin, c], [-sin, cos, f]])


def shear_x_matrix(factor: torch.Tensor | float) -> torch.Tensor:
    """Horizontal shear about the top edge: output ``(x, y)`` reads input ``(x + factor*y, y)``."""
    return _affine([[1.0, per_sample(factor, "factor"), 0.0], [0.0, 1.0, 0.0]])


def shear_y_matrix(factor: torch.Tensor | float) -> torch.Tensor:
    """Vertical shear about the left edge: output ``(x, y)`` reads input ``(x, y + factor*x)``."""
    return _affine([[1.0, 0.0, 0.0], [per_sample(factor, "factor"), 1.0, 0.0]])


def translate_matrix(dx: torch.Tensor | float, dy: torch.Tensor | float) -> torch.Tensor:
    """Output ``(x, y)`` reads input ``(x + dx, y + dy)``: positive ``dx`` moves the content left."""
    return _affine([[1.0, 0.0, per_sample(dx, "dx")], [0.0, 1.0, per_sample(dy, "dy")]])


def crop_matrix(left: torch.Tensor | int, top: torch.Tensor | int) -> torch.Tensor:
    """A same-size window whose top-left corner sits at input pixel ``(left, top)``: ``(B,3,3)``.

    Padded random crop (pad ``p``, crop back to the input size) is ``left, top`` drawn in
    ``[-p, p]``; the area outside the input gets ``warp``'s fill. Offsets must be whole pixels.
    """
    left_t, top_t = per_sample(left, "left"), per_sample(top, "top")
    for name, t in (("left", left_t), ("top", top_t)):
        if not torch.equal(t, t.round()):
            raise BadInput(f"{name} must be whole pixels (integers); got {t[t != t.round()][0].item()}")
    return translate_matrix(left_t, top_t)


def flip_matrix(flip: torch.Tensor | bool, width: int) -> torch.Tensor:
    """Horizontal mirror where ``flip`` (``(B,)`` bool or one bool) is true, identity elsewhere."""
    sign = 1.0 - 2.0 * torch.as_tensor(flip, dtype=torch.float64).reshape(-1)
    return _affine([[sign, 0.0, (1.0 - sign) * (width / 2)], [0.0, 1.0, 0.0]])


def compose(*matrices: torch.Tensor) -> torch.Tensor:
    """The inverse map of applying the given transforms one after another, first argument first.

    Applying ``A`` then ``B`` means each output pixel reads the intermediate image at ``M_B p``, which
    reads the input at ``M_A (M_B p)``: the product is ``M_A @ M_B @ ...`` in argument order. ``(1,3,3)``
    and ``(B,3,3)`` arguments broadcast.
    """
    if not matrices:
        raise BadInput("compose needs at least one matrix")
    out = matrices[0]
    for m in matrices[1:]:
        out = out @ m
    return out


def _sample_points(
    matrix: torch.Tensor, batch: int, height: int, width: int, device: torch.device, margin: int = 0
) -> torch.Tensor:
    """Where every output pixel samples the input, in 16.16 fixed point, as Pillow's NEAREST finds it.

    Returns ``(B,2,H,W)`` int32: x (channel 0) and y (channel 1) of ``M @ (col+0.5, row+0.5, 1)``
    plus ``margin`` pixels, times 65536. Pillow has two paths and we follow each per sample: a matrix
    without rotation or shear terms (``b == d == 0``: shifts, flips, scaling) is evaluated in float64
    and floored (``ImagingScaleAffine``); any other has its entries rounded to 1/65536 first
    (``affine_fixed``). A coordinate is a row part plus a column part, built small and summed once.
    """
    m = matrix.to(device, torch.float64)[:, :2].expand(batch, 2, 3)
    step_x, step_y = m[:, :, 0:1], m[:, :, 1:2]  # change per output column, per output row
    offset = m[:, :, 2:3] + step_x * 0.5 + step_y * 0.5  # Pillow's order: c + a/2 + b/2
    cols = torch.arange(width, device=device)
    rows = torch.arange(height, device=device)
    limit = _COORDINATE_LIMIT

    fixed = torch.floor(torch.cat([step_x, step_y, offset], dim=2) * _ONE + 0.5).clamp_(-(2.0**40), 2.0**40)
    fixed = fixed.to(torch.int64)
    col_part = (fixed[:, :, 0:1] * cols).clamp_(-limit, limit - 1).to(torch.float64)
    row_part = (fixed[:, :, 1:2] * rows + fixed[:, :, 2:3]).clamp_(-limit, limit - 1).to(torch.float64)

    separable = ((m[:, 0, 1] == 0) & (m[:, 1, 0] == 0)).view(batch, 1, 1)
    exact_x = torch.floor((offset[:, 0] + step_x[:, 0] * cols) * _ONE).clamp_(-limit, limit - 1)
    exact_y = torch.floor((offset[:, 1] + step_y[:, 1] * rows) * _ONE).clamp_(-limit, limit - 1)
    col_part = torch.where(separable, torch.stack([exact_x, torch.zeros_like(exact_x)], dim=1), col_part)
    row_part = torch.where(separable, torch.stack([torch.zeros_like(exact_y), exact_y], dim=1), row_part)
    row_part += margin * _ONE
    return row_part.to(torch.int32)[:, :, :, None] + col_part.to(torch.int32)[:, :, None, :]


def _check_matrix(matrix: torch.Tensor, batch: int) -> None:
    if not isinstance(matrix, torch.Tensor) or matrix.shape[-2:] != (3, 3) or matrix.ndim not in (2, 3):
        shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise BadInput(f"matrix must be a (B,3,3) or (3,3) tensor; got {shape}")
    if matrix.ndim == 3 and matrix.shape[0] not in (1, batch):
        raise BadInput(f"matrix has {matrix.shape[0]} matrices for a batch of {batch} images")
    if not torch.isfinite(matrix).all():
        raise BadInput("matrix must contain only finite numbers")


def check_fill(fill: int) -> None:
    """Raise :class:`BadInput` unless ``fill`` is a whole grey level 0..255."""
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
        raise BadInput(f"fill must be an integer grey level 0..255; got {fill!r}")


def warp(
    x: torch.Tensor, matrix: torch.Tensor, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Resample a batch through per-sample inverse maps in one pass: ``(B,C,H,W)`` uint8 -> same.

    ``matrix`` is ``(B,3,3)``, ``(1,3,3)`` or ``(3,3)`` (see the module docstring); its bottom row is
    ignored. Output pixels that read outside the input get ``fill`` (0..255, all channels).
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
    matrix = matrix.reshape(-1, 3, 3)
    if interpolation == "nearest":
        return _nearest(x, _sample_points(matrix, batch, height, width, x.device, margin=1), fill)
    return _bilinear(x, _sample_points(matrix, batch, height, width, x.device), fill)


def _nearest(x: torch.Tensor, points: torch.Tensor, fill: int) -> torch.Tensor:
    """Gather the pixel containing each sample point from a copy of ``x`` inside a square of ``fill``.

    The input sits at rows ``1..H``, columns ``1..W`` of a ``(side, side)`` canvas with
    ``side = max(H, W) + 2``, and ``points`` are in canvas coordinates (one pixel of margin added);
    clamping pixel indices to the canvas sends every point outside the image to a fill pixel.
    """
    batch, channels, height, width = x.shape
    side = max(height, width) + 2
    canvas = torch.full((batch, channels, side, side), fill, dtype=torch.uint8, device=x.device)
    canvas[:, :, 1 : height + 1, 1 : width + 1] = x
    pixel = points.bitwise_right_shift_(16).clamp_(0, side - 1)
    index = torch.empty((batch, height, width), dtype=torch.int64, device=x.device)
    torch.add(pixel[:, 0], pixel[:, 1], alpha=side, out=index)
    index = index.view(batch, 1, height * width).expand(batch, channels, height * width)
    return canvas.view(batch, channels, side * side).gather(2, index).view(x.shape)


def _bilinear(x: torch.Tensor, points: torch.Tensor, fill: int) -> torch.Tensor:
    """Pillow's bilinear filter via ``grid_sample``: 2x2 neighbours of the point (edges repeated).

    Points outside the image read ``fill``. Pillow truncates the blended value; we truncate after
    adding a margin (1/64, more above 256 px) that absorbs float32 coordinate error, so whole values
    (an identity map, whole-pixel shifts) stay exact, and we differ from Pillow by one grey level
    only where its value lies within the margin below a whole number.
    """
    height, width = x.shape[2:]
    size = torch.tensor([width, height], dtype=torch.int32, device=x.device).view(1, 2, 1, 1)
    inside = ((points >= 0) & (points < size * _ONE)).all(1, keepdim=True)
    # Pixel-centre coordinates (pixel i at i), normalised so that -1 and 1 are the first and last centre.
    scale = 2.0 / (size - 1).clamp(min=1).to(torch.float32)
    grid = points.to(torch.float32).mul_(1.0 / _ONE).sub_(0.5).mul_(scale).sub_(1.0).permute(0, 2, 3, 1)
    value = F.grid_sample(
        x.to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    margin = max(1.0 / 64, max(height, width) * 2.0**-14)  # float32 error grows with the image side
    value = value.add_(margin).to(torch.uint8)
    return value.mul_(inside).add_((~inside).view(torch.uint8) * fill)
