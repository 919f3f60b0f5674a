"""kdforaa.augment.ops against Pillow, image by image, plus properties and input validation.

Contract (docs/architecture.md, "The ops"): colour ops within 1 grey level of Pillow on every pixel,
geometric ops (nearest) equal on at least 99% of the pixels of every image.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from kdforaa.augment import kernels, ops, pieces, resample
from kdforaa.augment.op_table import BY_NAME
from kdforaa.errors import BadInput

NEAREST = Image.Resampling.NEAREST
BILINEAR = Image.Resampling.BILINEAR
AFFINE = Image.Transform.AFFINE


def assert_matches(out: torch.Tensor, expected: torch.Tensor, max_diff: int, min_agreement: float) -> None:
    """Same shape and dtype; per image, pixels differ by <= max_diff and agree on >= min_agreement."""
    assert out.dtype == torch.uint8
    assert out.shape == expected.shape
    diff = (out.int() - expected.int()).abs()
    if diff.numel() == 0:
        return
    worst = diff.max().item()
    agreement = (diff == 0).flatten(1).float().mean(1).min().item()
    assert worst <= max_diff and agreement >= min_agreement, (
        f"max diff {worst}, worst agreement {agreement:.4f}"
    )


def assert_colour_matches(out: torch.Tensor, expected: torch.Tensor) -> None:
    assert_matches(out, expected, max_diff=1, min_agreement=0.99)


def assert_geometry_matches(out: torch.Tensor, expected: torch.Tensor) -> None:
    assert_matches(out, expected, max_diff=255, min_agreement=0.99)


def tile(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` images of ``x`` repeated as often as needed: ``(n,C,H,W)``."""
    return x.repeat(math.ceil(n / x.shape[0]), 1, 1, 1)[:n].contiguous()


# ---------------------------------------------------------------------------------------------------
# Colour ops


ENHANCERS = {
    "brightness": (ops.brightness, ImageEnhance.Brightness),
    "color": (ops.color, ImageEnhance.Color),
    "contrast": (ops.contrast, ImageEnhance.Contrast),
    "sharpness": (ops.sharpness, ImageEnhance.Sharpness),
}


@pytest.mark.parametrize("name", ENHANCERS)
@pytest.mark.parametrize("factor", [0.0, 0.1, 0.5, 1.0, 1.9, 3.0])
def test_enhance_ops_match_pillow(name, factor, image_batch, pillow):
    op, enhancer = ENHANCERS[name]
    expected = pillow.apply(image_batch, lambda img: enhancer(img).enhance(factor))
    assert_colour_matches(op(image_batch, factor), expected)


@pytest.mark.parametrize("name", ENHANCERS)
def test_enhance_ops_take_one_factor_per_sample(name, image_batch, pillow):
    op, enhancer = ENHANCERS[name]
    factors = torch.tensor([0.0, 3.0, 0.1, 1.9, 1.0, 0.5, 2.5, 0.9], dtype=torch.float64)[: len(image_batch)]
    expected = pillow.apply(image_batch, lambda img, f: enhancer(img).enhance(f), factors.float())
    assert_colour_matches(op(image_batch, factors), expected)


@pytest.mark.parametrize("side", [255, 257, 300])
def test_contrast_mean_is_exact_on_large_images(side, pillow):
    # Around 256x256 the grey-level sum outgrows float32's whole numbers; the rounded mean must not move.
    generator = torch.Generator().manual_seed(side)
    x = torch.randint(0, 256, (1, 3, side, side), generator=generator, dtype=torch.uint8)
    expected = pillow.apply(x, lambda img: ImageEnhance.Contrast(img).enhance(0.0))  # the mean everywhere
    assert torch.equal(ops.contrast(x, 0.0), expected)


def test_color_leaves_grey_images_unchanged(fashion_grey):
    assert torch.equal(ops.color(fashion_grey, 2.5), fashion_grey)


def test_posterize_matches_pillow_for_every_bit_count(image_batch, pillow):
    for bits in range(1, 9):
        expected = pillow.apply(image_batch, lambda img, b=bits: ImageOps.posterize(img, b))
        assert_colour_matches(ops.posterize(image_batch, bits), expected)


