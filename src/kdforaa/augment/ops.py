"""Batched augmentation ops on uint8 images, each sample with its own argument, Pillow's semantics.

Every op takes ``x``, a ``(B,C,H,W)`` uint8 tensor with ``C`` in {1, 3} on any device, and returns a
new tensor of the same shape and dtype. A per-sample argument is a ``(B,)`` tensor or a Python number
(the same for all samples). Sample ``i`` of the result is what Pillow gives for image ``i`` (mode "L"
for one channel, "RGB" for three) with argument ``i``; see ``design.md`` for the reference call of
each op. The colour ops redo Pillow's own integer and float32 arithmetic, so they agree with it to
the grey level; the geometric ops resample through :func:`kdforaa.augment.geometry.warp`.

No op loops over samples. Most colour ops map each grey level of a channel to another, so they build
one 256-entry table per sample and channel (from the argument and, for equalize, autocontrast and
contrast, the image's statistics) and apply all of them with a single look-up; those tables compose,
which lets a policy apply several such ops in one look-up (:func:`lookup_tables`). Color and
sharpness mix pixels and are whole-batch float32 arithmetic.

The public ops validate their arguments; :func:`run_checked` and :func:`lookup_tables` are the same
ops for callers (the policies) whose arguments are valid by construction.
"""

from __future__ import annotations

import math

import numpy as np
import torch

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

