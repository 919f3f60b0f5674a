"""Batched augmentation ops on uint8 images, each sample with its own argument, Pillow's semantics.

Every op takes ``x``, a ``(B,C,H,W)`` uint8 tensor with ``C`` in {1, 3} on any device, and returns a
new tensor of the same shape and dtype. A per-sample argument is a ``(B,)`` tensor or a Python number
(the same for all samples). Sample ``i`` of the result is what Pillow gives for image ``i`` (mode "L"
for one channel, "RGB" for three) with argument ``i``; see ``design.md`` for the reference call of
each op. The colour ops redo Pillow's own integer and float32 arithmetic, so they agree with it to
the grey level; the geometric ops resample through :func:`kdforaa.augment.geometry.warp`.

No op loops over samples: work is a handful of whole-batch tensor operations (elementwise float32 or
integer arithmetic, shifted sums for the 3x3 filter, one histogram and one table look-up). A large
batch goes through them in pieces that stay in the core's cache (:func:`~kdforaa.augment.geometry.by_pieces`).

The public ops validate their arguments; :func:`run_checked` runs the same ops for callers (the
policies) whose arguments are valid by construction, without the checks' cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kdforaa.augment.geometry import (
    by_pieces,
    check_images,
    per_sample,
    rotate_matrix,
    shear_x_matrix,
    shear_y_matrix,
    translate_matrix,
    warp,
)
from kdforaa.errors import BadInput

__all__ = [
    "autocontrast",
    "brightness",
    "color",
    "contrast",
    "equalize",
    "identity",
    "invert",
    "posterize",
    "rotate",
    "sharpness",
    "shear_x",
    "shear_y",
    "solarize",
    "solarize_add",
    "translate_x",
    "translate_y",
]

Argument = torch.Tensor | float

# Every degenerate image of a blend holds whole grey levels, so any factor above 256 saturates every
# pixel that differs from it: larger factors are clipped to this, keeping float32 finite (inf * 0 is NaN).
_MAX_FACTOR = 512.0

# Input values per piece of a large batch (see geometry.by_pieces). Float32 arithmetic keeps several
# copies of a piece alive, so it takes smaller pieces than the look-ups, whose per-piece set-up costs more.
_FLOAT_PIECE = 1 << 18
_LOOKUP_PIECE = 1 << 21


def _argument(
    value: Argument,
    x: torch.Tensor,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    whole: bool = False,
) -> torch.Tensor:
    """Validate a per-sample argument: ``(B,)`` or ``(1,)`` float64 on the device it came on."""
    t = per_sample(value, name)
    batch = x.shape[0]
    if t.shape[0] not in (1, batch):
        raise BadInput(
            f"{name} has {t.shape[0]} values for a batch of {batch}: pass a number or a ({batch},) tensor"
        )
    ok = torch.isfinite(t) & (t >= low) & (t <= high)
    if whole:
        ok &= t == t.round()
    if not ok.all():
        kind = "whole number" if whole else "finite number"
        bounds = f" in {low:g}..{high:g}" if math.isfinite(low) and math.isfinite(high) else ""
        bounds = bounds or (f" >= {low:g}" if math.isfinite(low) else "")
        raise BadInput(f"{name} must be a {kind}{bounds}; got {t[~ok][0].item():g}")
    return t


def _factor(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A checked enhancement factor (>= 0) as ``(B,1,1,1)`` float32, the precision of Pillow's blend."""
    return value.clamp(max=_MAX_FACTOR).to(x.device, torch.float32).view(-1, 1, 1, 1)


