"""The torch kernels of the colour ops: batched, per-sample arguments, Pillow's arithmetic, no checks.

Every kernel takes ``x``, a ``(B,C,H,W)`` uint8 tensor with ``C`` in {1, 3} on any device, and its
argument as a ``(B,)`` or ``(1,)`` tensor (ops without an argument take none), and returns a new uint8
tensor of the same shape. Sample ``i`` of the result is what Pillow gives for image ``i`` with argument
``i``: the kernels redo Pillow's own integer and float32 arithmetic, so they agree with it to the grey
level. Arguments are trusted: :mod:`kdforaa.augment.ops` validates them for users, and the op table
(:mod:`kdforaa.augment.op_table`) hands these kernels to the policies, whose arguments are valid by
construction.

No kernel loops over samples: work is a handful of whole-batch tensor operations (elementwise float32 or
integer arithmetic, shifted sums for the 3x3 filter, one histogram and one table look-up). A large batch
goes through the float and table kernels in pieces that stay in the core's cache (``by_pieces``); the
whole-batch function is each one's ``__wrapped__``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from kdforaa.augment.pieces import by_pieces

# Every degenerate image of a blend holds whole grey levels, so any factor above 256 saturates every
# pixel that differs from it: larger factors are clipped to this, keeping float32 finite (inf * 0 is NaN).
MAX_FACTOR = 512.0

# Input values per piece of a large batch (see pieces.by_pieces). Float32 arithmetic keeps several
# copies of a piece alive, so it takes smaller pieces than the look-ups, whose per-piece set-up costs more.
FLOAT_PIECE = 1 << 18
LOOKUP_PIECE = 1 << 21

# The threshold below which solarize_add adds (design: "add, clip to 0..255, where pixel < 128").
SOLARIZE_ADD_THRESHOLD = 128.0

Kernel = Callable[..., torch.Tensor]


def in_pieces(values: int) -> Callable[[Kernel], Kernel]:
    """Decorator: run the kernel on cache-sized pieces of at most ``values`` input values."""

    def decorate(kernel: Kernel) -> Kernel:
        @functools.wraps(kernel)
        def pieced(x: torch.Tensor, *per_sample: torch.Tensor) -> torch.Tensor:
            return by_pieces(kernel, values, x, *per_sample)

        return pieced

    return decorate


def _factor(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An enhancement factor (>= 0) as ``(B,1,1,1)`` float32, the precision of Pillow's blend."""
    return value.clamp(max=MAX_FACTOR).to(x.device, torch.float32).view(-1, 1, 1, 1)


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


@in_pieces(FLOAT_PIECE)
def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with black: ``x * factor``."""
    return x.to(torch.float32).mul_(_factor(factor, x)).clamp_(0, 255).to(torch.uint8)


@in_pieces(FLOAT_PIECE)
def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with the image's grey version (a grey image comes back unchanged)."""
    if x.shape[1] == 1:
        return x.clone()
    image = x.to(torch.float32)
    return _blend(image, _luma(image), _factor(factor, x))


@in_pieces(FLOAT_PIECE)
def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with the image's mean grey level, rounded as Pillow's ``int(mean + 0.5)``."""
    image = x.to(torch.float32)
    grey = image if x.shape[1] == 1 else _luma(image)
    pixels = x.shape[2] * x.shape[3]
    # The sum of whole grey levels is exact in float32 below 2**24 (images up to 256x256), else float64.
    exact = torch.float32 if 255 * pixels < 2**24 else torch.float64
    total = grey.sum((1, 2, 3), dtype=exact).to(torch.int64)
    mean = (2 * total + pixels) // (2 * pixels)
    return _blend(image, mean.to(torch.float32).view(-1, 1, 1, 1), _factor(factor, x))


@in_pieces(FLOAT_PIECE)
def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A blend with the SMOOTH-filtered image inside the one-pixel border (the border never changes).

    SMOOTH is ``round(S / 13)`` for the 3x3 sum ``S`` plus 4 times the centre; ``S/13 + 0.5`` is never a
    tie, so ``floor((S + 6) / 13)`` reproduces Pillow's float arithmetic.
    """
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


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` (0..8) highest bits: 255 shifted left by the dropped bits, low byte only."""
    mask = (255 << (8 - bits.to(x.device, torch.int64))) & 255
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def _below(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``(B,C,H,W)`` bool: pixel < threshold (0..256), the test of ``ImageOps.solarize``."""
    # For whole pixel values, v < t exactly when v < ceil(t).
    return x < torch.ceil(threshold).to(x.device, torch.int16).view(-1, 1, 1, 1)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert every pixel >= threshold."""
    inverted = (~_below(x, threshold)).view(torch.uint8).mul_(255)  # 255 - v == v ^ 255
    return x ^ inverted


def solarize_add(
    x: torch.Tensor, addition: torch.Tensor, threshold: torch.Tensor | float = SOLARIZE_ADD_THRESHOLD
) -> torch.Tensor:
    """Add ``floor(addition)`` to every pixel < threshold, clipping to 0..255."""
    below = _below(x, torch.as_tensor(threshold, dtype=torch.float64).reshape(-1))
    shift = torch.floor(addition).clamp(-255, 255)
    added = below.to(torch.int16).mul_(shift.to(x.device, torch.int16).view(-1, 1, 1, 1))
    return added.add_(x).clamp_(0, 255).to(torch.uint8)


@in_pieces(LOOKUP_PIECE)
def equalize(x: torch.Tensor) -> torch.Tensor:
    """Pillow's equalize, each channel of each sample with its own histogram.

    ``step = (pixels - count of the highest occupied level) // 255``; level ``v`` maps to
    ``(step // 2 + pixels below v) // step``; a channel with ``step == 0`` stays as it is.
    """
    codes = _channel_codes(x)
    rows, pixels = x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]
    hist = torch.bincount(codes, minlength=rows * 256).view(rows, 256)
    highest = x.reshape(rows, pixels).amax(1, keepdim=True).to(torch.int64)
    step = (pixels - hist.gather(1, highest)) // 255
    below = (hist.cumsum(1) - hist).to(torch.float64)
    # float64 division then floor equals integer division for operands below 2**53, and is faster.
    tables = below.add_(step // 2).div_(step.clamp(min=1)).floor_().clamp_(max=255)
    return _apply_tables(x, codes, torch.where(step > 0, tables, _levels(x).to(torch.float64)))


@in_pieces(LOOKUP_PIECE)
def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's ``lo..hi`` to ``0..255`` with Pillow's float64 table (cutoff 0)."""
    codes = _channel_codes(x)
    flat = x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
    low = flat.amin(1, keepdim=True).to(torch.float64)
    span = flat.amax(1, keepdim=True).to(torch.float64) - low
    scale = torch.full_like(span, 255.0) / span.clamp(min=1.0)  # not 255.0 / span: torch takes a reciprocal
    offset = -low * scale
    levels = _levels(x)
    tables = (levels.to(torch.float64) * scale + offset).clamp_(0, 255).floor_()
    return _apply_tables(x, codes, torch.where(span > 0, tables, levels.to(torch.float64)))


def invert(x: torch.Tensor) -> torch.Tensor:
    """``255 - x``."""
    return 255 - x
