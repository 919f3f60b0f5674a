"""Affine inverse maps in Pillow's convention, and one batched resample that applies them.

Convention (the one of Pillow's ``Image.transform(size, AFFINE, data)``): an image is a continuous
plane in which pixel ``(i, j)`` (column ``i``, row ``j``) covers ``[i, i+1) x [j, j+1)``, so its
centre is at ``(i + 0.5, j + 0.5)``. A matrix ``M`` of shape ``(B,3,3)`` (float64, bottom row
``(0, 0, 1)``) is the *inverse* map of a transform: the output pixel whose centre is ``(x, y)`` reads
the input at ``M @ (x, y, 1)``. Its first two rows are Pillow's ``data = (a, b, c, d, e, f)``.

Every ``*_matrix`` function takes per-sample arguments as a ``(B,)`` tensor or a Python number and
returns ``(B,3,3)`` (``(1,3,3)`` when every argument is a number; it broadcasts against ``(B,3,3)``)
on the device of its tensor arguments. ``compose`` chains transforms, and ``warp`` resamples a whole
batch once, so any number of geometric ops costs a single resample: samples whose output rows are runs
of consecutive input pixels (shifts, crops, mirrors, horizontal shears) are copied row by row, the
others gathered pixel by pixel.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdforaa.errors import BadInput

INTERPOLATIONS = ("nearest", "bilinear")

# Pillow's nearest-neighbour affine runs in 16.16 fixed point; we reproduce it exactly.
_ONE = 1 << 16
# Row and column parts of a coordinate are clamped to this (8192 px) so that their int32 sum (plus
# a margin) cannot overflow; every point that far out lies outside any image we resample, like
# Pillow's own fixed-point path, which needs +-32768 px.
COORDINATE_LIMIT = 1 << 29

# Input values per piece when resampling a large batch (see by_pieces): a few images of 224x224.
_RESAMPLE_PIECE = 1 << 21


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
        assert isinstance(value, int)  # the one argument that overflows float64
        size = f"an integer of {value.bit_length()} bits"
        raise BadInput(f"{name} must be a finite number; got {size}") from None
    if t.ndim > 1:
        raise BadInput(f"{name} must be a number or a (B,) tensor; got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _affine(rows: list[list[np.ndarray | float]]) -> np.ndarray:
    """Stack two rows of per-sample entries ``[[a, b, c], [d, e, f]]`` (``(N,)`` arrays or numbers)
    into ``(N,3,3)`` float64 matrices."""
    entries = [np.asarray(e, dtype=np.float64).reshape(-1) for row in rows for e in row]
    out = np.zeros((*np.broadcast_shapes(*(e.shape for e in entries)), 3, 3))
    for k, entry in enumerate(entries):
        out[:, k // 3, k % 3] = entry
    out[:, 2, 2] = 1.0
    return out


# The maps are built on the host with numpy (a few numbers per sample: numpy's cost per call is a fraction
# of torch's); the public *_matrix functions below take and give tensors.


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


def _host(value: torch.Tensor | float, name: str) -> tuple[np.ndarray, torch.device]:
    """A checked per-sample argument as a float64 numpy array, and the device it came on."""
    t = per_sample(value, name)
    return t.cpu().numpy(), t.device


def _tensor(matrix: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(matrix).to(device)


def rotate_matrix(degrees: torch.Tensor | float, height: int, width: int) -> torch.Tensor:
    """:func:`rotate_map` of a number or ``(B,)`` tensor, on its device."""
    angle, device = _host(degrees, "degrees")
    return _tensor(rotate_map(angle, height, width), device)


def shear_x_matrix(factor: torch.Tensor | float) -> torch.Tensor:
    """:func:`shear_x_map` of a number or ``(B,)`` tensor, on its device."""
    value, device = _host(factor, "factor")
    return _tensor(shear_x_map(value), device)


def shear_y_matrix(factor: torch.Tensor | float) -> torch.Tensor:
    """:func:`shear_y_map` of a number or ``(B,)`` tensor, on its device."""
    value, device = _host(factor, "factor")
    return _tensor(shear_y_map(value), device)


def translate_matrix(dx: torch.Tensor | float, dy: torch.Tensor | float) -> torch.Tensor:
    """:func:`translate_map` of numbers or ``(B,)`` tensors, on the device of ``dx``."""
    (x, device), (y, _) = _host(dx, "dx"), _host(dy, "dy")
    return _tensor(translate_map(x, y), device)


def crop_matrix(left: torch.Tensor | int, top: torch.Tensor | int) -> torch.Tensor:
    """A same-size window whose top-left corner sits at input pixel ``(left, top)``: ``(B,3,3)``.

    Padded random crop (pad ``p``, crop back to the input size) is ``left, top`` drawn in
    ``[-p, p]``; the area outside the input gets ``warp``'s fill. Offsets must be whole pixels.
    """
    (x, device), (y, _) = _host(left, "left"), _host(top, "top")
    for name, value in (("left", x), ("top", y)):
        fractional = value[value != np.round(value)]
        if len(fractional):
            raise BadInput(f"{name} must be whole pixels (integers); got {fractional[0]}")
    return _tensor(translate_map(x, y), device)


def flip_matrix(flip: torch.Tensor | bool, width: int) -> torch.Tensor:
    """:func:`flip_map` where ``flip`` (``(B,)`` bool or one bool) is true, identity elsewhere."""
    device = flip.device if isinstance(flip, torch.Tensor) else torch.device("cpu")
    return _tensor(flip_map(torch.as_tensor(flip).cpu().numpy().reshape(-1), width), device)


def compose(*matrices: torch.Tensor) -> torch.Tensor:
    """:func:`compose_maps` of ``(B,3,3)`` or ``(1,3,3)`` tensors, on the device of the first."""
    if not matrices:
        raise BadInput("compose needs at least one matrix")
    if len(matrices) == 1:
        return matrices[0]
    maps = [m.detach().cpu().numpy().astype(np.float64) for m in matrices]
    return _tensor(compose_maps(*maps), matrices[0].device)


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
        fixed = np.clip(np.floor(entries * _ONE + 0.5), -(2.0**40), 2.0**40).astype(np.int64)
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
        exact_x = np.floor((k.offsets[sep, 0:1] + k.steps[sep, 0:1] * cols) * _ONE)
        exact_y = np.floor((k.offsets[sep, 1:2] + k.steps[sep, 1:2] * rows) * _ONE)
    exact_x, exact_y = exact_x.clip(-limit, limit - 1), exact_y.clip(-limit, limit - 1)
    col_part = np.clip(fixed[:, :, 0:1] * cols, -limit, limit - 1)
    row_part = np.clip(fixed[:, :, 1:2] * rows + fixed[:, :, 2:3], -limit, limit - 1)
    col_part[sep] = np.stack([exact_x, np.zeros_like(exact_x)], axis=1)
    row_part[sep] = np.stack([np.zeros_like(exact_y), exact_y], axis=1)
    return row_part.astype(np.int32), col_part.astype(np.int32)


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
    maps = matrix.detach().cpu().numpy().astype(np.float64).reshape(-1, 3, 3)
    return _resample(x, np.broadcast_to(maps, (batch, 3, 3)), fill, interpolation)


def moving_samples(matrix: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which of the ``(N,3,3)`` maps are not the identity (the samples a warp changes)."""
    return (matrix != np.eye(3)).reshape(len(matrix), 9).any(1)


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