def _blend(image: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Pillow's ``Image.blend(degenerate, image, factor)`` on float32 ``image`` (overwritten) -> uint8.

    ``degenerate + factor * (image - degenerate)`` in float32, clipped to 0..255 and truncated,
    which is what Pillow's C code does; ``degenerate`` broadcasts against ``image``.
    """
    out = image.sub_(degenerate).mul_(factor).add_(degenerate)
    return out.clamp_(0, 255).to(torch.uint8)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> "L", ``(19595 R + 38470 G + 7471 B + 32768) >> 16``: ``(B,3,H,W)`` -> ``(B,1,H,W)``.

    Every intermediate is an integer below 2**24, so float32 holds it exactly.
    """
    red, green, blue = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    luma = (red * 19595.0).add_(green, alpha=38470.0).add_(blue, alpha=7471.0)
    return luma.add_(32768.0).div_(65536.0).floor_()


def _levels(x: torch.Tensor) -> torch.Tensor:
    """``(256,)`` int64 grey levels 0..255 on ``x``'s device."""
    return torch.arange(256, device=x.device)


def _channel_codes(x: torch.Tensor) -> torch.Tensor:
    """``(B*C*H*W,)`` int32: each pixel's value plus 256 times its (sample, channel) row number.

    One index serves both the per-channel histograms (a single ``bincount``) and the per-channel
    look-up tables (a single ``index_select``); int32 halves the memory traffic of int64.
    """
    rows = x.shape[0] * x.shape[1]
    offsets = torch.arange(0, rows * 256, 256, device=x.device, dtype=torch.int32).view(rows, 1)
    # reshape, not view: for a channels-last batch of one image the (rows, pixels) view is not contiguous
    return x.reshape(rows, x.shape[2] * x.shape[3]).to(torch.int32).add_(offsets).reshape(-1)


def _apply_tables(x: torch.Tensor, codes: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Map every pixel through its channel's table: ``tables`` is ``(B*C, 256)`` -> uint8 like ``x``."""
    return tables.to(torch.uint8).view(-1).index_select(0, codes).view(x.shape)


# Kernels: checked arguments in, (B,) or (1,) tensors on any device.


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).mul_(_factor(factor, x)).clamp_(0, 255).to(torch.uint8)


def _color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.clone()  # a grey image is its own grey version
    image = x.to(torch.float32)
    return _blend(image, _luma(image), _factor(factor, x))


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    image = x.to(torch.float32)
    grey = image if x.shape[1] == 1 else _luma(image)
    pixels = x.shape[2] * x.shape[3]
    # The sum of whole grey levels is exact in float32 below 2**24 (images up to 256x256), else float64.
    exact = torch.float32 if 255 * pixels < 2**24 else torch.float64
    total = grey.sum((1, 2, 3), dtype=exact).to(torch.int64)
    mean = (2 * total + pixels) // (2 * pixels)  # Pillow's int(mean + 0.5)
    return _blend(image, mean.to(torch.float32).view(-1, 1, 1, 1), _factor(factor, x))


def _sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[2] < 3 or x.shape[3] < 3:
        return x.clone()  # all border
    image = x.to(torch.float32)
    rows = image[..., :-2] + image[..., 1:-1]
    rows += image[..., 2:]
    total = rows[..., :-2, :] + rows[..., 1:-1, :]
    total += rows[..., 2:, :]
    centre = image[..., 1:-1, 1:-1]
    # Exact: S + 6 <= 3321, and for whole numbers that small floor(n * float32(1/13)) == n // 13.
    smooth = total.add_(centre, alpha=4.0).add_(6.0).mul_(1.0 / 13.0).floor_()
    # The inside is blended in place; the border of ``image`` keeps the input's values.
    centre.sub_(smooth).mul_(_factor(factor, x)).add_(smooth).clamp_(0, 255)
    return image.to(torch.uint8)


def _posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    # 255 shifted left by the dropped bits, low byte only: keeps the ``bits`` (0..8) highest bits.
    mask = (255 << (8 - bits.to(x.device, torch.int64))) & 255
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def _below(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``(B,C,H,W)`` bool: pixel < threshold (0..256), the test of ``ImageOps.solarize``."""
    # For whole pixel values, v < t exactly when v < ceil(t).
    return x < torch.ceil(threshold).to(x.device, torch.int16).view(-1, 1, 1, 1)


def _solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    inverted = (~_below(x, threshold)).view(torch.uint8).mul_(255)  # 255 - v == v ^ 255
    return x ^ inverted


def _solarize_add(x: torch.Tensor, addition: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    below = _below(x, threshold)
    shift = torch.floor(addition).clamp(-255, 255)
    added = below.to(torch.int16).mul_(shift.to(x.device, torch.int16).view(-1, 1, 1, 1))
    return added.add_(x).clamp_(0, 255).to(torch.uint8)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    codes = _channel_codes(x)
    rows, pixels = x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]
    hist = torch.bincount(codes, minlength=rows * 256).view(rows, 256)
    highest = x.reshape(rows, pixels).amax(1, keepdim=True).to(torch.int64)
    step = (pixels - hist.gather(1, highest)) // 255
    below = (hist.cumsum(1) - hist).to(torch.float64)
    # float64 division then floor equals integer division for operands below 2**53, and is faster.
    tables = below.add_(step // 2).div_(step.clamp(min=1)).floor_().clamp_(max=255)
    return _apply_tables(x, codes, torch.where(step > 0, tables, _levels(x).to(torch.float64)))


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    codes = _channel_codes(x)
    flat = x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
    low = flat.amin(1, keepdim=True).to(torch.float64)
    span = flat.amax(1, keepdim=True).to(torch.float64) - low
    scale = torch.full_like(span, 255.0) / span.clamp(min=1.0)  # not 255.0 / span: torch takes a reciprocal
    offset = -low * scale
    levels = _levels(x)
    tables = (levels.to(torch.float64) * scale + offset).clamp_(0, 255).floor_()
    return _apply_tables(x, codes, torch.where(span > 0, tables, levels.to(torch.float64)))


def _geometric(matrix_of: Callable[[torch.Tensor, int, int], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The kernel of a geometric op whose inverse map ``matrix_of(argument, height, width)`` gives."""

    def kernel(x: torch.Tensor, argument: torch.Tensor, fill: int = 0, interpolation: str = "nearest"):
        return warp(x, matrix_of(argument, x.shape[2], x.shape[3]), fill, interpolation)

    return kernel


def _in_pieces(kernel: Callable[..., torch.Tensor], values: int) -> Callable[..., torch.Tensor]:
    return lambda x, *per_sample: by_pieces(kernel, values, x, *per_sample)


_KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "rotate": _geometric(rotate_matrix),
    "shear_x": _geometric(lambda factor, h, w: shear_x_matrix(factor)),
    "shear_y": _geometric(lambda factor, h, w: shear_y_matrix(factor)),
    "translate_x": _geometric(lambda pixels, h, w: translate_matrix(pixels, 0.0)),
    "translate_y": _geometric(lambda pixels, h, w: translate_matrix(0.0, pixels)),
    "brightness": _in_pieces(_brightness, _FLOAT_PIECE),
    "color": _in_pieces(_color, _FLOAT_PIECE),
    "contrast": _in_pieces(_contrast, _FLOAT_PIECE),
    "sharpness": _in_pieces(_sharpness, _FLOAT_PIECE),
    "posterize": _posterize,
    "solarize": _solarize,
    "solarize_add": lambda x, addition: _solarize_add(x, addition, torch.full((1,), 128.0)),  # its default
    "equalize": _in_pieces(_equalize, _LOOKUP_PIECE),
    "autocontrast": _in_pieces(_autocontrast, _LOOKUP_PIECE),
    "invert": lambda x: 255 - x,
    "identity": lambda x: x.clone(),
}


def run_checked(name: str, x: torch.Tensor, argument: torch.Tensor | None = None) -> torch.Tensor:
    """Op ``name`` on ``x`` ``(B,C,H,W)`` uint8 with its ``(B,)`` argument (None for ops without one).

    Nothing is checked: for callers whose images and arguments are valid by construction.
    """
    kernel = _KERNELS[name]
    return kernel(x) if argument is None else kernel(x, argument)


# Geometric ops: thin wrappers over geometry.warp.


def rotate(x: torch.Tensor, degrees: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Rotate counter-clockwise about the image centre: ``img.rotate(degrees, NEAREST, fillcolor=fill)``."""
    check_images(x)
    return _KERNELS["rotate"](x, _argument(degrees, x, "degrees"), fill, interpolation)


def shear_x(x: torch.Tensor, factor: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Shear along x: ``img.transform(size, AFFINE, (1, factor, 0, 0, 1, 0), NEAREST, fillcolor=fill)``."""
    check_images(x)
    return _KERNELS["shear_x"](x, _argument(factor, x, "factor"), fill, interpolation)


def shear_y(x: torch.Tensor, factor: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Shear along y: ``img.transform(size, AFFINE, (1, 0, 0, factor, 1, 0), NEAREST, fillcolor=fill)``."""
    check_images(x)
    return _KERNELS["shear_y"](x, _argument(factor, x, "factor"), fill, interpolation)


def translate_x(
    x: torch.Tensor, pixels: Argument, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Output pixel x reads input x + pixels (content moves left for pixels > 0), Pillow's AFFINE."""
    check_images(x)
    return _KERNELS["translate_x"](x, _argument(pixels, x, "pixels"), fill, interpolation)


def translate_y(
    x: torch.Tensor, pixels: Argument, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Output pixel y reads input y + pixels (content moves up for pixels > 0), Pillow's AFFINE."""
    check_images(x)
    return _KERNELS["translate_y"](x, _argument(pixels, x, "pixels"), fill, interpolation)


# Colour ops: Pillow's ImageEnhance blends and ImageOps tables.


def brightness(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Brightness(img).enhance(factor)``: a blend with black, i.e. ``x * factor``."""
    check_images(x)
    return run_checked("brightness", x, _argument(factor, x, "factor", low=0.0))


def color(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Color(img).enhance(factor)``: a blend with the image's grey version.

    A grey image is its own grey version, so one channel comes back unchanged.
    """
    check_images(x)
    return run_checked("color", x, _argument(factor, x, "factor", low=0.0))


def contrast(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Contrast(img).enhance(factor)``: a blend with the mean grey level (rounded)."""
    check_images(x)
    return run_checked("contrast", x, _argument(factor, x, "factor", low=0.0))


def sharpness(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Sharpness(img).enhance(factor)``: a blend with the SMOOTH-filtered image.

    The filter leaves the one-pixel border as it is, so border pixels never change. Inside, SMOOTH is
    ``round(S / 13)`` for the sum ``S`` of the 3x3 neighbourhood plus 4 times the centre pixel;
    ``S/13 + 0.5`` is never a tie, so ``floor((S + 6) / 13)`` reproduces Pillow's float arithmetic.
    """
    check_images(x)
    return run_checked("sharpness", x, _argument(factor, x, "factor", low=0.0))


def posterize(x: torch.Tensor, bits: Argument) -> torch.Tensor:
    """``ImageOps.posterize(img, bits)``: keep the ``bits`` highest bits; 0 bits gives black."""
    check_images(x)
    return run_checked("posterize", x, _argument(bits, x, "bits", low=0, high=8, whole=True))


def solarize(x: torch.Tensor, threshold: Argument) -> torch.Tensor:
    """``ImageOps.solarize(img, threshold)``: invert every pixel >= threshold (0..256)."""
    check_images(x)
    return run_checked("solarize", x, _argument(threshold, x, "threshold", low=0, high=256))


def solarize_add(x: torch.Tensor, addition: Argument, threshold: Argument = 128) -> torch.Tensor:
    """Add ``addition`` to every pixel < threshold, clipping to 0..255; other pixels stay.

    Pillow has no such op; the reference is the table ``min(255, max(0, int(v + addition)))`` for
    ``v < threshold`` applied with ``img.point``. Fractional additions round down.
    """
    check_images(x)
    threshold = _argument(threshold, x, "threshold", low=0, high=256)
    return _solarize_add(x, _argument(addition, x, "addition"), threshold)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize(img)``, each channel of each sample with its own histogram.

    Pillow's rule: ``step = (pixels - count of the highest occupied level) // 255``; level ``v`` maps to
    ``(step // 2 + pixels below v) // step``; a channel with ``step == 0`` (e.g. one level) stays.
    """
    check_images(x)
    return run_checked("equalize", x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast(img)`` (cutoff 0), per channel of each sample.

    Stretches ``lo..hi`` to ``0..255`` by Pillow's float64 table ``int(v * scale + offset)`` with
    ``scale = 255 / (hi - lo)``, ``offset = -lo * scale``; constant channels stay as they are.
    """
    check_images(x)
    return run_checked("autocontrast", x)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.invert(img)``: ``255 - x``."""
    check_images(x)
    return 255 - x


def identity(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x``, unchanged."""
    check_images(x)
    return x.clone()