def test_posterize_per_sample_and_zero_bits(fashion_rgb, pillow):
    bits = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8])
    out = ops.posterize(fashion_rgb, bits)
    assert torch.equal(out[0], torch.zeros_like(out[0]))  # Pillow refuses 0 bits; nothing is kept
    expected = pillow.apply(fashion_rgb[1:], lambda img, b: ImageOps.posterize(img, int(b)), bits[1:])
    assert_colour_matches(out[1:], expected)


@pytest.mark.parametrize("threshold", [0, 1, 100.5, 128, 255, 256])
def test_solarize_matches_pillow(threshold, image_batch, pillow):
    expected = pillow.apply(image_batch, lambda img: ImageOps.solarize(img, threshold))
    assert_colour_matches(ops.solarize(image_batch, threshold), expected)


def test_solarize_per_sample(fashion_rgb, pillow):
    thresholds = torch.tensor([0.0, 256.0, 128.0, 10.2, 200.0, 255.0, 1.0, 77.7])
    expected = pillow.apply(fashion_rgb, lambda img, t: ImageOps.solarize(img, t), thresholds.double())
    assert_colour_matches(ops.solarize(fashion_rgb, thresholds), expected)


def solarize_add_reference(img: Image.Image, addition: float, threshold: float) -> Image.Image:
    """The reference table: ``min(255, max(0, int(v + addition)))`` where ``v < threshold``."""
    table = [min(255, max(0, int(v + addition))) if v < threshold else v for v in range(256)]
    return img.point(table * len(img.getbands()))


@pytest.mark.parametrize("addition", [-128.0, -30.5, 0.0, 11.0, 110.0, 128.0, 300.0])
@pytest.mark.parametrize("threshold", [0, 128, 200.5, 256])
def test_solarize_add_matches_reference(addition, threshold, image_batch, pillow):
    expected = pillow.apply(image_batch, lambda img: solarize_add_reference(img, addition, threshold))
    assert_colour_matches(ops.solarize_add(image_batch, addition, threshold), expected)


def test_solarize_add_per_sample(fashion_grey, pillow):
    additions = torch.tensor([0.0, 11.0, 22.0, 55.5, 110.0, -20.0, 128.0, 255.0])
    expected = pillow.apply(fashion_grey, lambda img, a: solarize_add_reference(img, a, 128), additions)
    assert_colour_matches(ops.solarize_add(fashion_grey, additions), expected)


HISTOGRAM_OPS = {
    "equalize": (ops.equalize, ImageOps.equalize),
    "autocontrast": (ops.autocontrast, ImageOps.autocontrast),
    "invert": (ops.invert, ImageOps.invert),
}


@pytest.mark.parametrize("name", HISTOGRAM_OPS)
def test_argument_free_ops_match_pillow(name, image_batch, pillow):
    op, reference = HISTOGRAM_OPS[name]
    assert_colour_matches(op(image_batch), pillow.apply(image_batch, reference))


def special_histograms() -> torch.Tensor:
    """``(6,3,9,13)``: channels that are constant, two-level, a ramp, one bright dot, narrow noise."""
    generator = torch.Generator().manual_seed(3)
    ramp = torch.arange(9 * 13, dtype=torch.uint8).view(9, 13)
    dot = torch.zeros(9, 13, dtype=torch.uint8)
    dot[4, 6] = 250
    two_levels = torch.where(torch.rand(9, 13, generator=generator) < 0.3, 40, 41).to(torch.uint8)
    narrow = torch.randint(100, 104, (9, 13), generator=generator, dtype=torch.uint8)
    constant = torch.full((9, 13), 77, dtype=torch.uint8)
    full = torch.randint(0, 256, (9, 13), generator=generator, dtype=torch.uint8)
    channels = [constant, two_levels, ramp, dot, narrow, full]
    return torch.stack(
        [torch.stack([channels[i], channels[(i + 1) % 6], channels[(i + 3) % 6]]) for i in range(6)]
    )


