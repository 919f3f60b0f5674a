"""TrainingViews: the configured augmentation backend reaches apply, and one that cannot run on the
training device is refused when the views are built, before anything trains."""

from __future__ import annotations

import pytest
import torch

from kdforaa.config import load_config
from kdforaa.distill.views import TrainingViews
from kdforaa.errors import BadInput

STATS = ((0.5,), (0.25,))


def views(*overrides: str, device: str | None = None) -> TrainingViews:
    cfg = load_config(
        None, ["augment.policy=randaugment", "augment.magnitude=12", "augment.cutout=6", *overrides]
    )
    return TrainingViews(cfg, (28, 28), *STATS, device=None if device is None else torch.device(device))


def test_every_backend_gives_the_same_views(fashion_test_images):
    images, indices = fashion_test_images[:6], torch.arange(6)
    reference = views("augment.backend=torch")(images, indices, epoch=1)
    gpu = "cuda" if torch.cuda.is_available() else "cpu"  # without CUDA: interpreted (tests/conftest.py)
    for backend, device in (("auto", "cpu"), ("native", "cpu"), ("triton", gpu)):
        step = views(f"augment.backend={backend}", device=device)(images.to(device), indices, epoch=1)
        assert torch.equal(step.student.cpu(), reference.student), backend
        assert step.teacher is step.student  # the teacher sees the augmented batch itself, no copy


@pytest.mark.parametrize(
    ("backend", "device", "message"),
    [("native", "cuda", "the native kernels run on the CPU"), ("triton", "meta", "run CUDA batches")],
)
def test_a_backend_that_cannot_run_on_the_training_device_is_refused_when_built(backend, device, message):
    with pytest.raises(BadInput, match=message):
        views(f"augment.backend={backend}", device=device)