def by_pieces(
    kernel: Callable[..., torch.Tensor], values: int, x: torch.Tensor, *per_sample: Any
) -> torch.Tensor:
    """``kernel(x, *per_sample)`` computed on consecutive pieces of at most ``values`` input values.

    Elementwise passes and gathers over a large batch run at the speed of memory; on a piece that stays
    in a core's cache they run faster (docs/results.md, "Cache-sized pieces on the CPU"). Each of
    ``per_sample`` has one row per sample, or a single row that goes whole to every piece; the kernel
    returns one row per sample. Off the CPU the batch goes whole: there pieces only multiply the kernel
    launches.
    """
    step = max(1, values // max(1, x[0].numel())) if len(x) else 1
    if len(x) <= step or x.device.type != "cpu":
        return kernel(x, *per_sample)
    out: torch.Tensor | None = None
    for start in range(0, len(x), step):
        piece = slice(start, start + step)
        part = kernel(x[piece], *(a if len(a) == 1 else a[piece] for a in per_sample))
        if out is None:
            out = torch.empty((len(x), *part.shape[1:]), dtype=part.dtype, device=part.device)
        out[piece] = part  # while the piece is still in cache
    assert out is not None  # len(x) > step: the loop ran
    return out


def write_rows(out: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``out[rows] = values`` in place, for contiguous ``(B,C,H,W)`` uint8 ``out`` and ``values``.

    ``index_copy_`` moves one element at a time, so each row is viewed as the widest integers its
    byte count (and alignment) allows: up to 8x fewer elements to move than as bytes.
    """
    values = values.contiguous()
    width = out[0].numel()
    offsets = (width, out.storage_offset(), values.storage_offset())
    dtype = next(
        t
        for t, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2), (torch.uint8, 1))
        if all(n % size == 0 for n in offsets)
    )
    target = out.view(len(out), width).view(dtype)
    target.index_copy_(0, rows.to(out.device), values.view(len(values), width).view(dtype))


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
    forward = (steps == _ONE).all(1) | (same_x & (pixel_steps == 1).all(1))
    backward = (steps == -_ONE).all(1) | (same_x & (pixel_steps == -1).all(1))
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
    rows = rows + _ONE  # one pixel of margin: canvas coordinates (|rows|, |cols| < 2**29, no overflow)
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
    inside = ((points >= 0) & (points < size * _ONE)).all(1, keepdim=True)
    # Pixel-centre coordinates (pixel i at i), normalised so that -1 and 1 are the first and last centre.
    scale = 2.0 / (size - 1).clamp(min=1).to(torch.float32)
    grid = points.to(torch.float32).mul_(1.0 / _ONE).sub_(0.5).mul_(scale).sub_(1.0).permute(0, 2, 3, 1)
    value = F.grid_sample(
        x.to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    value = value.add_(bilinear_margin(height, width)).to(torch.uint8)
    return value.mul_(inside).add_((~inside).view(torch.uint8) * fill)