@pytest.mark.parametrize("name", ["equalize", "autocontrast"])
def test_histogram_ops_follow_pillow_rules_on_special_channels(name, pillow):
    op, reference = HISTOGRAM_OPS[name]
    x = special_histograms()
    assert_colour_matches(op(x), pillow.apply(x, reference))
    grey = x[:, :1].contiguous()
    assert_colour_matches(op(grey), pillow.apply(grey, reference))


def test_identity_returns_an_equal_copy(fashion_rgb):
    out = ops.identity(fashion_rgb)
    assert torch.equal(out, fashion_rgb)
    assert out.data_ptr() != fashion_rgb.data_ptr()


# ---------------------------------------------------------------------------------------------------
# Geometric ops


def pillow_rotate(img, degrees, fill, resample=NEAREST):
    return img.rotate(degrees, resample=resample, fillcolor=fill)


def pillow_affine(data):
    return lambda img, value, fill, resample=NEAREST: img.transform(
        img.size, AFFINE, data(value), resample, fillcolor=fill
    )


GEOMETRIC = {
    "rotate": (ops.rotate, pillow_rotate, [0, 1, -1, 15, -30, 33.3, 45, 90, -90, 180, -180, 270, 359.5]),
    "shear_x": (
        ops.shear_x,
        pillow_affine(lambda f: (1, f, 0, 0, 1, 0)),
        [-0.9, -0.3, -0.2, 0, 0.1, 0.5, 0.9],
    ),
    "shear_y": (
        ops.shear_y,
        pillow_affine(lambda f: (1, 0, 0, f, 1, 0)),
        [-0.9, -0.3, -0.2, 0, 0.1, 0.5, 0.9],
    ),
    "translate_x": (
        ops.translate_x,
        pillow_affine(lambda p: (1, 0, p, 0, 1, 0)),
        [-40, -12.6, -3.5, -0.5, 0, 0.49999, 2.7, 10, 40],
    ),
    "translate_y": (
        ops.translate_y,
        pillow_affine(lambda p: (1, 0, 0, 0, 1, p)),
        [-40, -12.6, -3.5, -0.5, 0, 0.49999, 2.7, 10, 40],
    ),
}


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("fill", [0, 128])
def test_geometric_ops_match_pillow_per_sample(name, fill, image_batch, pillow):
    op, reference, values = GEOMETRIC[name]
    x = tile(image_batch, len(values))
    colour = pillow.fill(fill, x.shape[1])
    expected = pillow.apply(x, lambda img, v: reference(img, v, colour), values)
    assert_geometry_matches(op(x, torch.tensor(values, dtype=torch.float64), fill=fill), expected)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_ops_match_pillow_for_one_number(name, image_batch, pillow):
    op, reference, values = GEOMETRIC[name]
    colour = pillow.fill(0, image_batch.shape[1])
    for value in (values[0], values[-2]):
        expected = pillow.apply(image_batch, lambda img, v=value: reference(img, v, colour))
        assert_geometry_matches(op(image_batch, value), expected)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_bilinear_geometric_ops_are_within_one_level_of_pillow(name, image_batch, pillow):
    op, reference, values = GEOMETRIC[name]
    x = tile(image_batch, len(values))
    colour = pillow.fill(0, x.shape[1])
    expected = pillow.apply(x, lambda img, v: reference(img, v, colour, resample=BILINEAR), values)
    out = op(x, torch.tensor(values, dtype=torch.float64), interpolation="bilinear")
    # Pillow truncates float64 blends; where those land on whole numbers (fractional shifts such as
    # 2.7 px) its result flips between n and n-1 with rounding noise, so only the level bound holds.
    assert_matches(out, expected, max_diff=1, min_agreement=0.0)


def test_rotations_by_quarter_turns_are_exact(fashion_rgb, noise_rgb_17x23):
    assert torch.equal(ops.rotate(fashion_rgb, 90), torch.rot90(fashion_rgb, 1, dims=(2, 3)))
    assert torch.equal(ops.rotate(fashion_rgb, -90), torch.rot90(fashion_rgb, -1, dims=(2, 3)))
    assert torch.equal(ops.rotate(noise_rgb_17x23, 180), noise_rgb_17x23.flip(2, 3))
    assert torch.equal(ops.rotate(noise_rgb_17x23, 360), noise_rgb_17x23)


