"""The public augmentation ops: one function per op, batched, each sample with its own argument.

Every op takes ``x``, a ``(B,C,H,W)`` uint8 tensor with ``C`` in {1, 3} on any device, and returns a
new tensor of the same shape and dtype. A per-sample argument is a ``(B,)`` tensor or a Python number
(the same for all samples). Sample ``i`` of the result is what Pillow gives for image ``i`` (mode "L"
for one channel, "RGB" for three) with argument ``i``; each docstring names the reference call. The
colour ops validate their arguments and run the kernels of :mod:`kdforaa.augment.kernels`; the
geometric ops resample through :func:`kdforaa.augment.geometry.warp`. Policies do not come through
here: they apply whole op sequences with :func:`kdforaa.augment.apply.apply_params`.
"""

from __future__ import annotations

import math

import torch

from kdforaa.augment import kernels
from kdforaa.augment.geometry import (
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


# Geometric ops: thin wrappers over geometry.warp.


def rotate(x: torch.Tensor, degrees: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Rotate counter-clockwise about the image centre: ``img.rotate(degrees, NEAREST, fillcolor=fill)``."""
    check_images(x)
    return warp(
        x, rotate_matrix(_argument(degrees, x, "degrees"), x.shape[2], x.shape[3]), fill, interpolation
    )


def shear_x(x: torch.Tensor, factor: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Shear along x: ``img.transform(size, AFFINE, (1, factor, 0, 0, 1, 0), NEAREST, fillcolor=fill)``."""
    check_images(x)
    return warp(x, shear_x_matrix(_argument(factor, x, "factor")), fill, interpolation)


def shear_y(x: torch.Tensor, factor: Argument, fill: int = 0, interpolation: str = "nearest") -> torch.Tensor:
    """Shear along y: ``img.transform(size, AFFINE, (1, 0, 0, factor, 1, 0), NEAREST, fillcolor=fill)``."""
    check_images(x)
    return warp(x, shear_y_matrix(_argument(factor, x, "factor")), fill, interpolation)


def translate_x(
    x: torch.Tensor, pixels: Argument, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Output pixel x reads input x + pixels (content moves left for pixels > 0), Pillow's AFFINE."""
    check_images(x)
    return warp(x, translate_matrix(_argument(pixels, x, "pixels"), 0.0), fill, interpolation)


def translate_y(
    x: torch.Tensor, pixels: Argument, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Output pixel y reads input y + pixels (content moves up for pixels > 0), Pillow's AFFINE."""
    check_images(x)
    return warp(x, translate_matrix(0.0, _argument(pixels, x, "pixels")), fill, interpolation)


# Colour ops: Pillow's ImageEnhance blends and ImageOps tables.


def brightness(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Brightness(img).enhance(factor)``: a blend with black, i.e. ``x * factor``."""
    check_images(x)
    return kernels.brightness(x, _argument(factor, x, "factor", low=0.0))


def color(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Color(img).enhance(factor)``: a blend with the image's grey version.

    A grey image is its own grey version, so one channel comes back unchanged.
    """
    check_images(x)
    return kernels.color(x, _argument(factor, x, "factor", low=0.0))


def contrast(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Contrast(img).enhance(factor)``: a blend with the mean grey level (rounded)."""
    check_images(x)
    return kernels.contrast(x, _argument(factor, x, "factor", low=0.0))


def sharpness(x: torch.Tensor, factor: Argument) -> torch.Tensor:
    """``ImageEnhance.Sharpness(img).enhance(factor)``: a blend with the SMOOTH-filtered image.

    The filter leaves the one-pixel border as it is, so border pixels never change. Inside, SMOOTH is
    ``round(S / 13)`` for the sum ``S`` of the 3x3 neighbourhood plus 4 times the centre pixel;
    ``S/13 + 0.5`` is never a tie, so ``floor((S + 6) / 13)`` reproduces Pillow's float arithmetic.
    """
    check_images(x)
    return kernels.sharpness(x, _argument(factor, x, "factor", low=0.0))


def posterize(x: torch.Tensor, bits: Argument) -> torch.Tensor:
    """``ImageOps.posterize(img, bits)``: keep the ``bits`` highest bits; 0 bits gives black."""
    check_images(x)
    return kernels.posterize(x, _argument(bits, x, "bits", low=0, high=8, whole=True))


def solarize(x: torch.Tensor, threshold: Argument) -> torch.Tensor:
    """``ImageOps.solarize(img, threshold)``: invert every pixel >= threshold (0..256)."""
    check_images(x)
    return kernels.solarize(x, _argument(threshold, x, "threshold", low=0, high=256))


def solarize_add(x: torch.Tensor, addition: Argument, threshold: Argument = 128) -> torch.Tensor:
    """Add ``addition`` to every pixel < threshold, clipping to 0..255; other pixels stay.

    Pillow has no such op; the reference is the table ``min(255, max(0, int(v + addition)))`` for
    ``v < threshold`` applied with ``img.point``. Fractional additions round down.
    """
    check_images(x)
    threshold = _argument(threshold, x, "threshold", low=0, high=256)
    return kernels.solarize_add(x, _argument(addition, x, "addition"), threshold)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize(img)``, each channel of each sample with its own histogram.

    Pillow's rule: ``step = (pixels - count of the highest occupied level) // 255``; level ``v`` maps to
    ``(step // 2 + pixels below v) // step``; a channel with ``step == 0`` (e.g. one level) stays.
    """
    check_images(x)
    return kernels.equalize(x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast(img)`` (cutoff 0), per channel of each sample.

    Stretches ``lo..hi`` to ``0..255`` by Pillow's float64 table ``int(v * scale + offset)`` with
    ``scale = 255 / (hi - lo)``, ``offset = -lo * scale``; constant channels stay as they are.
    """
    check_images(x)
    return kernels.autocontrast(x)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.invert(img)``: ``255 - x``."""
    check_images(x)
    return kernels.invert(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x``, unchanged."""
    check_images(x)
    return x.clone()
