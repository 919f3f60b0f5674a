"""Shared fixtures for the augmentation tests: image batches and a Pillow reference runner.

Image batches are uint8 ``(B,C,H,W)`` tensors, each built once per session:

- ``fashion_grey``: 8 real Fashion-MNIST test images, ``(8,1,28,28)``;
- ``fashion_rgb``: 8 "composed RGB" images, ``(8,3,28,28)``, whose R, G and B channels are three
  different Fashion-MNIST images (so channels differ in content and histogram);
- ``noise_rgb_17x23`` and ``noise_rgb_31x32``: uniform random RGB images of odd sizes, ``(6,3,H,W)``;
- ``fashion_pairs``: 8 real Fashion-MNIST pairs (two test items side by side), ``(8,1,28,56)``;
- ``image_batch``: parametrised over all five, for tests that should hold on every kind.

``pillow`` runs a per-image Pillow function over a batch (mode "L" for one channel, "RGB" for three)
and turns the result back into a batch: the reference every op is compared against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session")
def fashion_images(fashion_test_images: torch.Tensor) -> torch.Tensor:
    """The first 24 Fashion-MNIST test images, ``(24,28,28)`` uint8."""
    return fashion_test_images[:24, 0]


@pytest.fixture(scope="session")
def fashion_grey(fashion_images: torch.Tensor) -> torch.Tensor:
    """``(8,1,28,28)`` uint8: real grey Fashion-MNIST images."""
    return fashion_images[:8, None].clone()


@pytest.fixture(scope="session")
def fashion_rgb(fashion_images: torch.Tensor) -> torch.Tensor:
    """``(8,3,28,28)`` uint8: image ``i`` has images ``i``, ``i+8``, ``i+16`` as its R, G, B channels."""
    return torch.stack([fashion_images[0:8], fashion_images[8:16], fashion_images[16:24]], dim=1)


def _noise(height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (6, 3, height, width), generator=generator, dtype=torch.uint8)


@pytest.fixture(scope="session")
def noise_rgb_17x23() -> torch.Tensor:
    """``(6,3,17,23)`` uint8 uniform noise: odd, non-square size."""
    return _noise(17, 23, seed=17)


@pytest.fixture(scope="session")
def noise_rgb_31x32() -> torch.Tensor:
    """``(6,3,31,32)`` uint8 uniform noise: odd height, even width."""
    return _noise(31, 32, seed=31)


@pytest.fixture(scope="session")
def fashion_pairs() -> torch.Tensor:
    """``(8,1,28,56)`` uint8: the first 8 test images of the 100-class fashion-mnist-pairs data set."""
    from kdforaa.config import DataConfig
    from kdforaa.data.datasets import load_dataset

    return load_dataset(DataConfig(name="fashion-mnist-pairs", test_limit=8), "test").data


@pytest.fixture(params=["fashion_grey", "fashion_rgb", "noise_rgb_17x23", "noise_rgb_31x32", "fashion_pairs"])
def image_batch(request: pytest.FixtureRequest) -> torch.Tensor:
    """Each of the five session batches in turn."""
    return request.getfixturevalue(request.param)


class PillowReference:
    """Converts between ``(C,H,W)`` uint8 tensors and Pillow images, and maps functions over batches."""

    @staticmethod
    def to_image(image: torch.Tensor) -> Image.Image:
        """``(1,H,W)`` -> mode "L", ``(3,H,W)`` -> mode "RGB"."""
        array = image.cpu().numpy()
        if array.shape[0] == 1:
            return Image.fromarray(array[0], "L")
        return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), "RGB")

    @staticmethod
    def to_tensor(image: Image.Image) -> torch.Tensor:
        """Mode "L" -> ``(1,H,W)``, mode "RGB" -> ``(3,H,W)`` uint8."""
        array = np.asarray(image)
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        return torch.from_numpy(array.copy())

    @staticmethod
    def fill(value: int, channels: int) -> int | tuple[int, ...]:
        """Pillow's ``fillcolor`` for a grey level: an int for "L", an (r, g, b) tuple for "RGB"."""
        return value if channels == 1 else (value,) * 3

    def apply(
        self,
        x: torch.Tensor,
        fn: Callable[..., Image.Image],
        *per_sample: Sequence[float] | torch.Tensor,
    ) -> torch.Tensor:
        """``fn(image_i, arg_i, ...)`` for every image of ``x``, restacked as ``(B,C,H,W)`` uint8.

        Each extra argument is a sequence with one value per image (``float(value)`` is passed).
        """
        outputs = []
        for i in range(x.shape[0]):
            args = [float(values[i]) for values in per_sample]
            outputs.append(self.to_tensor(fn(self.to_image(x[i]), *args)))
        return torch.stack(outputs)


@pytest.fixture(scope="session")
def pillow() -> PillowReference:
    """The Pillow reference runner (see :class:`PillowReference`)."""
    return PillowReference()


@pytest.fixture(scope="session")
def prebuilt_library(tmp_path_factory: pytest.TempPathFactory):
    """The wheel's prebuilt kernel library, built here by the same commands as ``setup.py`` (needs ``cc``)."""
    import shutil

    from kdforaa.augment import native_build

    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc): the prebuilt library cannot be built here")
    path = tmp_path_factory.mktemp("prebuilt") / native_build.PREBUILT_NAME
    native_build.build_prebuilt("cc", path)
    return path