def test_translation_past_the_image_gives_only_fill(fashion_rgb):
    out = ops.translate_x(fashion_rgb, torch.tensor([28.0, -28.0, 1e9, -1e9, 40, -40, 29, -29]), fill=7)
    assert torch.equal(out, torch.full_like(fashion_rgb, 7))


# ---------------------------------------------------------------------------------------------------
# Properties on random shapes and extreme arguments

ALL_OPS = {
    "rotate": (ops.rotate, (-720.0, 720.0), 0.0),
    "shear_x": (ops.shear_x, (-3.0, 3.0), 0.0),
    "shear_y": (ops.shear_y, (-3.0, 3.0), 0.0),
    "translate_x": (ops.translate_x, (-100.0, 100.0), 0.0),
    "translate_y": (ops.translate_y, (-100.0, 100.0), 0.0),
    "brightness": (ops.brightness, (0.0, 10.0), 1.0),
    "color": (ops.color, (0.0, 10.0), 1.0),
    "contrast": (ops.contrast, (0.0, 10.0), 1.0),
    "sharpness": (ops.sharpness, (0.0, 10.0), 1.0),
    "posterize": (ops.posterize, (0, 8), 8),
    "solarize": (ops.solarize, (0.0, 256.0), 256.0),
    "solarize_add": (ops.solarize_add, (-300.0, 300.0), 0.0),
}


@st.composite
def image_batches(draw) -> torch.Tensor:
    """uint8 ``(B,C,H,W)``: B 1..8, C 1 or 3, sides 1..40, values spread over a random range."""
    shape = (
        draw(st.integers(1, 8)),
        draw(st.sampled_from([1, 3])),
        draw(st.integers(1, 40)),
        draw(st.integers(1, 40)),
    )
    low = draw(st.integers(0, 255))
    high = draw(st.integers(low, 255))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randint(low, high + 1, shape, generator=generator, dtype=torch.uint8)


@settings(max_examples=60, deadline=None)
@given(x=image_batches(), name=st.sampled_from(sorted(ALL_OPS)), data=st.data())
def test_ops_keep_shape_and_dtype_on_extreme_arguments(x, name, data):
    op, (low, high), _ = ALL_OPS[name]
    values = st.integers(low, high) if name == "posterize" else st.floats(low, high, allow_nan=False)
    args = torch.tensor(data.draw(st.lists(values, min_size=len(x), max_size=len(x))), dtype=torch.float64)
    for argument in (args, args[0].item()):
        out = op(x, argument)
        assert out.dtype == torch.uint8 and out.shape == x.shape


@settings(max_examples=60, deadline=None)
@given(x=image_batches(), name=st.sampled_from(sorted(ALL_OPS)))
def test_neutral_arguments_give_the_exact_input(x, name):
    op, _, neutral = ALL_OPS[name]
    assert torch.equal(op(x, neutral), x)
    assert torch.equal(op(x, torch.full((len(x),), float(neutral))), x)


@settings(max_examples=60, deadline=None)
@given(x=image_batches(), factor=st.floats(0.0, 4.0), name=st.sampled_from(sorted(ENHANCERS)))
def test_enhance_ops_match_pillow_on_random_shapes(x, factor, name, pillow):
    op, enhancer = ENHANCERS[name]
    expected = pillow.apply(x, lambda img: enhancer(img).enhance(factor))
    assert_colour_matches(op(x, factor), expected)


@settings(max_examples=60, deadline=None)
@given(x=image_batches(), name=st.sampled_from(sorted(HISTOGRAM_OPS)))
def test_argument_free_ops_match_pillow_on_random_shapes(x, name, pillow):
    op, reference = HISTOGRAM_OPS[name]
    assert_colour_matches(op(x), pillow.apply(x, reference))


