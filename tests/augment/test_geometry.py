"""kdforaa.augment.geometry: matrix conventions, composition order, and the batched warp."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kdforaa.augment import geometry
from kdforaa.errors import BadInput

EYE = torch.eye(3, dtype=torch.float64)


def apply_to_point(matrix: torch.Tensor, x: float, y: float) -> tuple[float, float]:
    point = matrix.reshape(3, 3) @ torch.tensor([x, y, 1.0], dtype=torch.float64)
    return point[0].item(), point[1].item()


# ---------------------------------------------------------------------------------------------------
# Matrices


def test_matrices_are_batched_float64_inverse_maps():
    m = geometry.translate_matrix(torch.tensor([1.0, -2.0, 3.5]), 4.0)
    assert m.shape == (3, 3, 3) and m.dtype == torch.float64
    assert apply_to_point(m[2], 10.0, 20.0) == (13.5, 24.0)  # output (10, 20) reads input (13.5, 24)
    assert torch.equal(m[:, 2], torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=torch.float64))
    assert geometry.rotate_matrix(30.0, 8, 8).shape == (1, 3, 3)


def test_shear_matrices_follow_pillow_data_order():
    assert torch.equal(
        geometry.shear_x_matrix(0.3)[0, :2].flatten(),
        torch.tensor([1, 0.3, 0, 0, 1, 0.0], dtype=torch.float64),
    )
    assert torch.equal(
        geometry.shear_y_matrix(0.3)[0, :2].flatten(),
        torch.tensor([1, 0, 0, 0.3, 1, 0.0], dtype=torch.float64),
    )


def test_rotate_matrix_turns_about_the_image_centre_counter_clockwise():
    m = geometry.rotate_matrix(torch.tensor([90.0, 37.0]), height=10, width=16)
    for i in range(2):
        assert apply_to_point(m[i], 8.0, 5.0) == pytest.approx((8.0, 5.0))
    # A quarter turn counter-clockwise: the output's top-centre shows the input's right-centre.
    assert apply_to_point(m[0], 8.0, 0.0) == pytest.approx((13.0, 5.0))


def test_rotate_matrix_equals_pillows_own_matrix():
    image = Image.new("L", (23, 17))
    captured = {}

    def spy(size, method, data, resample, fillcolor=None):
        captured["data"] = data
        return image

    image.transform = spy
    for degrees in (33.3, -71.0, 90.0, 400.0):
        image.rotate(degrees, resample=Image.Resampling.NEAREST, fillcolor=0)
        expected = torch.tensor(captured["data"], dtype=torch.float64)
        assert torch.equal(geometry.rotate_matrix(degrees, 17, 23)[0, :2].flatten(), expected), degrees


def test_flip_matrix_mirrors_only_where_asked(noise_rgb_17x23):
    flip = torch.tensor([True, False, True, False, False, True])
    out = geometry.warp(noise_rgb_17x23, geometry.flip_matrix(flip, width=23))
    expected = torch.where(flip.view(-1, 1, 1, 1), noise_rgb_17x23.flip(3), noise_rgb_17x23)
    assert torch.equal(out, expected)


def test_crop_matrix_equals_a_padded_crop(fashion_rgb):
    pad = 4
    left = torch.tensor([-4, -1, 0, 3, 4, 2, -3, 0])
    top = torch.tensor([0, 4, -4, 1, -2, 3, 2, 0])
    out = geometry.warp(fashion_rgb, geometry.crop_matrix(left, top), fill=9)
    padded = F.pad(fashion_rgb, (pad,) * 4, value=9)
    for i in range(len(fashion_rgb)):
        r, c = top[i].item() + pad, left[i].item() + pad
        assert torch.equal(out[i], padded[i, :, r : r + 28, c : c + 28])


def test_crop_matrix_wants_whole_pixels():
    with pytest.raises(BadInput, match="left"):
        geometry.crop_matrix(torch.tensor([1.5]), 0)


# ---------------------------------------------------------------------------------------------------
# Composition


def test_compose_is_the_matrix_product_in_application_order():
    a = geometry.rotate_matrix(torch.tensor([10.0, 20.0]), 8, 8)
    b = geometry.shear_x_matrix(0.2)
    c = geometry.translate_matrix(3.0, -1.0)
    assert torch.allclose(geometry.compose(a, b, c), a @ b @ c)
    assert geometry.compose(a).data_ptr() == a.data_ptr()
    assert geometry.compose(b, c).shape == (1, 3, 3)
    with pytest.raises(BadInput):
        geometry.compose()


def test_composed_warp_equals_warping_one_transform_after_the_other(fashion_rgb):
    # Whole-pixel shifts, quarter turns of a square image and flips never resample between pixels,
    # so applying them one by one must equal the single composed warp, and order must matter.
    shift = geometry.translate_matrix(torch.arange(8.0) - 4, 3.0)
    turn = geometry.rotate_matrix(90.0, 28, 28)
    flip = geometry.flip_matrix(torch.arange(8) % 2 == 0, 28)
    one_by_one = geometry.warp(geometry.warp(geometry.warp(fashion_rgb, shift), turn), flip)
    assert torch.equal(geometry.warp(fashion_rgb, geometry.compose(shift, turn, flip)), one_by_one)
    reversed_order = geometry.warp(fashion_rgb, geometry.compose(flip, turn, shift))
    assert not torch.equal(reversed_order, one_by_one)


# ---------------------------------------------------------------------------------------------------
# Warp


@pytest.mark.parametrize("interpolation", geometry.INTERPOLATIONS)
@pytest.mark.parametrize("matrix", [EYE, EYE[None], EYE.expand(6, 3, 3)], ids=["3x3", "1x3x3", "Bx3x3"])
def test_identity_warp_is_exact(matrix, interpolation, noise_rgb_31x32):
    out = geometry.warp(noise_rgb_31x32[:6], matrix, fill=200, interpolation=interpolation)
    assert torch.equal(out, noise_rgb_31x32[:6])
    assert out.data_ptr() != noise_rgb_31x32.data_ptr()


@pytest.mark.parametrize("size", [(224, 224), (600, 401)])
def test_bilinear_identity_and_whole_shifts_are_exact_on_large_images(size):
    x = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert torch.equal(geometry.warp(x, EYE, interpolation="bilinear"), x)
    shift = geometry.translate_matrix(torch.tensor([5.0, -3.0]), torch.tensor([-2.0, 7.0]))
    assert torch.equal(geometry.warp(x, shift, interpolation="bilinear"), geometry.warp(x, shift))


def test_warp_applies_each_samples_own_matrix(noise_rgb_17x23):
    matrices = geometry.compose(
        geometry.rotate_matrix(torch.linspace(-40, 40, 6), 17, 23),
        geometry.shear_y_matrix(torch.linspace(-0.3, 0.3, 6)),
    )
    together = geometry.warp(noise_rgb_17x23, matrices, fill=3)
    for i in range(6):
        alone = geometry.warp(noise_rgb_17x23[i : i + 1], matrices[i], fill=3)
        assert torch.equal(together[i : i + 1], alone)


def test_warp_matches_pillow_affine_on_a_fused_matrix(fashion_grey, pillow):
    matrices = geometry.compose(
        geometry.rotate_matrix(torch.linspace(-30, 30, 8), 28, 28),
        geometry.shear_x_matrix(0.17),
        geometry.translate_matrix(torch.linspace(-6, 6, 8), 2.3),
    )
    expected = pillow.apply(
        fashion_grey,
        lambda img, *data: img.transform(
            img.size, Image.Transform.AFFINE, data, Image.Resampling.NEAREST, fillcolor=0
        ),
        *matrices[:, :2].reshape(8, 6).T,
    )
    assert torch.equal(geometry.warp(fashion_grey, matrices), expected)


def test_points_far_outside_read_fill_without_overflow(fashion_rgb):
    far = torch.tensor([[1.0, 0, 1e12], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    huge_scale = torch.tensor([[1e9, 0, 0], [0, 1e9, 0], [0, 0, 1]], dtype=torch.float64)
    for matrix in (far, huge_scale, -far):
        out = geometry.warp(fashion_rgb, matrix, fill=5)
        assert (out == 5).all()


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.sampled_from([1, 3]), st.integers(1, 40), st.integers(1, 40)),
    entries=st.lists(st.floats(-50, 50, allow_nan=False), min_size=6, max_size=6),
    fill=st.integers(0, 255),
    interpolation=st.sampled_from(geometry.INTERPOLATIONS),
)
def test_warp_of_any_matrix_keeps_shape_and_only_moves_pixels(shape, entries, fill, interpolation):
    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.uint8)
    matrix = torch.tensor([entries[:3], entries[3:], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = geometry.warp(x, matrix, fill=fill, interpolation=interpolation)
    assert out.shape == x.shape and out.dtype == torch.uint8
    if interpolation == "nearest":  # every output pixel is fill or a pixel of the same image and channel
        for image, source in zip(out.flatten(2), x.flatten(2), strict=True):
            for values, allowed in zip(image, source, strict=True):
                assert torch.isin(values, torch.cat([allowed, torch.tensor([fill], dtype=torch.uint8)])).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: geometry.warp(x, torch.eye(2)), "matrix"),
        (lambda x: geometry.warp(x, EYE.expand(3, 3, 3)), "matrix"),
        (lambda x: geometry.warp(x, EYE * float("nan")), "finite"),
        (lambda x: geometry.warp(x, EYE, fill=-1), "fill"),
        (lambda x: geometry.warp(x, EYE, fill=True), "fill"),
        (lambda x: geometry.warp(x, EYE, interpolation="bicubic"), "interpolation"),
        (lambda x: geometry.warp(x.float(), EYE), "uint8"),
        (lambda x: geometry.rotate_matrix(torch.ones(2, 2), 4, 4), "degrees"),
        (lambda x: geometry.translate_matrix("1", 0), "dx"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, message, fashion_rgb):
    with pytest.raises(ValueError, match=message) as error:
        call(fashion_rgb)
    assert isinstance(error.value, BadInput)
