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

from kdforaa.errors import BadInput

INTERPOLATIONS = ("nearest", "bilinear")

# Pillow's nearest-neighbour affine runs in 16.16 fixed point; we reproduce it exactly.
_ONE = 1 << 16
# Row and column parts of a coordinate are clamped to this (16384 px) so that their int32 sum cannot
# overflow; every point that far out lies outside any image we resample, like Pillow's own fixed-point
# path, which needs +-32768 px.
_COORDINATE_LIMIT = 1 << 30


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
    t = torch.as_tensor(value).to(torch.float64)
    if t.ndim > 1:
        raise BadInput(f"{name} must be a number or a (B,) tensor; got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _affine(rows: list[list[torch.Tensor | float]]) -> torch.Tensor:
    """Stack two rows of per-sample entries ``[[a, b, c], [d, e, f]]`` into ``(B,3,3)`` matrices."""
    entries = [e for row in rows for e in row]
    like = next((e for e in entries if isinstance(e, torch.Tensor)), None)
    device = like.device if like is not None else torch.device("cpu")
    tensors = torch.broadcast_tensors(
        *[e if isinstance(e, torch.Tensor) else torch.tensor([e], dtype=torch.float64, device=device) for e in entries]
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
    """Horizontal mirror where ``flip`` is true, identity elsewhere: ``(B,3,3)``; ``flip`` is ``(B,)`` bool."""
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


def _fixed_point(matrix: torch.Tensor, batch: int, height: int, width: int, device: torch.device):
    """Sample coordinates of every output pixel in 16.16 fixed point, exactly as Pillow computes them.

    Returns ``(xx, yy)``, each ``(B,H,W)`` int32: the input position ``M @ (x+0.5, y+0.5, 1)`` times
    65536, with the matrix entries rounded to 1/65536 first (Pillow's ``affine_fixed``).
    """
    m = matrix.to(torch.float64)
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    entries = torch.stack([a, b, c + a * 0.5 + b * 0.5, d, e, f + d * 0.5 + e * 0.5], dim=1)
    fixed = torch.floor(entries * float(_ONE) + 0.5).clamp(-(2.0**40), 2.0**40).to(torch.int64)
    fixed = fixed.to(device).expand(batch, 6)
    cols = torch.arange(width, device=device, dtype=torch.int64)
    rows = torch.arange(height, device=device, dtype=torch.int64)

    def plane(step_x: torch.Tensor, step_y: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        row_part = (offset[:, None] + step_y[:, None] * rows).clamp(-_COORDINATE_LIMIT, _COORDINATE_LIMIT - 1)
        col_part = (step_x[:, None] * cols).clamp(-_COORDINATE_LIMIT, _COORDINATE_LIMIT - 1)
        return row_part.to(torch.int32)[:, :, None] + col_part.to(torch.int32)[:, None, :]

    return plane(fixed[:, 0], fixed[:, 1], fixed[:, 2]), plane(fixed[:, 3], fixed[:, 4], fixed[:, 5])


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
    (16.16 fixed-point coordinates, floor); ``"bilinear"`` follows Pillow's ``BILINEAR``: a sample
    point inside the image blends its 2x2 neighbours (edge pixels repeated) and truncates.
    An identity matrix returns an exact copy with either interpolation.
    """
    check_images(x)
    check_fill(fill)
    if interpolation not in INTERPOLATIONS:
        raise BadInput(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
    batch, channels, height, width = x.shape
    _check_matrix(matrix, batch)
    xx, yy = _fixed_point(matrix.reshape(-1, 3, 3), batch, height, width, x.device)
    if interpolation == "nearest":
        return _nearest(x, xx, yy, fill)
    return _bilinear(x, xx, yy, fill)


def _nearest(x: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, fill: int) -> torch.Tensor:
    """Gather the pixel containing each sample point from a copy of ``x`` framed by one fill pixel.

    Coordinates are clamped into the frame, so every point outside the image reads ``fill``.
    """
    batch, channels, height, width = x.shape
    framed = torch.full((batch, channels, height + 2, width + 2), fill, dtype=torch.uint8, device=x.device)
    framed[:, :, 1:-1, 1:-1] = x
    col = (xx >> 16).add_(1).clamp_(0, width + 1)
    row = (yy >> 16).add_(1).clamp_(0, height + 1)
    index = row.mul_(width + 2).add_(col).to(torch.int64).reshape(batch, 1, height * width)
    out = framed.reshape(batch, channels, -1).gather(2, index.expand(batch, channels, height * width))
    return out.reshape(x.shape)


def _bilinear(x: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, fill: int) -> torch.Tensor:
    """Pillow's bilinear filter: blend the 2x2 neighbours of ``point - 0.5`` (clamped), truncate."""
    batch, channels, height, width = x.shape
    inside = (xx >= 0) & (xx < width * _ONE) & (yy >= 0) & (yy < height * _ONE)
    xs, ys = xx - _ONE // 2, yy - _ONE // 2
    x0, y0 = xs >> 16, ys >> 16
    dx = (xs & (_ONE - 1)).to(torch.float32).div_(_ONE)[:, None]
    dy = (ys & (_ONE - 1)).to(torch.float32).div_(_ONE)[:, None]
    flat = x.reshape(batch, channels, -1)

    def pixels(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        index = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
        index = index.to(torch.int64).reshape(batch, 1, -1).expand(batch, channels, -1)
        return flat.gather(2, index).reshape(batch, channels, height, width).to(torch.float32)

    top_left, top_right = pixels(y0, x0), pixels(y0, x0 + 1)
    bottom_left, bottom_right = pixels(y0 + 1, x0), pixels(y0 + 1, x0 + 1)
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    value = (top + (bottom - top) * dy).to(torch.uint8)
    return torch.where(inside[:, None], value, torch.tensor(fill, dtype=torch.uint8, device=x.device))
