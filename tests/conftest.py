"""Fixtures shared by all tests: tiny fake data sets written in the official on-disk formats, and the
real Fashion-MNIST test images (found where the library looks: ``$KDFORAA_DATA``, then Debian's folder)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# before torch: OpenMP takes kdforaa's short spin only if it is set when torch loads (kdforaa.openmp)
import kdforaa  # noqa: F401

# isort: split
import pytest
import torch

from fakedata import FakeData, write_cifar, write_image_folder, write_mnist_like

# Without CUDA the Triton backend's tests (tests/augment/test_triton.py) run its kernels in Triton's
# interpreter, on CPU tensors. Triton reads TRITON_INTERPRET when a kernel is defined, i.e. when
# kdforaa.augment.triton_kernels is first imported, so it is set here, before any test module is
# collected. No other test changes path: backend="auto" never picks Triton for a CPU batch.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def make_mnist_like(tmp_path: Path) -> Callable[..., FakeData]:
    """Factory: ``make_mnist_like(n_train=64, n_test=16, gz=True, name="fashion-mnist")``."""

    def make(name: str = "fashion-mnist", **kwargs) -> FakeData:
        return write_mnist_like(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def tiny_fashion_mnist(make_mnist_like) -> FakeData:
    """A root holding a 64/16-image Fashion-MNIST-format data set (gzipped IDX)."""
    return make_mnist_like()


@pytest.fixture
def make_cifar(tmp_path: Path) -> Callable[..., FakeData]:
    """Factory: ``make_cifar(variant="cifar10", n_train=20, n_test=10, python2=True)``; the result's
    root is the parent of the extracted folder."""

    def make(variant: str = "cifar10", **kwargs) -> FakeData:
        return write_cifar(tmp_path / variant, variant, **kwargs)

    return make


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., FakeData]:
    """Factory: ``make_image_folder(classes=("cat", "dog"), per_class=(3, 2), size=(20, 12))``."""

    def make(**kwargs) -> FakeData:
        return write_image_folder(tmp_path / "folder", **kwargs)

    return make


@pytest.fixture(scope="session")
def fashion_test_images() -> torch.Tensor:
    """The first 300 real Fashion-MNIST test images, ``(300,1,28,28)`` uint8 (`make data` fetches them)."""
    from kdforaa.config import DataConfig
    from kdforaa.data.datasets import load_dataset

    return load_dataset(DataConfig(name="fashion-mnist", test_limit=300), "test").data