@settings(max_examples=60, deadline=None)
@given(
    x=image_batches(), degrees=st.floats(-360.0, 360.0), shear=st.floats(-1.0, 1.0), fill=st.integers(0, 255)
)
def test_rotate_and_shear_match_pillow_on_random_shapes(x, degrees, shear, fill, pillow):
    colour = pillow.fill(fill, x.shape[1])
    assert_geometry_matches(
        ops.rotate(x, degrees, fill=fill), pillow.apply(x, lambda img: pillow_rotate(img, degrees, colour))
    )
    reference = GEOMETRIC["shear_x"][1]
    assert_geometry_matches(
        ops.shear_x(x, shear, fill=fill), pillow.apply(x, lambda img: reference(img, shear, colour))
    )


def test_every_op_accepts_an_empty_batch():
    x = torch.zeros((0, 3, 5, 7), dtype=torch.uint8)
    for name, (op, _, neutral) in ALL_OPS.items():
        assert op(x, neutral).shape == x.shape, name
        assert op(x, torch.zeros(0)).shape == x.shape, name
    for op in (ops.equalize, ops.autocontrast, ops.invert, ops.identity):
        assert op(x).shape == x.shape


def test_ops_accept_non_contiguous_batches(fashion_rgb):
    strided = fashion_rgb.to(memory_format=torch.channels_last)
    for name, (op, (low, high), _) in ALL_OPS.items():
        value = low + (high - low) / 3 if name != "posterize" else 3
        assert torch.equal(op(strided, value), op(fashion_rgb, value)), name
    assert torch.equal(ops.equalize(strided), ops.equalize(fashion_rgb))
    assert torch.equal(
        ops.autocontrast(strided[:, :, ::2]), ops.autocontrast(fashion_rgb[:, :, ::2].contiguous())
    )


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_ops_give_the_same_result_on_every_device(device, fashion_rgb):
    x = fashion_rgb.to(device)
    args = torch.linspace(0.2, 2.0, len(x))
    for name, (op, (low, high), _) in ALL_OPS.items():
        per_sample = torch.full((len(x),), 4.0) if name == "posterize" else low + (high - low) * args / 3
        out = op(x, per_sample.to(device))
        assert out.device == x.device, name
        assert torch.equal(out.cpu(), op(fashion_rgb, per_sample)), name
    for op in (ops.equalize, ops.autocontrast, ops.invert):
        assert torch.equal(op(x).cpu(), op(fashion_rgb))


# ---------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: ops.brightness(x.float(), 1.0), "uint8"),
        (lambda x: ops.invert(x[0]), "(B,C,H,W)"),
        (lambda x: ops.equalize(torch.zeros(2, 4, 5, 5, dtype=torch.uint8)), "channels"),
        (lambda x: ops.identity(x.numpy()), "torch.Tensor"),
        (lambda x: ops.contrast(x, -0.5), "factor"),
        (lambda x: ops.sharpness(x, float("nan")), "factor"),
        (lambda x: ops.color(x, torch.tensor([1.0, 2.0])), "factor"),
        (lambda x: ops.brightness(x, "2"), "factor"),
        (lambda x: ops.posterize(x, 9), "bits"),
        (lambda x: ops.posterize(x, 2.5), "bits"),
        (lambda x: ops.posterize(x, -1), "bits"),
        (lambda x: ops.solarize(x, 300), "threshold"),
        (lambda x: ops.solarize_add(x, 10, threshold=-1), "threshold"),
        (lambda x: ops.solarize_add(x, float("inf")), "addition"),
        (lambda x: ops.rotate(x, float("inf")), "degrees"),
        (lambda x: ops.rotate(x, 10, fill=256), "fill"),
        (lambda x: ops.shear_x(x, 0.1, fill=1.5), "fill"),
        (lambda x: ops.translate_y(x, 3, interpolation="bicubic"), "interpolation"),
        (lambda x: ops.translate_x(x, torch.ones(3, 3)), "pixels"),
        (lambda x: ops.shear_y(x, torch.tensor([True] * 8)), "factor"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, message, fashion_rgb):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        call(fashion_rgb)
    assert isinstance(error.value, BadInput)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------------
