"""The workload of the augmentation benchmarks: RandAugment(2, 9) on Fashion-MNIST images made RGB.

Real images rather than noise: the colour ops (autocontrast, equalize, posterize) take data-dependent
paths, and the benchmarks' figures should be those of pictures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdforaa.config import DataConfig
from kdforaa.data.datasets import load_dataset

# RandAugment(NUM_OPS, MAGNITUDE): the paper's setting, the one every benchmark compares at
NUM_OPS, MAGNITUDE = 2, 9.0


def real_batch(side: int, batch: int, device: torch.device) -> torch.Tensor:
    """``(batch, 3, side, side)`` uint8 on ``device``: the first ``batch`` Fashion-MNIST test images,
    resized (bilinear), with a different gain per channel so that the colour ops see three channels."""
    test = load_dataset(DataConfig(name="fashion-mnist", test_limit=batch), "test")
    grey = test.images(torch.arange(len(test))).float()
    grey = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False)
    rgb = grey * torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    return rgb.round().clamp(0, 255).to(torch.uint8).to(device)