# Every degenerate image of a blend holds whole grey levels, so any factor above 256 saturates every
# pixel that differs from it: larger factors are clipped to this, keeping float32 finite (inf * 0 is NaN).
_MAX_FACTOR = 512.0


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


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> "L", ``(19595 R + 38470 G + 7471 B + 32768) >> 16``: ``(B,3,H,W)`` -> ``(B,1,H,W)``.

    Every intermediate is an integer below 2**24, so float32 holds it exactly.
    """
    red, green, blue = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    luma = (red * 19595.0).add_(green, alpha=38470.0).add_(blue, alpha=7471.0)
    return luma.add_(32768.0).mul_(1.0 / 65536.0).floor_()


# ------------------------------------------------------------------------------------- look-up tables
# Tables are tiny, so they are numpy arrays built on the host, where an array operation costs about a
# microsecond (a torch call several): (N,1,256) or (N,C,256) uint8, table[i, c, v] being what the op
# makes of grey level v in channel c of sample i. Only the statistics some ops need and the final
# look-up touch the images, on their device.

_LEVELS = np.arange(256)


def _host(value: torch.Tensor, dtype: type) -> np.ndarray:
    """A ``(N,)`` argument as ``(N,1,1)`` numpy ``dtype`` (conversion rounds to nearest, like torch's)."""
    return value.detach().cpu().numpy().astype(dtype).reshape(-1, 1, 1)


def _factor_host(factor: torch.Tensor) -> np.ndarray:
    """An enhancement factor (>= 0) as ``(N,1,1)`` float32, the precision of Pillow's blend."""
    return _host(factor.clamp(max=_MAX_FACTOR), np.float32)


def _blend_table(base: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Pillow's ``Image.blend(degenerate, image, factor)`` of every level with ``base`` (float32 ``(N,1,1)``)
    as its degenerate pixel: ``base + factor * (v - base)`` in float32, clipped, truncated."""
    out = (_LEVELS.astype(np.float32) - base) * factor + base
    return np.clip(out, 0, 255).astype(np.uint8)


def _below(threshold: torch.Tensor) -> np.ndarray:
    """``(N,1,256)`` bool: level < threshold (0..256), the test of ``ImageOps.solarize``."""
    # For whole pixel values, v < t exactly when v < ceil(t).
    return _LEVELS < np.ceil(_host(threshold, np.float64))


def _posterize_table(bits: torch.Tensor) -> np.ndarray:
    # Keeping the ``bits`` (0..8) highest bits: 255 shifted left by the others, low byte only.
    mask = (255 << (8 - _host(bits, np.int64))) & 255
    return (_LEVELS & mask).astype(np.uint8)


def _solarize_table(threshold: torch.Tensor) -> np.ndarray:
    return np.where(_below(threshold), _LEVELS, 255 - _LEVELS).astype(np.uint8)


def _solarize_add_table(addition: torch.Tensor, threshold: torch.Tensor) -> np.ndarray:
    shift = np.clip(np.floor(_host(addition, np.float64)), -255, 255).astype(np.int64)
    return np.where(_below(threshold), np.clip(_LEVELS + shift, 0, 255), _LEVELS).astype(np.uint8)


def _brightness_table(factor: torch.Tensor) -> np.ndarray:
    """A blend with black: ``v * factor`` in float32."""
    return np.clip(_LEVELS.astype(np.float32) * _factor_host(factor), 0, 255).astype(np.uint8)


def _contrast_table(x: torch.Tensor, factor: torch.Tensor) -> np.ndarray:
    """A blend with the mean grey level of each image, rounded as Pillow does."""
    pixels = x.shape[2] * x.shape[3]
    if x.shape[1] == 1:
        total = x.sum((1, 2, 3), dtype=torch.int64)
    else:
        # The sum of whole grey levels is exact in float32 below 2**24 (images up to 256x256), else float64.
        exact = torch.float32 if 255 * pixels < 2**24 else torch.float64
        total = _luma(x.to(torch.float32)).sum((1, 2, 3), dtype=exact).to(torch.int64)
    mean = (2 * total.cpu().numpy() + pixels) // (2 * pixels)  # Pillow's int(mean + 0.5)
    return _blend_table(mean.astype(np.float32).reshape(-1, 1, 1), _factor_host(factor))


def _equalize_table(x: torch.Tensor, codes: torch.Tensor) -> np.ndarray:
    """Pillow's rule, per channel: ``step = (pixels - count of the highest occupied level) // 255``; level
    ``v`` maps to ``(step // 2 + pixels below v) // step``; a channel with ``step == 0`` stays.
    """
    batch, channels, height, width = x.shape
    hist = torch.bincount(codes, minlength=batch * channels * 256).cpu().numpy()
    hist = hist.reshape(batch * channels, 256)
    highest = 255 - np.argmax(hist[:, ::-1] > 0, axis=1)  # every channel has a pixel
    step = ((height * width - hist[np.arange(len(hist)), highest]) // 255)[:, None]
    below = np.cumsum(hist.reshape(-1)).reshape(hist.shape) - hist
    below -= below[:, :1]  # the running sum restarts at each channel
    # float64 division then floor equals integer division for operands below 2**53, and is faster.
    table = np.floor((below + step // 2) / np.maximum(step, 1))
    table = np.where(step > 0, np.minimum(table, 255), _LEVELS).astype(np.uint8)
    return table.reshape(batch, channels, 256)


def _autocontrast_table(x: torch.Tensor) -> np.ndarray:
    """Stretch ``lo..hi`` of each channel to ``0..255`` by Pillow's float64 table ``int(v * scale + offset)``,
    ``scale = 255 / (hi - lo)``, ``offset = -lo * scale``; constant channels stay as they are.
    """
    flat = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    extremes = torch.stack([flat.amin(2), flat.amax(2)]).cpu().numpy().astype(np.float64)
    low, span = extremes[0][..., None], (extremes[1] - extremes[0])[..., None]
    # A constant channel gets scale 1 and offset 0: the identity.
    scale = np.where(span > 0, 255.0 / np.maximum(span, 1.0), 1.0)
    offset = np.where(span > 0, -low * scale, 0.0)
    return np.floor(np.clip(_LEVELS * scale + offset, 0, 255)).astype(np.uint8)


# Look-up ops whose tables depend only on the argument, and those that depend on the image too.
POINT_TABLES = {
    "posterize": _posterize_table,
    "solarize": _solarize_table,
    "solarize_add": lambda addition: _solarize_add_table(addition, torch.tensor([128.0])),
    "invert": lambda argument=None: (255 - _LEVELS).astype(np.uint8).reshape(1, 1, 256),
    "brightness": _brightness_table,
}
IMAGE_TABLES = {
    "contrast": _contrast_table,
    "equalize": lambda x, argument=None: _equalize_table(x, _channel_codes(x)),
    "autocontrast": lambda x, argument=None: _autocontrast_table(x),
}
LOOKUP_OPS = frozenset(POINT_TABLES) | frozenset(IMAGE_TABLES)


def compose_tables(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """The ``(N,C,256)`` tables of applying ``first`` (``(N,C,256)``), then ``then`` (``(N|1, 1|C, 256)``)."""
    batch, channels = first.shape[:2]
    then = np.broadcast_to(then, first.shape).reshape(batch * channels, 256)
    index = first.reshape(batch * channels, 256) + np.arange(0, then.size, 256)[:, None]
    return then.reshape(-1)[index].reshape(first.shape)


def _channel_codes(x: torch.Tensor) -> torch.Tensor:
    """``(B*C*H*W,)`` int32: each pixel's value plus 256 times its (sample, channel) row number.

    One index serves both the per-channel histograms (a single ``bincount``) and the per-channel
    look-up tables (a single ``index_select``); int32 halves the memory traffic of int64.
    """
    rows = x.shape[0] * x.shape[1]
    offsets = torch.arange(0, rows * 256, 256, device=x.device, dtype=torch.int32).view(rows, 1)
    # reshape, not view: for a channels-last batch of one image the (rows, pixels) view is not contiguous
    return x.reshape(rows, x.shape[2] * x.shape[3]).to(torch.int32).add_(offsets).view(-1)


def apply_tables(x: torch.Tensor, tables: np.ndarray, codes: torch.Tensor | None = None) -> torch.Tensor:
    """Map every pixel of ``x`` through its channel's table (``(B|1, 1|C, 256)`` uint8): uint8 like ``x``."""
    codes = _channel_codes(x) if codes is None else codes
    tables = np.array(np.broadcast_to(tables, (x.shape[0], x.shape[1], 256)), order="C")  # writable copy
    return torch.from_numpy(tables).to(x.device).view(-1).index_select(0, codes).view(x.shape)


def _lookup(name: str, x: torch.Tensor, argument: torch.Tensor | None) -> torch.Tensor:
    """Look-up op ``name`` on ``x`` with a checked argument."""
    if name == "equalize":  # its histogram and its look-up share one index
        codes = _channel_codes(x)
        return apply_tables(x, _equalize_table(x, codes), codes)
    if name in IMAGE_TABLES:
        return apply_tables(x, IMAGE_TABLES[name](x, argument))
    return apply_tables(x, POINT_TABLES[name](argument))


# -------------------------------------------------------------------------------------- the ops
# Kernels take checked arguments: (B,) or (1,) float tensors on any device.


def _factor(factor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An enhancement factor (>= 0) as ``(B|1,1,1,1)`` float32 on ``x``'s device."""
    return factor.clamp(max=_MAX_FACTOR).to(x.device, torch.float32).view(-1, 1, 1, 1)


def _blend(image: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Pillow's ``Image.blend(degenerate, image, factor)`` on float32 ``image`` (overwritten) -> uint8.

    ``degenerate + factor * (image - degenerate)`` in float32, clipped to 0..255 and truncated,
    which is what Pillow's C code does; ``degenerate`` broadcasts against ``image``.
    """
    out = image.sub_(degenerate).mul_(factor).add_(degenerate)
    return out.clamp_(0, 255).to(torch.uint8)


def _color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.clone()  # a grey image is its own grey version
    image = x.to(torch.float32)
    return _blend(image, _luma(image), _factor(factor, x))


def _sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[2] < 3 or x.shape[3] < 3:
        return x.clone()  # nothing but border
    image = x.to(torch.float32)
    rows = image[..., :-2] + image[..., 1:-1]
    rows += image[..., 2:]
    total = rows[..., :-2, :] + rows[..., 1:-1, :]
    total += rows[..., 2:, :]
    centre = image[..., 1:-1, 1:-1]
    # Exact: S + 6 <= 3321, and for whole numbers that small floor(n * float32(1/13)) == n // 13.
    smooth = total.add_(centre, alpha=4.0).add_(6.0).mul_(1.0 / 13.0).floor_()
    # Blend the inside in place: the border of ``image`` keeps the input's values.
    centre.sub_(smooth).mul_(_factor(factor, x)).add_(smooth).clamp_(0, 255)
    return image.to(torch.uint8)


def _posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    # Keeping the ``bits`` (0..8) highest bits: 255 shifted left by the others, low byte only.
    mask = (255 << (8 - bits.to(x.device, torch.int64))) & 255
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def _geometric(matrix_of):
    def run(x: torch.Tensor, argument: torch.Tensor, fill: int = 0, interpolation: str = "nearest"):
        return warp(x, matrix_of(argument, x.shape[2], x.shape[3]), fill, interpolation)

    return run


_KERNELS = {
    "rotate": _geometric(rotate_matrix),
    "shear_x": _geometric(lambda a, h, w: shear_x_matrix(a)),
    "shear_y": _geometric(lambda a, h, w: shear_y_matrix(a)),
    "translate_x": _geometric(lambda a, h, w: translate_matrix(a, 0.0)),
    "translate_y": _geometric(lambda a, h, w: translate_matrix(0.0, a)),
    "color": _color,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "invert": lambda x, argument=None: 255 - x,
    "identity": lambda x, argument=None: x.clone(),
}


def run_checked(name: str, x: torch.Tensor, argument: torch.Tensor | None = None) -> torch.Tensor:
    """Op ``name`` on ``x`` ``(B,C,H,W)`` uint8 with a valid ``(B,)`` ``argument``, unchecked (policies)."""
    if name in _KERNELS:
        return _KERNELS[name](x, argument)
    return _lookup(name, x, argument)


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
    return _color(x, _argument(factor, x, "factor", low=0.0))


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
    return _sharpness(x, _argument(factor, x, "factor", low=0.0))


def posterize(x: torch.Tensor, bits: Argument) -> torch.Tensor:
    """``ImageOps.posterize(img, bits)``: keep the ``bits`` highest bits; 0 bits gives black."""
    check_images(x)
    return run_checked("posterize", x, _argument(bits, x, "bits", low=0, high=8, whole=True))


def solarize(x: torch.Tensor, threshold: Argument) -> torch.Tensor:
    """``ImageOps.solarize(img, threshold)``: invert every pixel >= threshold (0..256)."""
    check_images(x)
    return apply_tables(x, _solarize_table(_argument(threshold, x, "threshold", low=0, high=256)))


def solarize_add(x: torch.Tensor, addition: Argument, threshold: Argument = 128) -> torch.Tensor:
    """Add ``addition`` to every pixel < threshold, clipping to 0..255; other pixels stay.

    Pillow has no such op; the reference is the table ``min(255, max(0, int(v + addition)))`` for
    ``v < threshold`` applied with ``img.point``. Fractional additions round down.
    """
    check_images(x)
    threshold = _argument(threshold, x, "threshold", low=0, high=256)
    return apply_tables(x, _solarize_add_table(_argument(addition, x, "addition"), threshold))


def equalize(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.equalize(img)``, each channel of each sample with its own histogram."""
    check_images(x)
    return run_checked("equalize", x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.autocontrast(img)`` (cutoff 0), per channel of each sample."""
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