# Internal paths: the unchecked kernels the policies call, and large batches taken piece by piece

OP_ARGUMENTS = {
    "rotate": torch.tensor([-30.0, 12.5, 90.0, 181.0, 0.0, 7.0, -200.0, 45.0]),
    "shear_x": torch.linspace(-0.6, 0.6, 8),
    "shear_y": torch.linspace(0.5, -0.5, 8),
    "translate_x": torch.tensor([-5.0, 3.0, 12.6, -0.4, 0.0, 28.0, -31.0, 1.0]),
    "translate_y": torch.tensor([4.0, -7.5, 0.0, 2.2, 19.0, -1.0, 30.0, -28.0]),
    "brightness": torch.linspace(0.0, 2.5, 8),
    "color": torch.linspace(0.0, 2.5, 8),
    "contrast": torch.linspace(0.0, 2.5, 8),
    "sharpness": torch.linspace(0.0, 2.5, 8),
    "posterize": torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0]),
    "solarize": torch.tensor([0.0, 0.5, 64.0, 128.0, 200.2, 255.0, 255.5, 256.0]),
    "solarize_add": torch.tensor([-128.0, -30.5, 0.0, 11.0, 50.9, 99.0, 128.0, 255.0]),
}


@pytest.mark.parametrize(
    "name", sorted(set(OP_ARGUMENTS) | {"equalize", "autocontrast", "invert", "identity"})
)
def test_the_op_table_runs_what_the_public_op_gives(name, fashion_rgb):
    argument = OP_ARGUMENTS.get(name)
    public = getattr(ops, name)
    expected = public(fashion_rgb) if argument is None else public(fashion_rgb, argument)
    spec = BY_NAME[name]
    if spec.kind == "geometric":
        inverse = spec.inverse_map(argument.numpy().astype("float64"), 28, 28)
        got = resample.warp(fashion_rgb, torch.from_numpy(inverse))
    elif spec.kind == "colour":
        got = spec.kernel(fashion_rgb) if argument is None else spec.kernel(fashion_rgb, argument)
    else:
        got = fashion_rgb
    assert torch.equal(got, expected)


PIECEWISE = {
    "brightness": kernels.brightness.__wrapped__,
    "color": kernels.color.__wrapped__,
    "contrast": kernels.contrast.__wrapped__,
    "sharpness": kernels.sharpness.__wrapped__,
    "equalize": kernels.equalize.__wrapped__,
    "autocontrast": kernels.autocontrast.__wrapped__,
}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_pieces_of_a_large_batch_give_what_the_whole_batch_gives(name, layout, fashion_rgb):
    x = tile(fashion_rgb, 11)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    kernel = PIECEWISE[name]
    arguments = () if name in ("equalize", "autocontrast") else (torch.linspace(0.1, 2.0, 11),)
    # Pieces of 3 images, the last one of 2: every per-sample argument must follow its image.
    in_pieces = pieces.by_pieces(kernel, 3 * x[0].numel(), x, *arguments)
    assert torch.equal(in_pieces, kernel(x, *arguments))
    if arguments:  # a single argument for every image goes whole to every piece
        one = arguments[0][3:4]
        assert torch.equal(pieces.by_pieces(kernel, 3 * x[0].numel(), x, one), kernel(x, one))


def test_pieces_cover_a_batch_whatever_the_piece_size(fashion_rgb):
    x = tile(fashion_rgb, 7)
    factor = torch.linspace(0.0, 3.0, 7)
    whole = kernels.sharpness.__wrapped__(x, factor)
    for values in (1, x[0].numel(), 2 * x[0].numel() + 1, 6 * x[0].numel(), 100 * x[0].numel()):
        assert torch.equal(pieces.by_pieces(kernels.sharpness.__wrapped__, values, x, factor), whole)
    assert pieces.by_pieces(kernels.sharpness.__wrapped__, 1, x[:0], factor[:0]).shape == (0, 3, 28, 28)
