import numpy as np
import pytest
import torch
from PIL import Image

from kdforaa.analysis.augment_grid import HEADER, PAD, grid_size, render_grid, upscale_factor
from kdforaa.augment.policies import RandAugment, SingleOp


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
        assert png.size == grid_size(3, len(levels), 28, 28, 4)
        assert png.mode == "RGB"


def test_cells_show_the_augmented_images_upscaled(fashion, tmp_path):
    path = render_grid(
        fashion, lambda level: SingleOp("rotate", level), tmp_path / "g.png", levels=(0, 20), scale=2
    )
    grid = np.asarray(Image.open(path))
    cell = grid[HEADER + PAD : HEADER + PAD + 56, PAD : PAD + 56, 0]
    expected = fashion[0, 0].numpy().repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(cell, expected)  # level 0 rotation is the identity
    rotated = grid[HEADER + PAD : HEADER + PAD + 56, 2 * PAD + 56 : 2 * PAD + 112, 0]
    assert not np.array_equal(rotated, expected)


def test_rgb_odd_sizes_and_an_empty_level_list(tmp_path):
    images = torch.randint(0, 256, (2, 3, 9, 31), dtype=torch.uint8)
    path = render_grid(images, lambda level: RandAugment(1, level), tmp_path / "rgb.png", levels=(5,))
    with Image.open(path) as png:
        assert png.size == grid_size(2, 1, 9, 31, upscale_factor(9, 31))
    with pytest.raises(ValueError, match="levels"):
        render_grid(images, lambda level: RandAugment(1, level), tmp_path / "none.png", levels=())
