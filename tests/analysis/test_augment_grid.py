import numpy as np
import pytest
import torch
from PIL import Image

from kdforaa.analysis.augment_grid import HEADER, PAD, grid_size, render_grid, upscale_factor
from kdforaa.augment.policies import RandAugment, SingleOp
from kdforaa.augment.random import make_keys


@pytest.fixture(scope="module")
def fashion(fashion_test_images) -> torch.Tensor:
    return fashion_test_images[:3]


def test_grid_png_has_one_cell_per_image_and_level(fashion, tmp_path):
    levels = (0, 10, 30)
    path = render_grid(
        fashion, lambda level: RandAugment(2, level), tmp_path / "sub" / "grid.png", levels=levels
    )
    assert upscale_factor(28, 28) == 4
    with Image.open(path) as png:
        assert png.size == grid_size(3, 1 + len(levels), 28, 28, 4)  # the clean column first
        assert png.mode == "RGB"


def test_cells_show_the_augmented_images_upscaled(fashion, tmp_path):
    path = render_grid(
        fashion, lambda level: SingleOp("rotate", level), tmp_path / "g.png", levels=(0, 20), scale=2
    )
    grid = np.asarray(Image.open(path))

    def cell(column: int) -> np.ndarray:
        left = PAD + column * (56 + PAD)
        return grid[HEADER + PAD : HEADER + PAD + 56, left : left + 56, 0]

    expected = fashion[0, 0].numpy().repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(cell(0), expected)  # the clean image
    assert np.array_equal(cell(1), expected)  # level 0 rotation is the identity
    assert not np.array_equal(cell(2), expected)


def test_an_op_without_a_level_gets_one_column_and_rows_the_level_does_not_change_give_way(tmp_path):
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    path = render_grid(images, lambda level: SingleOp("equalize", level), tmp_path / "eq.png", levels=(0, 9))
    with Image.open(path) as png:
        assert png.size == grid_size(6, 2, 8, 8, upscale_factor(8, 8))  # clean, "any level"
    # RandAugment(1, L) over identity and rotate: the rows that drew identity come last
    policy = lambda level: RandAugment(1, level, ops=("identity", "rotate"))  # noqa: E731
    path = render_grid(images, policy, tmp_path / "ra.png", levels=(0, 30), rows=6)
    drawn = [RandAugment(1, 30.0, ops=("identity", "rotate")).sample(make_keys(0, 0, torch.arange(6)))]
    ops = [drawn[0].describe(i) for i in range(6)]
    assert any(op.startswith("identity") for op in ops) and any(op.startswith("rotate") for op in ops)
    grid = np.asarray(Image.open(path))
    scale, first = upscale_factor(8, 8), ops.index(next(op for op in ops if op.startswith("rotate")))
    top_left_clean = grid[HEADER + PAD : HEADER + PAD + 8 * scale : scale, PAD : PAD + 8 * scale : scale, 0]
    assert np.array_equal(top_left_clean, images[first, 0].numpy())  # the first rotated image on top


def test_rgb_odd_sizes_and_an_empty_level_list(tmp_path):
    images = torch.randint(0, 256, (2, 3, 9, 31), dtype=torch.uint8)
    path = render_grid(images, lambda level: RandAugment(1, level), tmp_path / "rgb.png", levels=(5,))
    with Image.open(path) as png:
        assert png.size == grid_size(2, 2, 9, 31, upscale_factor(9, 31))
    with pytest.raises(ValueError, match="levels"):
        render_grid(images, lambda level: RandAugment(1, level), tmp_path / "none.png", levels=())
