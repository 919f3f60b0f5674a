"""The Triton kernels of the augmentation engine and their launcher; nothing else.

On a GPU the torch path launches a few hundred small kernels per batch (one group of samples per op and
slot, each a handful of elementwise passes) and waits on the host about a dozen times. Here one
program per sample runs that sample's whole augmentation in **one launch**: its colour ops in their
sampled order (each its own op and argument, including equalize's and autocontrast's per-channel
histograms), then one pass that warps (nearest or bilinear, ``fill`` outside the image), crops,
flips and cuts out while writing the result. Everything a sample needs -- its op codes and
arguments, how it moves (its warp's few coefficients, ``affine.sample_coefficients``, from which the
kernel computes every pixel's 16.16 sample point by the integer and float64 rules of
``affine.sample_parts``) and its Cutout box -- is packed into one int32 record per sample, whose
length does not depend on the image size, and the batch's records reach the device in one
non-blocking copy from pinned memory: no host sync. The kernel is compiled once per specialisation.

The arithmetic is the C kernels' (``native_kernels.c``), operation for operation: integer luma and
tables, float32 blends in the same order, float64 autocontrast tables. Launches disable
floating-point contraction (``enable_fp_fusion=False``) because a fused multiply-add rounds a blend
differently. The op codes are the op table's ``native_code`` numbers, so both fused backends switch
over the same codes. Under ``TRITON_INTERPRET=1`` (set before this module is imported) Triton's
interpreter runs these kernels on CPU tensors; that is how the tests check them on machines without
a GPU.

Layout of one program's work: no pass over a sample that its result does not need. The first colour
op reads the input through its strides (channels-last works), every other op but the last reads the
sample's one contiguous ``(C,H,W)`` scratch image (pointwise ops in place; sharpness, which reads
neighbours, writes the output when it reads the scratch, and the next pass reads the output), with a
barrier between passes; a sample that moves and ends with such a sharpness gets it copied back to the
scratch, since its warp cannot read the output it writes. The
last colour op (unless it is sharpness) runs inside the final pass, which recolours every pixel it
reads, warps (or copies), cuts out and writes the output; ops that need the whole image first
(equalize's and autocontrast's tables, contrast's mean) read it once more before their pass. The scratch
holds one image per sample (the size of the batch). Pixels are handled in ``(CP, BLOCK)`` blocks: ``CP``
channel rows (1, or 4 with the fourth masked for RGB) by ``BLOCK`` pixel positions.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
import triton
import triton.language as tl

from kdforaa.augment.affine import COORDINATE_LIMIT, sample_coefficients
from kdforaa.augment.kernels import MAX_FACTOR as _MAX_FACTOR
from kdforaa.augment.kernels import SOLARIZE_ADD_THRESHOLD
from kdforaa.augment.op_table import BY_NAME
from kdforaa.augment.plan import SamplePlan
from kdforaa.augment.resample import bilinear_margin
from kdforaa.errors import BadInput

# The kernels were built for the interpreter (CPU tensors) when TRITON_INTERPRET was set at import.
INTERPRETED: bool = bool(triton.knobs.runtime.interpret)


def _code(name: str) -> tl.constexpr:
    return tl.constexpr(BY_NAME[name].native_code)


# The op codes the kernel switches over: the op table's native codes (one list of op facts).
AUTOCONTRAST = _code("autocontrast")
EQUALIZE = _code("equalize")
INVERT = _code("invert")
POSTERIZE = _code("posterize")
SOLARIZE = _code("solarize")
SOLARIZE_ADD = _code("solarize_add")
COLOR = _code("color")
CONTRAST = _code("contrast")
BRIGHTNESS = _code("brightness")
SHARPNESS = _code("sharpness")

MAX_FACTOR = tl.constexpr(_MAX_FACTOR)
SOLARIZE_ADD_BELOW = tl.constexpr(int(SOLARIZE_ADD_THRESHOLD))
ONE = tl.constexpr(1 << 16)  # 1.0 in Pillow's 16.16 fixed point

# A sample's record (int32 words): how it moves, whether it has colour ops, its Cutout box (top, left,
# bottom, right; empty when none), then S op codes, S float32 arguments (their bits), and the warp's
# coefficients (affine.SampleCoefficients) in 12 words: six int64 16.16 entries (x then y: per
# column, per row, offset) for a FIXED warp, or four float64 numbers (step x, offset x, step y, offset
# y) for a SEPARABLE one. The record has an even length and the coefficients start at an even word, so
# they are read as 8-byte numbers; its length does not depend on the image size.
MOVING = tl.constexpr(0)
COLOURED = tl.constexpr(1)
BOX = tl.constexpr(2)
HEADER = tl.constexpr(6)
WARP_WORDS = 12
STILL, FIXED, SEPARABLE = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)  # MOVING's values
INPUT, SCRATCH, OUTPUT = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)  # where a sample's image is
LIMIT = tl.constexpr(COORDINATE_LIMIT)  # the coordinates' clip (integer parts)
FLOAT_LIMIT = tl.constexpr(float(COORDINATE_LIMIT))  # the same, for float64 parts


# ------------------------------------------------------------------------------------- pixel helpers
@triton.jit
def _clip_truncate(value):
    """float32 -> int32: clipped to 0..255 and truncated (Pillow's CLIP8 of a blend)."""
    return tl.minimum(tl.maximum(value, 0.0), 255.0).to(tl.int32)


@triton.jit
def _blend(v, degenerate, factor):
    """Pillow's blend of int32 ``v`` with ``degenerate`` in float32: ``(v - d) * f + d``, clipped."""
    return _clip_truncate((v.to(tl.float32) - degenerate) * factor + degenerate)


@triton.jit
def _grey(v, ch, C: tl.constexpr):
    """``(CP,BLOCK)`` int32 channels -> ``(BLOCK,)`` grey levels: the image itself for one channel,
    else Pillow's integer RGB -> L. Masked channel rows hold 0."""
    if C == 1:
        grey = tl.sum(v, axis=0)
    else:
        weights = tl.where(ch == 0, 19595, tl.where(ch == 1, 38470, tl.where(ch == 2, 7471, 0)))
        grey = (tl.sum(v * weights, axis=0) + 32768) >> 16
    return grey


@triton.jit
def _offsets(p, width, ch, s_c, s_h, s_w):
    """Element offsets ``(CP,BLOCK)`` of pixels ``p`` ``(1,BLOCK)`` (row-major order) of an image with
    strides ``s_c, s_h, s_w``."""
    return ch * s_c + (p // width) * s_h + (p % width) * s_w


@triton.jit
def _block(src, s_c, s_h, s_w, start, pixels, width, ch, C: tl.constexpr, BLOCK: tl.constexpr):
    """Pixels ``start .. start+BLOCK`` (row-major order) of the image at ``src`` with strides ``s_c,
    s_h, s_w``: values ``(CP,BLOCK)`` int32 (0 where masked), the mask, and the positions ``(1,BLOCK)``."""
    p = start + tl.arange(0, BLOCK)[None, :]
    valid = (ch < C) & (p < pixels)
    v = tl.load(src + _offsets(p, width, ch, s_c, s_h, s_w), mask=valid, other=0).to(tl.int32)
    return v, valid, p


@triton.jit
def _located(where, sample, x_sc, x_sh, x_sw, scratch, pixels, width, target, o_sc, o_sh, o_sw):
    """The image a sample's next pass reads or writes: the input (``INPUT``, its own strides), its
    contiguous ``(C,H,W)`` scratch (``SCRATCH``) or the output (``OUTPUT``), as a pointer and strides."""
    image = tl.where(where == INPUT, sample, tl.where(where == SCRATCH, scratch, target))
    s_c = tl.where(where == INPUT, x_sc, tl.where(where == SCRATCH, pixels, o_sc))
    s_h = tl.where(where == INPUT, x_sh, tl.where(where == SCRATCH, width, o_sh))
    s_w = tl.where(where == INPUT, x_sw, tl.where(where == SCRATCH, 1, o_sw))
    return image, s_c, s_h, s_w


# ---------------------------------------------------------------------------------- per-sample stats
@triton.jit
def _equalize_tables(
    src, s_c, s_h, s_w, table, pixels, width, ch, C: tl.constexpr, CP: tl.constexpr, BLOCK: tl.constexpr
):
    """Each channel's equalize table into ``table`` ``(C,256)`` int32 (``native_kernels.c:equalize_plane``).

    One histogram of ``value + 256 * channel`` over ``CP * 256`` bins counts every channel at once.
    """
    hist = tl.zeros([CP * 256], dtype=tl.int32)
    for start in range(0, pixels, BLOCK):
        v, valid, _ = _block(src, s_c, s_h, s_w, start, pixels, width, ch, C, BLOCK)
        coded = tl.reshape(v + ch * 256, [CP * BLOCK])
        hist += tl.histogram(coded, CP * 256, mask=tl.reshape(valid, [CP * BLOCK]))
    counts = tl.reshape(hist, [CP, 256])
    levels = tl.arange(0, 256)[None, :]
    highest = tl.max(tl.where(counts > 0, levels, 0), axis=1, keep_dims=True)
    top = tl.sum(tl.where(levels == highest, counts, 0), axis=1, keep_dims=True)
    step = (pixels - top) // 255
    below = tl.cumsum(counts, axis=1) - counts
    mapped = tl.minimum((below + step // 2) // tl.maximum(step, 1), 255)
    tl.store(table + ch * 256 + levels, tl.where(step > 0, mapped, levels), mask=(ch < C) & (levels < 256))


@triton.jit
def _autocontrast_tables(
    src, s_c, s_h, s_w, table, pixels, width, ch, C: tl.constexpr, CP: tl.constexpr, BLOCK: tl.constexpr
):
    """Each channel's autocontrast table (cutoff 0) into ``table``, in float64 as Pillow builds it."""
    low = tl.full([CP, 1], 255, dtype=tl.int32)
    high = tl.zeros([CP, 1], dtype=tl.int32)
    for start in range(0, pixels, BLOCK):
        v, valid, _ = _block(src, s_c, s_h, s_w, start, pixels, width, ch, C, BLOCK)
        low = tl.minimum(low, tl.min(tl.where(valid, v, 255), axis=1, keep_dims=True))
        high = tl.maximum(high, tl.max(v, axis=1, keep_dims=True))
    levels = tl.arange(0, 256)[None, :]
    span = high - low
    scale = 255.0 / tl.maximum(span, 1).to(tl.float64)
    offset = -low.to(tl.float64) * scale
    stretched = tl.minimum(tl.maximum(levels.to(tl.float64) * scale + offset, 0.0), 255.0).to(tl.int32)
    tl.store(table + ch * 256 + levels, tl.where(span > 0, stretched, levels), mask=(ch < C) & (levels < 256))


@triton.jit
def _mean_grey(src, s_c, s_h, s_w, pixels, width, ch, C: tl.constexpr, BLOCK: tl.constexpr):
    """The image's mean grey level rounded as Pillow's ``int(mean + 0.5)``, as float32."""
    total = pixels.to(tl.int64) * 0
    for start in range(0, pixels, BLOCK):
        v, _, _ = _block(src, s_c, s_h, s_w, start, pixels, width, ch, C, BLOCK)
        total += tl.sum(_grey(v, ch, C), axis=0).to(tl.int64)
    return ((2 * total + pixels) // (2 * pixels)).to(tl.float32)


@triton.jit
def _image_stats(
    code, arg, src, s_c, s_h, s_w, table, pixels, width, ch,
    C: tl.constexpr, CP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """What op ``code`` needs of the whole image before it changes a pixel: equalize's or autocontrast's
    tables (into ``table``) or contrast's mean grey level (returned; 0 for other ops)."""
    mean = arg * 0.0
    if code == EQUALIZE:
        _equalize_tables(src, s_c, s_h, s_w, table, pixels, width, ch, C, CP, BLOCK)
        tl.debug_barrier()  # the tables are read by other threads
    elif code == AUTOCONTRAST:
        _autocontrast_tables(src, s_c, s_h, s_w, table, pixels, width, ch, C, CP, BLOCK)
        tl.debug_barrier()
    elif code == CONTRAST:
        mean = _mean_grey(src, s_c, s_h, s_w, pixels, width, ch, C, BLOCK)
    return mean


# ------------------------------------------------------------------------------------- colour passes
@triton.jit
def _recolour(code, arg, mean, table, v, valid, ch, C: tl.constexpr):
    """Op ``code`` (any op but sharpness; 0 or sharpness: unchanged) on pixel values ``v`` ``(CP,BLOCK)``
    int32, each from its own channels (and the tables or mean found before)."""
    out = v
    if code == INVERT:
        out = 255 - v
    elif code == POSTERIZE:
        out = v & ((255 << (8 - tl.minimum(tl.maximum(arg, 0.0), 8.0).to(tl.int32))) & 255)
    elif code == SOLARIZE:
        out = tl.where(v < tl.math.ceil(arg).to(tl.int32), v, 255 - v)  # v < threshold stays
    elif code == SOLARIZE_ADD:
        shift = tl.minimum(tl.maximum(tl.math.floor(arg), -255.0), 255.0).to(tl.int32)
        out = tl.where(v < SOLARIZE_ADD_BELOW, tl.minimum(tl.maximum(v + shift, 0), 255), v)
    elif code == BRIGHTNESS:
        out = _clip_truncate(v.to(tl.float32) * tl.minimum(arg, MAX_FACTOR))
    elif code == COLOR:  # a grey image is its own grey version: the blend leaves it unchanged
        out = _blend(v, _grey(v, ch, C)[None, :].to(tl.float32), tl.minimum(arg, MAX_FACTOR))
    elif code == CONTRAST:
        out = _blend(v, mean, tl.minimum(arg, MAX_FACTOR))
    elif (code == EQUALIZE) | (code == AUTOCONTRAST):
        out = tl.load(table + ch * 256 + v, mask=valid, other=0)
    return out


@triton.jit
def _pointwise(
    code, arg, mean, src, s_c, s_h, s_w, dst, d_c, d_h, d_w, table, pixels, width, ch,
    C: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Every op but sharpness over the whole image, ``src`` -> ``dst`` (which may be ``src`` itself:
    each pixel is read and written by the same thread, or read before a layout change's barrier)."""
    for start in range(0, pixels, BLOCK):
        v, valid, p = _block(src, s_c, s_h, s_w, start, pixels, width, ch, C, BLOCK)
        out = _recolour(code, arg, mean, table, v, valid, ch, C)
        tl.store(dst + _offsets(p, width, ch, d_c, d_h, d_w), out.to(tl.uint8), mask=valid)


@triton.jit
def _sharpness(
    src, s_c, s_h, s_w, dst, d_c, d_h, d_w, factor, height, width, ch, C: tl.constexpr, BLOCK: tl.constexpr
):
    """A blend with the SMOOTH-filtered image inside the one-pixel border; the border is copied.
    ``dst`` must not be ``src`` (the filter reads neighbours)."""
    pixels = height * width
    for start in range(0, pixels, BLOCK):
        centre, valid, p = _block(src, s_c, s_h, s_w, start, pixels, width, ch, C, BLOCK)
        y, x = p // width, p % width
        inner = valid & (y >= 1) & (y < height - 1) & (x >= 1) & (x < width - 1)
        here = src + _offsets(p, width, ch, s_c, s_h, s_w)
        total = 4 * centre  # the 3x3 sum below counts the centre once more: weight 5
        for dy in tl.static_range(3):
            for dx in tl.static_range(3):
                near = here + (dy - 1) * s_h + (dx - 1) * s_w
                total += tl.load(near, mask=inner, other=0).to(tl.int32)
        smooth = ((total + 6) // 13).to(tl.float32)
        out = tl.where(inner, _blend(centre, smooth, factor), centre)
        tl.store(dst + _offsets(p, width, ch, d_c, d_h, d_w), out.to(tl.uint8), mask=valid)


@triton.jit
def _colour_op(
    code, arg, src, s_c, s_h, s_w, dst, d_c, d_h, d_w, table, height, width, ch,
    C: tl.constexpr, CP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One colour op of one sample over its whole image: ``src`` -> ``dst`` (code 0: a copy)."""
    pixels = height * width
    if code == SHARPNESS:
        _sharpness(
            src, s_c, s_h, s_w, dst, d_c, d_h, d_w, tl.minimum(arg, MAX_FACTOR), height, width, ch, C, BLOCK
        )
    else:
        mean = _image_stats(code, arg, src, s_c, s_h, s_w, table, pixels, width, ch, C, CP, BLOCK)
        _pointwise(
            code, arg, mean, src, s_c, s_h, s_w, dst, d_c, d_h, d_w, table, pixels, width, ch, C, BLOCK
        )


# ------------------------------------------------------------------------------- the warp, written out
@triton.jit
def _bilinear(
    src, s_c, s_h, s_w, point_x, point_y, fill, margin, height, width, ch, valid,
    code, arg, mean, table, C: tl.constexpr,
):  # fmt: skip
    """Pillow's bilinear filter at 16.16 points ``(BLOCK,)``: the 2x2 neighbours (edges repeated, each
    recoloured by op ``code`` first), the value truncated after adding ``margin``
    (``resample.bilinear_margin``); ``fill`` outside the image."""
    inside = (point_x >= 0) & (point_x < width * ONE) & (point_y >= 0) & (point_y < height * ONE)
    fx = tl.minimum(tl.maximum(point_x.to(tl.float32) * (1.0 / ONE) - 0.5, 0.0), (width - 1).to(tl.float32))
    fy = tl.minimum(tl.maximum(point_y.to(tl.float32) * (1.0 / ONE) - 0.5, 0.0), (height - 1).to(tl.float32))
    x0, y0 = fx.to(tl.int32), fy.to(tl.int32)  # floor: both are >= 0
    x1, y1 = tl.minimum(x0 + 1, width - 1), tl.minimum(y0 + 1, height - 1)
    wx, wy = fx - x0.to(tl.float32), fy - y0.to(tl.float32)
    base = src + ch * s_c
    v00 = tl.load(base + (y0 * s_h + x0 * s_w)[None, :], mask=valid, other=0).to(tl.int32)
    v01 = tl.load(base + (y0 * s_h + x1 * s_w)[None, :], mask=valid, other=0).to(tl.int32)
    v10 = tl.load(base + (y1 * s_h + x0 * s_w)[None, :], mask=valid, other=0).to(tl.int32)
    v11 = tl.load(base + (y1 * s_h + x1 * s_w)[None, :], mask=valid, other=0).to(tl.int32)
    v00 = _recolour(code, arg, mean, table, v00, valid, ch, C).to(tl.float32)
    v01 = _recolour(code, arg, mean, table, v01, valid, ch, C).to(tl.float32)
    v10 = _recolour(code, arg, mean, table, v10, valid, ch, C).to(tl.float32)
    v11 = _recolour(code, arg, mean, table, v11, valid, ch, C).to(tl.float32)
    wx, wy = wx[None, :], wy[None, :]
    upper = v00 * (1.0 - wx) + v01 * wx
    lower = v10 * (1.0 - wx) + v11 * wx
    value = _clip_truncate(upper * (1.0 - wy) + lower * wy + margin)
    return tl.where(inside[None, :], value, fill)


@triton.jit
def _exact_part(offset, step, index):
    """A separable warp's 16.16 coordinate at ``index`` (float64, floored, clipped), as in
    ``affine.sample_parts``."""
    point = tl.floor((offset + step * index.to(tl.float64)) * 65536.0)
    return tl.minimum(tl.maximum(point, -FLOAT_LIMIT), FLOAT_LIMIT - 1.0).to(tl.int32)


@triton.jit
def _fixed_part(per_column, per_row, offset, i, j):
    """A fixed-point warp's 16.16 coordinate at column ``i``, row ``j`` (int64 products, clipped parts)."""
    column = tl.minimum(tl.maximum(per_column * i.to(tl.int64), -LIMIT), LIMIT - 1)
    row = tl.minimum(tl.maximum(per_row * j.to(tl.int64) + offset, -LIMIT), LIMIT - 1)
    return (row + column).to(tl.int32)


@triton.jit
def _finish(
    src, s_c, s_h, s_w, out, o_c, o_h, o_w, rec, wide, double, fill, margin, height, width,
    code, arg, mean, table, ch,
    C: tl.constexpr, BILINEAR: tl.constexpr, BLOCK: tl.constexpr, ROW: tl.constexpr, ALIGN: tl.constexpr,
):  # fmt: skip
    """The sample's last colour op ``code`` (0: none; any op but sharpness, its tables or mean found
    before), its warp (or a copy when it does not move) and its Cutout box, written to ``out``: every
    read pixel is recoloured before it is resampled, as if the op had run over the whole image first.
    ``wide``/``double``: its warp coefficients read as int64 / float64. ``src`` may be ``out`` itself
    when the sample does not move.

    Blocks are ``BLOCK // ROW`` rows of ``ROW`` columns. ``ALIGN`` 4: ``out``'s rows are contiguous and
    its start, row and channel strides and ``width`` are multiples of 4 (the launcher checks), so every
    4 output pixels of a row are written as one 4-byte store."""
    kind = tl.load(rec + MOVING)
    top, left = tl.load(rec + BOX), tl.load(rec + BOX + 1)
    bottom, right = tl.load(rec + BOX + 2), tl.load(rec + BOX + 3)
    tile = tl.arange(0, BLOCK)
    for row in range(0, height, BLOCK // ROW):
        for column in range(0, width, ROW):
            j, i = row + tile // ROW, column + tile % ROW
            in_image = (j < height) & (i < width)
            if ALIGN > 1:  # a row's pixels 4k .. 4k+3 are all in or all out: the width is a multiple of 4
                in_image = tl.max_constancy(in_image, [ALIGN])
            valid = (ch < C) & in_image[None, :]
            if kind != STILL:
                if kind == SEPARABLE:
                    point_x = _exact_part(tl.load(double + 1), tl.load(double), i)
                    point_y = _exact_part(tl.load(double + 3), tl.load(double + 2), j)
                else:
                    point_x = _fixed_part(tl.load(wide), tl.load(wide + 1), tl.load(wide + 2), i, j)
                    point_y = _fixed_part(tl.load(wide + 3), tl.load(wide + 4), tl.load(wide + 5), i, j)
                if BILINEAR:
                    value = _bilinear(
                        src, s_c, s_h, s_w, point_x, point_y, fill, margin, height, width, ch, valid,
                        code, arg, mean, table, C,
                    )  # fmt: skip
                else:
                    sx, sy = point_x >> 16, point_y >> 16
                    inside = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
                    read = valid & inside[None, :]
                    value = tl.load(src + ch * s_c + (sy * s_h + sx * s_w)[None, :], mask=read, other=0)
                    value = _recolour(code, arg, mean, table, value.to(tl.int32), read, ch, C)
                    value = tl.where(inside[None, :], value, fill)
            else:
                here = src + ch * s_c + (j * s_h + i * s_w)[None, :]
                value = tl.load(here, mask=valid, other=0).to(tl.int32)
                value = _recolour(code, arg, mean, table, value, valid, ch, C)
            boxed = (j >= top) & (j < bottom) & (i >= left) & (i < right)
            value = tl.where(boxed[None, :], fill, value)
            if ALIGN > 1:
                there = out + ch * o_c + (j * o_h + i)[None, :]
                there = tl.max_contiguous(tl.multiple_of(there, [1, ALIGN]), [1, ALIGN])
                tl.store(there, value.to(tl.uint8), mask=valid)
            else:
                tl.store(out + ch * o_c + (j * o_h + i * o_w)[None, :], value.to(tl.uint8), mask=valid)


# ----------------------------------------------------------------------------------------- the kernel
@triton.jit(do_not_specialize=["height", "width", "slots", "record", "fill"])
def _augment_kernel(
    x, out, work, tables, plan, plan_float, plan_wide, plan_double,
    height, width, slots, record, fill, margin,
    x_sb, x_sc, x_sh, x_sw, o_sb, o_sc, o_sh, o_sw,
    C: tl.constexpr, CP: tl.constexpr, BILINEAR: tl.constexpr, BLOCK: tl.constexpr, ROW: tl.constexpr,
    ALIGN: tl.constexpr,
):  # fmt: skip
    """Program ``b`` augments sample ``b`` of ``x`` ``(B,C,H,W)`` uint8 into ``out`` as its record in
    ``plan`` ``(B,record)`` int32 says (``plan_float``, ``plan_wide``, ``plan_double``: the same memory
    read as float32, int64 and float64). ``work``: one ``(C,H,W)`` scratch image per sample.

    Every colour op but the last runs over the whole image: the first reads the input through its
    strides, the others the scratch (pointwise ops in place; sharpness, which reads neighbours, into the
    output and back). The last op (unless it is sharpness) runs inside the final pass, which warps the
    image where it now is, applies Cutout and writes the output."""
    b = tl.program_id(0).to(tl.int64)
    pixels = height * width
    ch = tl.arange(0, CP)[:, None]
    rec = plan + b * record
    coefficients = (b * record + HEADER + 2 * slots) // 2  # in 8-byte words (both terms are even)
    wide, double = plan_wide + coefficients, plan_double + coefficients
    sample = x + b * x_sb
    target = out + b * o_sb
    scratch = work + b * (C * pixels)
    table = tables + b * (C * 256)
    still = tl.load(rec + MOVING) == STILL
    where = INPUT + 0 * slots  # where the image is now
    code = 0 * slots  # the op the final pass applies
    arg = 0.0 * margin
    if tl.load(rec + COLOURED) != 0:
        last = -1 + 0 * slots
        for slot in range(slots):
            if tl.load(rec + HEADER + slot) != 0:
                last = slot
        for slot in range(slots):
            now = tl.load(rec + HEADER + slot)
            value = tl.load(plan_float + b * record + HEADER + slots + slot)
            # the final pass takes the last op when it can: not sharpness, and not reading the output
            # it writes at other positions
            final = (slot == last) & (now != SHARPNESS) & ((where != OUTPUT) | still)
            if (now != 0) & ~final:
                dst = tl.where((now == SHARPNESS) & (where == SCRATCH), OUTPUT, SCRATCH)
                src, s_c, s_h, s_w = _located(
                    where, sample, x_sc, x_sh, x_sw, scratch, pixels, width, target, o_sc, o_sh, o_sw
                )
                to, d_c, d_h, d_w = _located(
                    dst, sample, x_sc, x_sh, x_sw, scratch, pixels, width, target, o_sc, o_sh, o_sw
                )
                _colour_op(
                    now, value, src, s_c, s_h, s_w, to, d_c, d_h, d_w, table, height, width, ch, C, CP, BLOCK
                )
                tl.debug_barrier()  # the next pass reads what other threads wrote
                where = dst
            elif now != 0:
                code, arg = now, value
        if (where == OUTPUT) & ~still:  # a last sharpness: the warp must not read what it writes
            src, s_c, s_h, s_w = _located(
                where, sample, x_sc, x_sh, x_sw, scratch, pixels, width, target, o_sc, o_sh, o_sw
            )
            _colour_op(
                0, arg, src, s_c, s_h, s_w, scratch, pixels, width, 1, table, height, width, ch, C, CP, BLOCK
            )
            tl.debug_barrier()
            where = SCRATCH + 0 * slots
    src, s_c, s_h, s_w = _located(
        where, sample, x_sc, x_sh, x_sw, scratch, pixels, width, target, o_sc, o_sh, o_sw
    )
    mean = _image_stats(code, arg, src, s_c, s_h, s_w, table, pixels, width, ch, C, CP, BLOCK)
    _finish(
        src, s_c, s_h, s_w, target, o_sc, o_sh, o_sw, rec, wide, double, fill, margin, height, width,
        code, arg, mean, table, ch, C, BILINEAR, BLOCK, ROW, ALIGN,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- launcher
_failure: str | None = None  # why the kernels could not be compiled here; the torch path runs instead


def compiled_here() -> bool:
    """False once the kernels failed to compile in this process (the torch path runs instead)."""
    return _failure is None


def failure() -> str | None:
    """Why the kernels could not be compiled in this process (the first line of the error), or None."""
    return _failure


_compiled: set[tuple] = set()  # the specialisations compiled in this process (see _specialisation)


def _specialisation(device: torch.device, args: tuple, meta: dict) -> tuple:
    """What tells the kernel's compiled variants apart, or finer: the constants and launch options, and
    per argument what Triton specialises on (a pointer's 16-byte alignment, an integer's divisibility by
    16 and equality to 1; the type of anything else)."""

    def kind(value: object) -> tuple:
        if isinstance(value, torch.Tensor):
            return (value.dtype, value.data_ptr() % 16 == 0)
        if isinstance(value, int):
            return (value % 16 == 0, value == 1)
        return (type(value),)

    return (device, tuple(sorted(meta.items())), *(kind(value) for value in args))


def _compile(grid: tuple[int], args: tuple, meta: dict) -> None:
    """Compile the kernel for these arguments' specialisation, once per specialisation in the process
    (nothing to do in the interpreter), apart from the launch, so that only a compile failure is caught."""
    key = _specialisation(args[0].device, args, meta)
    if key not in _compiled:
        _augment_kernel.warmup(*args, grid=grid, **meta)
        _compiled.add(key)


def _give_up(error: Exception) -> None:
    """Remember a compile failure and say so once; from now on the caller runs the torch path."""
    global _failure
    _failure = f"{type(error).__name__}: {error}".splitlines()[0]
    warnings.warn(
        f"kdforaa: the Triton augmentation kernels failed to compile ({_failure}); "
        "augmenting with the torch path instead (same bytes, slower)",
        RuntimeWarning,
        stacklevel=3,
    )


def _records(plan: SamplePlan, pinned: bool) -> torch.Tensor:
    """The batch's records ``(B, record)`` int32 on the host (pinned for a non-blocking upload): a few
    numbers per sample, whatever the image size."""
    codes, moving, cutout = plan.codes, plan.moving, plan.cutout
    batch, slots = codes.shape
    kind, coloured, box, header = MOVING.value, COLOURED.value, BOX.value, HEADER.value  # plain ints: fast
    parts = header + 2 * slots
    host = torch.empty((batch, parts + WARP_WORDS), dtype=torch.int32, pin_memory=pinned)
    table = host.numpy()
    table[:, kind] = STILL.value
    table[:, coloured] = codes.any(1)
    table[:, box : box + 4] = 0 if cutout is None else cutout
    table[:, header : header + slots] = codes
    table[:, header + slots : parts] = np.ascontiguousarray(plan.arguments, np.float32).view(np.int32)
    words = table[:, parts:].view(np.int64)  # (B,6): 8-byte words (parts and the row length are even)
    words[:] = 0
    if plan.maps is not None and moving.any():
        warp = sample_coefficients(plan.maps)
        table[:, kind] = np.where(moving, np.where(warp.separable, SEPARABLE.value, FIXED.value), STILL.value)
        words[:] = np.where((moving & ~warp.separable)[:, None], warp.fixed.reshape(batch, 6), 0)
        numbers = np.stack([warp.steps[:, 0], warp.offsets[:, 0], warp.steps[:, 1], warp.offsets[:, 1]], 1)
        words[:, :4] = np.where((moving & warp.separable)[:, None], numbers.view(np.int64), words[:, :4])
    return host


BLOCK_VALUES, WARPS = 512, 4  # values (channel rows x pixels) per block, warps


def _launch_shape(channels: int, height: int, width: int, bilinear: bool, aligned: bool) -> tuple[dict, dict]:
    """Compile-time constants and launch options for samples of ``channels x height x width``;
    ``aligned``: the output's rows can be written 4 bytes at a time (see ``_finish``).

    Blocks of 512 values on 4 warps (128 RGB pixels, the fourth channel row masked, or 512 grey ones):
    4 values per thread, which a 4-byte store of 4 pixels of a row needs. Compiled for sm_80 and sm_90
    the kernel then takes at most 158 registers per thread with no spills, so at least 3 programs stay
    resident per SM (1024-pixel blocks on 8 warps spilled on sm_90 and left one program per SM); the
    final pass takes its blocks as whole rows. tests/augment/test_triton.py reads the compiler's report.
    """
    channel_rows = triton.next_power_of_2(channels)
    block = min(BLOCK_VALUES // channel_rows, triton.next_power_of_2(height * width))
    meta = {
        "C": channels, "CP": channel_rows, "BILINEAR": bilinear, "BLOCK": block,
        "ROW": min(block, triton.next_power_of_2(width)), "ALIGN": 4 if aligned else 1,
    }  # fmt: skip
    return meta, {"num_warps": WARPS, "enable_fp_fusion": False}


def _rows_aligned(out: torch.Tensor) -> bool:
    """Whether every sample's rows of ``out`` ``(B,C,H,W)`` are contiguous and start at a multiple of 4
    bytes, and its width is a multiple of 4: then the final pass writes 4 pixels per store."""
    sample, channel, row, column = out.stride()
    return (
        column == 1
        and out.shape[3] % 4 == 0
        and all(v % 4 == 0 for v in (sample, channel, row, out.data_ptr()))
    )


def apply(x: torch.Tensor, plan: SamplePlan, fill: int, *, bilinear: bool) -> torch.Tensor | None:
    """Augment ``x`` ``(B,C,H,W)`` uint8 (CUDA, or CPU under the interpreter) in one kernel launch, as
    ``plan`` says (its colour ops, each sample's warp and Cutout box), ``fill`` where a pixel has no
    source. Returns a new batch in ``x``'s memory format, or None when the kernels cannot be compiled
    here (warned once).
    """
    if not compiled_here():
        return None
    if x.device.type == "cpu" and not INTERPRETED:
        raise BadInput("TRITON_INTERPRET=1 must be set before kdforaa's Triton kernels are first imported")
    batch, channels, height, width = x.shape
    out = torch.empty_like(x)
    if batch == 0:
        return out
    on_gpu = x.device.type == "cuda"
    host = _records(plan, pinned=on_gpu)
    records = host.to(x.device, non_blocking=True) if on_gpu else host
    scratch = channels * height * width if (plan.codes != 0).any() else 0
    work = torch.empty(max(1, batch * scratch), dtype=torch.uint8, device=x.device)
    tables = torch.empty(max(1, batch * channels * 256), dtype=torch.int32, device=x.device)
    args = (
        x, out, work, tables, records,
        records.view(torch.float32), records.view(torch.int64), records.view(torch.float64),
        height, width, plan.codes.shape[1], records.shape[1], fill, bilinear_margin(height, width),
        *x.stride(), *out.stride(),
    )  # fmt: skip
    meta, options = _launch_shape(channels, height, width, bilinear, _rows_aligned(out))
    grid = (batch,)
    with torch.cuda.device(x.device) if on_gpu else contextlib.nullcontext():
        try:
            _compile(grid, args, meta | options)
        except Exception as error:  # noqa: BLE001 - any compile failure: the torch path gives the bytes
            _give_up(error)
            return None
        _augment_kernel[grid](*args, **meta, **options)
    return out
