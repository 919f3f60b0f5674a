"""kdforaa.augment.affine and .resample: the maps' conventions, composition order, and the batched warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kdforaa.augment import affine, resample
from kdforaa.errors import BadInput

EYE = torch.eye(3, dtype=torch.float64)


def tensor(maps: np.ndarray) -> torch.Tensor:
    """Inverse maps (numpy, from kdforaa.augment.affine) as ``resample.warp`` takes them."""
    return torch.from_numpy(maps)


def apply_to_point(matrix: torch.Tensor, x: float, y: float) -> tuple[float, float]:
    point = matrix.reshape(3, 3) @ torch.tensor([x, y, 1.0], dtype=torch.float64)
    return point[0].item(), point[1].item()


# ---------------------------------------------------------------------------------------------------
# Matrices


def test_matrices_are_batched_float64_inverse_maps():
    m = tensor(affine.translate_map(np.array([1.0, -2.0, 3.5]), 4.0))
    assert m.shape == (3, 3, 3) and m.dtype == torch.float64
    assert apply_to_point(m[2], 10.0, 20.0) == (13.5, 24.0)  # output (10, 20) reads input (13.5, 24)
    assert torch.equal(m[:, 2], torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=torch.float64))
    assert tensor(affine.rotate_map(30.0, 8, 8)).shape == (1, 3, 3)


def test_shear_maps_follow_pillow_data_order():
    assert torch.equal(
        tensor(affine.shear_x_map(0.3))[0, :2].flatten(),
        torch.tensor([1, 0.3, 0, 0, 1, 0.0], dtype=torch.float64),
    )
    assert torch.equal(
        tensor(affine.shear_y_map(0.3))[0, :2].flatten(),
        torch.tensor([1, 0, 0, 0.3, 1, 0.0], dtype=torch.float64),
    )


def test_rotate_map_turns_about_the_image_centre_counter_clockwise():
    m = tensor(affine.rotate_map(np.array([90.0, 37.0]), height=10, width=16))
    for i in range(2):
        assert apply_to_point(m[i], 8.0, 5.0) == pytest.approx((8.0, 5.0))
    # A quarter turn counter-clockwise: the output's top-centre shows the input's right-centre.
    assert apply_to_point(m[0], 8.0, 0.0) == pytest.approx((13.0, 5.0))


def test_rotate_map_equals_pillows_own_matrix():
    image = Image.new("L", (23, 17))
    captured = {}

    def spy(size, method, data, resample, fillcolor=None):
        captured["data"] = data
        return image

    image.transform = spy
    for degrees in (33.3, -71.0, 90.0, 400.0):
        image.rotate(degrees, resample=Image.Resampling.NEAREST, fillcolor=0)
        expected = torch.tensor(captured["data"], dtype=torch.float64)
        assert torch.equal(tensor(affine.rotate_map(degrees, 17, 23))[0, :2].flatten(), expected), degrees


def test_flip_map_mirrors_only_where_asked(noise_rgb_17x23):
    flip = torch.tensor([True, False, True, False, False, True])
    out = resample.warp(noise_rgb_17x23, tensor(affine.flip_map(flip, width=23)))
    expected = torch.where(flip.view(-1, 1, 1, 1), noise_rgb_17x23.flip(3), noise_rgb_17x23)
    assert torch.equal(out, expected)


def test_a_whole_pixel_translation_is_a_padded_crop(fashion_rgb):
    pad = 4
    left = torch.tensor([-4, -1, 0, 3, 4, 2, -3, 0])
    top = torch.tensor([0, 4, -4, 1, -2, 3, 2, 0])
    out = resample.warp(fashion_rgb, tensor(affine.translate_map(left, top)), fill=9)
    padded = F.pad(fashion_rgb, (pad,) * 4, value=9)
    for i in range(len(fashion_rgb)):
        r, c = top[i].item() + pad, left[i].item() + pad
        assert torch.equal(out[i], padded[i, :, r : r + 28, c : c + 28])


def test_compose_maps_is_the_matrix_product_in_application_order():
    a = affine.rotate_map(np.array([10.0, 20.0]), 8, 8)
    b, c = affine.shear_x_map(0.2), affine.translate_map(3.0, -1.0)
    assert np.allclose(affine.compose_maps(a, b, c), a @ b @ c)
    assert affine.compose_maps(a) is a
    assert affine.compose_maps(b, c).shape == (1, 3, 3)


def test_composed_warp_equals_warping_one_transform_after_the_other(fashion_rgb):
    # Whole-pixel shifts, quarter turns of a square image and flips never resample between pixels,
    # so applying them one by one must equal the single composed warp, and order must matter.
    shift = tensor(affine.translate_map(np.arange(8.0) - 4, 3.0))
    turn = tensor(affine.rotate_map(90.0, 28, 28))
    flip = tensor(affine.flip_map(np.arange(8) % 2 == 0, 28))
    one_by_one = resample.warp(resample.warp(resample.warp(fashion_rgb, shift), turn), flip)
    assert torch.equal(resample.warp(fashion_rgb, shift @ turn @ flip), one_by_one)
    reversed_order = resample.warp(fashion_rgb, flip @ turn @ shift)
    assert not torch.equal(reversed_order, one_by_one)


# ---------------------------------------------------------------------------------------------------
# Warp


@pytest.mark.parametrize("interpolation", resample.INTERPOLATIONS)
@pytest.mark.parametrize("matrix", [EYE, EYE[None], EYE.expand(6, 3, 3)], ids=["3x3", "1x3x3", "Bx3x3"])
def test_identity_warp_is_exact(matrix, interpolation, noise_rgb_31x32):
    out = resample.warp(noise_rgb_31x32[:6], matrix, fill=200, interpolation=interpolation)
    assert torch.equal(out, noise_rgb_31x32[:6])
    assert out.data_ptr() != noise_rgb_31x32.data_ptr()


@pytest.mark.parametrize("size", [(224, 224), (600, 401)])
def test_bilinear_identity_and_whole_shifts_are_exact_on_large_images(size):
    x = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert torch.equal(resample.warp(x, EYE, interpolation="bilinear"), x)
    shift = tensor(affine.translate_map(np.array([5.0, -3.0]), np.array([-2.0, 7.0])))
    assert torch.equal(resample.warp(x, shift, interpolation="bilinear"), resample.warp(x, shift))


def test_warp_applies_each_samples_own_matrix(noise_rgb_17x23):
    matrices = tensor(affine.rotate_map(np.linspace(-40, 40, 6), 17, 23)) @ tensor(
        affine.shear_y_map(np.linspace(-0.3, 0.3, 6))
    )
    together = resample.warp(noise_rgb_17x23, matrices, fill=3)
    for i in range(6):
        alone = resample.warp(noise_rgb_17x23[i : i + 1], matrices[i], fill=3)
        assert torch.equal(together[i : i + 1], alone)


def test_warp_matches_pillow_affine_on_a_fused_matrix(fashion_grey, pillow):
    matrices = (
        tensor(affine.rotate_map(np.linspace(-30, 30, 8), 28, 28))
        @ tensor(affine.shear_x_map(0.17))
        @ tensor(affine.translate_map(np.linspace(-6, 6, 8), 2.3))
    )
    expected = pillow.apply(
        fashion_grey,
        lambda img, *data: img.transform(
            img.size, Image.Transform.AFFINE, data, Image.Resampling.NEAREST, fillcolor=0
        ),
        *matrices[:, :2].reshape(8, 6).T,
    )
    assert torch.equal(resample.warp(fashion_grey, matrices), expected)


def test_points_far_outside_read_fill_without_overflow(fashion_rgb):
    far = torch.tensor([[1.0, 0, 1e12], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    huge_scale = torch.tensor([[1e9, 0, 0], [0, 1e9, 0], [0, 0, 1]], dtype=torch.float64)
    for matrix in (far, huge_scale, -far):
        out = resample.warp(fashion_rgb, matrix, fill=5)
        assert (out == 5).all()


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.sampled_from([1, 3]), st.integers(1, 40), st.integers(1, 40)),
    entries=st.lists(st.floats(-50, 50, allow_nan=False), min_size=6, max_size=6),
    fill=st.integers(0, 255),
    interpolation=st.sampled_from(resample.INTERPOLATIONS),
)
def test_warp_of_any_matrix_keeps_shape_and_only_moves_pixels(shape, entries, fill, interpolation):
    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.uint8)
    matrix = torch.tensor([entries[:3], entries[3:], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = resample.warp(x, matrix, fill=fill, interpolation=interpolation)
    assert out.shape == x.shape and out.dtype == torch.uint8
    if interpolation == "nearest":  # every output pixel is fill or a pixel of the same image and channel
        for image, source in zip(out.flatten(2), x.flatten(2), strict=True):
            for values, allowed in zip(image, source, strict=True):
                assert torch.isin(values, torch.cat([allowed, torch.tensor([fill], dtype=torch.uint8)])).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: resample.warp(x, torch.eye(2)), "matrix"),
        (lambda x: resample.warp(x, EYE.expand(3, 3, 3)), "matrix"),
        (lambda x: resample.warp(x, EYE * float("nan")), "finite"),
        (lambda x: resample.warp(x, EYE, fill=-1), "fill"),
        (lambda x: resample.warp(x, EYE, fill=True), "fill"),
        (lambda x: resample.warp(x, EYE, interpolation="bicubic"), "interpolation"),
        (lambda x: resample.warp(x.float(), EYE), "uint8"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, message, fashion_rgb):
    with pytest.raises(ValueError, match=message) as error:
        call(fashion_rgb)
    assert isinstance(error.value, BadInput)


# ---------------------------------------------------------------------------------------------------
# The two nearest kernels: row runs and single pixels


def kinds_of(matrix: torch.Tensor, height: int, width: int) -> tuple[list[bool], list[bool]]:
    """Per sample: do its output rows copy runs of input pixels, and do they run backwards?"""
    numpy_matrix = matrix.reshape(-1, 3, 3).numpy().astype("float64")
    runs, backward = resample.row_runs(*affine.sample_parts(numpy_matrix, height, width))
    return runs.tolist(), backward.tolist()


def test_shifts_crops_mirrors_and_horizontal_shears_arerow_runs():
    h, w = 17, 23
    runs = [
        tensor(affine.translate_map(3.0, -2.0)),
        tensor(affine.translate_map(12.7, 0.4)),  # fractional shifts still move whole pixels (floor)
        tensor(affine.translate_map(-4, 3)),
        tensor(affine.shear_x_map(0.37)),
        tensor(affine.flip_map(True, w)) @ tensor(affine.translate_map(-5.5, 1.0)),
        tensor(affine.rotate_map(180.0, h, w)),
    ]
    points = [
        tensor(affine.rotate_map(30.0, h, w)),
        tensor(affine.shear_y_map(0.2)),
        torch.diag(torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64))[None],  # a zoom
    ]
    found, backward = kinds_of(torch.cat(runs + points), h, w)
    assert found == [True] * len(runs) + [False] * len(points)
    assert backward[: len(runs)] == [False, False, False, False, True, True]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 19), st.integers(1, 19)),
    shift=st.tuples(st.floats(-25, 25), st.floats(-25, 25)),
    shear=st.floats(-1.5, 1.5),
    flip=st.booleans(),
    fill=st.integers(0, 255),
)
def testrow_runs_copy_exactly_what_the_pixel_gather_reads(shape, shift, shear, flip, fill):
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(sum(shape)))
    h, w = shape[2:]
    matrix = (
        tensor(affine.flip_map(flip, w))
        @ tensor(affine.translate_map(*shift))
        @ tensor(affine.shear_x_map(shear))
    ).expand(shape[0], 3, 3)
    rows, cols = affine.sample_parts(matrix.numpy(), h, w)
    runs, backward = resample.row_runs(rows, cols)
    assert runs.all()
    rows, cols = torch.from_numpy(rows), torch.from_numpy(cols)
    copied = resample._copy_runs(x, rows, cols, torch.from_numpy(backward), fill, bool(backward.any()))
    assert torch.equal(copied, resample._gather_points(x, rows, cols, fill))


def test_a_mixed_batch_warps_each_sample_as_if_alone(noise_rgb_17x23):
    h, w = noise_rgb_17x23.shape[2:]
    matrix = torch.cat(
        [
            tensor(affine.translate_map(4.0, -3.0)),
            tensor(affine.rotate_map(33.0, h, w)),
            EYE[None],
            tensor(affine.flip_map(True, w)) @ tensor(affine.shear_x_map(-0.3)),
            tensor(affine.shear_y_map(0.4)),
            tensor(affine.translate_map(2, -2)),
        ]
    )
    assert kinds_of(matrix, h, w)[0] == [True, False, True, True, False, True]
    out = resample.warp(noise_rgb_17x23, matrix, fill=9)
    for i in range(len(matrix)):
        assert torch.equal(out[i], resample.warp(noise_rgb_17x23[i : i + 1], matrix[i], fill=9)[0])


def test_warp_moved_changes_only_the_samples_that_move(noise_rgb_17x23):
    x = noise_rgb_17x23
    h, w = x.shape[2:]
    matrix = EYE.repeat(len(x), 1, 1)
    matrix[1] = tensor(affine.rotate_map(20.0, h, w))[0]
    matrix[4] = tensor(affine.translate_map(-3.0, 5.0))[0]
    before = x.clone()
    out = resample.warp_moved(x, matrix.numpy(), 0, "nearest", owned=False)
    assert torch.equal(x, before)  # not owned: the input stays as it was
    assert torch.equal(out, resample.warp(x, matrix))
    assert resample.warp_moved(x, EYE.repeat(len(x), 1, 1).numpy(), 0, "nearest", owned=False) is x
    owned = x.clone()
    assert resample.warp_moved(owned, matrix.numpy(), 0, "nearest", owned=True) is owned
    assert torch.equal(owned, out)


@pytest.mark.parametrize("interpolation", resample.INTERPOLATIONS)
def test_resampling_a_large_batch_in_pieces_changes_nothing(interpolation, noise_rgb_17x23, monkeypatch):
    x = noise_rgb_17x23.repeat(3, 1, 1, 1)  # 18 images
    h, w = x.shape[2:]
    angles = torch.linspace(-40.0, 40.0, len(x), dtype=torch.float64)
    shifts = torch.linspace(-9.0, 9.0, len(x), dtype=torch.float64)
    matrix = torch.where(
        (torch.arange(len(x)) % 3 == 0).view(-1, 1, 1),
        tensor(affine.rotate_map(angles.numpy(), h, w)),
        (tensor(affine.flip_map(np.arange(len(x)) % 2 == 0, w)) @ tensor(affine.translate_map(shifts, 0.5))),
    )
    whole = resample.warp(x, matrix, fill=77, interpolation=interpolation)
    monkeypatch.setattr(resample, "_RESAMPLE_PIECE", 2 * x[0].numel() + 5)  # pieces of 2 images
    assert torch.equal(resample.warp(x, matrix, fill=77, interpolation=interpolation), whole)
    moved = resample.warp_moved(x, matrix.numpy(), 77, interpolation, owned=False)
    assert torch.equal(moved, whole)
