"""A model that sees low-resolution copies of its input (UVA-Net's coupled distillation, for images).

The teacher looks at the full-resolution augmented batch, the student at a downsampled copy of the
same batch. The downsampling is attached to the student model itself (a forward pre-hook), so that
every caller — the training step, the per-epoch test evaluation, ``kdforaa eval`` of its checkpoint,
its use as a teacher — feeds it the same view without repeating the resize. The weights and their
state_dict are those of the plain model; the run's config records the resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.errors import BadInput


def check_resolution(size: int, image_size: tuple[int, int]) -> None:
    """``size`` (the student's side, distill.student_resolution) must not exceed the images' sides."""
    if not 0 < size <= min(image_size):
        raise BadInput(
            f"distill.student_resolution={size} must be between 1 and {min(image_size)}, the side of the "
            f"data's {image_size[0]}x{image_size[1]} images: change it or unset it"
        )


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B,C,H,W) float -> (B,C,size,size): bilinear with antialiasing (a no-op at the same size).

    Bilinear weights sum to one, so resizing normalised images equals normalising resized ones.
    """
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_inputs(model: nn.Module, size: int) -> nn.Module:
    """Make ``model`` downsample its input batch (first positional argument) to ``size``×``size``."""

    def hook(module: nn.Module, args: tuple) -> tuple:
        return (downsample(args[0], size), *args[1:])

    model.register_forward_pre_hook(hook)
    return model


def couple_resolution(model: nn.Module, size: int | None, image_size: tuple[int, int]) -> nn.Module:
    """The student of a run with ``distill.student_resolution = size`` (unchanged when None)."""
    if size is None:
        return model
    check_resolution(size, image_size)
    return resize_inputs(model, size)
