"""Affine inverse maps in Pillow's convention, and where they make each output pixel read the input.

Convention (the one of Pillow's ``Image.transform(size, AFFINE, data)``): an image is a continuous
plane in which pixel ``(i, j)`` (column ``i``, row ``j``) covers ``[i, i+1) x [j, j+1)``, so its
centre is at ``(i + 0.5, j + 0.5)``. A map ``M`` of shape ``(N,3,3)`` (float64, bottom row
``(0, 0, 1)``) is the *inverse* of a transform: the output pixel whose centre is ``(x, y)`` reads the
input at ``M @ (x, y, 1)``. Its first two rows are Pillow's ``data = (a, b, c, d, e, f)``.

The ``*_map`` functions build maps from per-sample arguments (``(N,)`` arrays or numbers; a map of
numbers only is ``(1,3,3)`` and broadcasts), :func:`compose_maps` chains them, and
:func:`sample_parts` turns maps into the 16.16 fixed-point sample points Pillow's NEAREST reads
(:func:`sample_coefficients`: the few numbers per sample they come from). The maps are built on the
host with numpy: a few numbers per sample, for which numpy costs less per call than torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Pillow's nearest-neighbour affine runs in 16.16 fixed point; we reproduce it exactly.
ONE = 1 << 16
# Row and column parts of a coordinate are clamped to this (8192 px) so that their int32 sum (plus
# a margin) cannot overflow; every point that far out lies outside any image we resample, like
# Pillow's own fixed-point path, which needs +-32768 px.
COORDINATE_LIMIT = 1 << 29


def _affine(rows: list[list[np.ndarray | float]]) -> np.ndarray:
    """Stack two rows of per-sample entries ``[[a, b, c], [d, e, f]]`` (``(N,)`` arrays or numbers)
    into ``(N,3,3)`` float64 matrices."""
    entries = [np.asarray(e, dtype=np.float64).reshape(-1) for row in rows for e in row]
    out = np.zeros((*np.broadcast_shapes(*(e.shape for e in entries)), 3, 3))
    for k, entry in enumerate(entries):
        out[:, k // 3, k % 3] = entry
    out[:, 2, 2] = 1.0
    return out


def rotate_map(degrees: np.ndarray, height: int, width: int) -> np.ndarray:
    """Counter-clockwise rotation about the image centre ``(width/2, height/2)``: ``(N,3,3)``.

    Built as ``Image.rotate(degrees)`` builds its matrix (angle taken modulo 360, cos and sin rounded
    to 15 decimals), so that single rotations resample exactly like Pillow.
    """
    angle = -np.remainder(degrees, 360.0) * (math.pi / 180.0)
    cos, sin = np.round(np.cos(angle), 15), np.round(np.sin(angle), 15)
    cx, cy = width / 2, height / 2
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return _affine([[cos, sin, c], [-sin, cos, f]])


def shear_x_map(factor: np.ndarray) -> np.ndarray:
    """Horizontal shear about the top edge: output ``(x, y)`` reads input ``(x + factor*y, y)``."""
    return _affine([[1.0, factor, 0.0], [0.0, 1.0, 0.0]])


def shear_y_map(factor: np.ndarray) -> np.ndarray:
    """Vertical shear about the left edge: output ``(x, y)`` reads input ``(x, y + factor*x)``."""
    return _affine([[1.0, 0.0, 0.0], [factor, 1.0, 0.0]])


def translate_map(dx: np.ndarray | float, dy: np.ndarray | float) -> np.ndarray:
    """Output ``(x, y)`` reads input ``(x + dx, y + dy)``: positive ``dx`` moves the content left."""
    return _affine([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def flip_map(flip: np.ndarray, width: int) -> np.ndarray:
    """Horizontal mirror where ``flip`` (``(N,)`` bool) is true, identity elsewhere."""
    sign = 1.0 - 2.0 * np.asarray(flip, dtype=np.float64)
    return _affine([[sign, 0.0, (1.0 - sign) * (width / 2)], [0.0, 1.0, 0.0]])


def compose_maps(*maps: np.ndarray) -> np.ndarray:
    """The inverse map of applying the given transforms one after another, first argument first.

    Applying ``A`` then ``B`` means each output pixel reads the intermediate image at ``M_B p``, which
    reads the input at ``M_A (M_B p)``: the product is ``M_A @ M_B @ ...`` in argument order. ``(1,3,3)``
    and ``(N,3,3)`` arguments broadcast.
    """
    out = maps[0]
    for m in maps[1:]:
        out = out @ m
    return out


@dataclass(frozen=True)
class SampleCoefficients:
    """The few numbers per sample from which :func:`sample_parts` expands every row's and column's part.

    ``separable`` ``(N,)`` bool: no rotation or shear term (Pillow's float64 path); ``steps`` ``(N,2)``
    and ``offsets`` ``(N,2)`` float64: per output column (x) and per output row (y), and the point of
    pixel (0, 0) (``c + a/2 + b/2``), used by separable samples; ``fixed`` ``(N,2,3)`` int64: each
    entry rounded to 1/65536 (Pillow's ``affine_fixed``), used by the others. The Triton kernel gets
    these and expands them itself, by the same integer and float64 rules.
    """

    separable: np.ndarray
    steps: np.ndarray
    offsets: np.ndarray
    fixed: np.ndarray


def sample_coefficients(matrix: np.ndarray) -> SampleCoefficients:
    """The coefficients of ``matrix`` ``(N,3,3)`` float64 (see :func:`sample_parts`)."""
    m = matrix[:, :2]
    step_x, step_y = m[:, :, 0:1], m[:, :, 1:2]  # change per output column, per output row
    offset = m[:, :, 2:3] + step_x * 0.5 + step_y * 0.5  # Pillow's order: c + a/2 + b/2
    entries = np.concatenate([step_x, step_y, offset], axis=2)
    with np.errstate(over="ignore"):  # entries near float64's limit become inf, which the clip bounds
        fixed = np.clip(np.floor(entries * ONE + 0.5), -(2.0**40), 2.0**40).astype(np.int64)
    separable = (m[:, 0, 1] == 0) & (m[:, 1, 0] == 0)
    steps = np.stack([m[:, 0, 0], m[:, 1, 1]], axis=1)
    return SampleCoefficients(separable, steps, offset[:, :, 0], fixed)


def sample_parts(matrix: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where every output pixel samples the input, in 16.16 fixed point, as Pillow's NEAREST finds it.

    ``matrix`` is ``(N,3,3)`` float64. The point of output pixel (row ``j``, column ``i``) is
    ``M @ (i+0.5, j+0.5, 1)`` times 65536, returned as ``(rows, cols)``: ``(N,2,H)`` and ``(N,2,W)``
    int32 whose sum ``rows[:, :, j] + cols[:, :, i]`` is that point's x (channel 0) and y (channel 1).
    Pillow has two paths and we follow each per sample: a matrix without rotation or shear terms
    (``b == d == 0``: shifts, flips, scaling) is evaluated in float64 and floored
    (``ImagingScaleAffine``); any other has its entries rounded to 1/65536 first (``affine_fixed``).
    Both start from :func:`sample_coefficients`.
    """
    k = sample_coefficients(matrix)
    sep, fixed = k.separable, k.fixed
    cols, rows = np.arange(width), np.arange(height)
    limit = COORDINATE_LIMIT
    with np.errstate(over="ignore"):
        exact_x = np.floor((k.offsets[sep, 0:1] + k.steps[sep, 0:1] * cols) * ONE)
        exact_y = np.floor((k.offsets[sep, 1:2] + k.steps[sep, 1:2] * rows) * ONE)
    exact_x, exact_y = exact_x.clip(-limit, limit - 1), exact_y.clip(-limit, limit - 1)
    col_part = np.clip(fixed[:, :, 0:1] * cols, -limit, limit - 1)
    row_part = np.clip(fixed[:, :, 1:2] * rows + fixed[:, :, 2:3], -limit, limit - 1)
    col_part[sep] = np.stack([exact_x, np.zeros_like(exact_x)], axis=1)
    row_part[sep] = np.stack([np.zeros_like(exact_y), exact_y], axis=1)
    return row_part.astype(np.int32), col_part.astype(np.int32)


def moving_samples(matrix: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which of the ``(N,3,3)`` maps are not the identity (the samples a warp changes)."""
    return (matrix != np.eye(3)).reshape(len(matrix), 9).any(1)
