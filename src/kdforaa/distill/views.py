"""What a training step's student and teacher see: one path for the training loop and the soft-label cache.

A sample's training image is fixed by ``(seed, epoch, sample index)``: its counter-based key chooses its
augmentation (the config's pipeline, or, in the last ``augment.off_last_epochs`` epochs, the same
pipeline without the policy), run on the backend ``augment.backend`` names; the batch is normalised with
the data set's statistics and put in the run's memory format. The teacher sees that same batch
(``teacher.input: augmented``, the paper's setting, no copy) or the clean images prepared the same way
(``clean``). The training loop and ``kdforaa cache-teacher`` both call :class:`TrainingViews`, so a
cached teacher's logits are those of the live teacher on exactly the images training shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kdforaa.augment.apply import choose_backend
from kdforaa.augment.params import AugParams
from kdforaa.augment.pipeline import AugmentPipeline, build_augment
from kdforaa.augment.random import make_keys
from kdforaa.config import RunConfig
from kdforaa.data.loader import normalize


@dataclass(frozen=True)
class StepViews:
    """One batch as the models see it: ``student`` and ``teacher`` are ``(B,C,H,W)`` float32 (the same
    tensor when the teacher sees the augmented batch); ``params`` says how it was augmented."""

    params: AugParams
    student: torch.Tensor
    teacher: torch.Tensor


def model_input(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool
) -> torch.Tensor:
    """``(B,C,H,W)`` uint8 -> the normalised float32 batch a model takes, channels-last when asked."""
    x = normalize(images, mean, std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class TrainingViews:
    """The views of a run of ``cfg`` on a data set with per-channel ``mean`` and ``std`` and
    ``image_size`` (H, W). Given the training ``device``, an ``augment.backend`` that cannot run there is
    BadInput now, before anything trains."""

    def __init__(
        self,
        cfg: RunConfig,
        image_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        device: torch.device | None = None,
    ) -> None:
        self.backend = cfg.augment.backend
        if device is not None:
            choose_backend(self.backend, torch.device(device), cfg.augment.interpolation)
        self.seed, self.epochs = cfg.seed, cfg.train.epochs
        self.mean, self.std = tuple(mean), tuple(std)
        self.channels_last = cfg.train.channels_last
        self.teacher_sees = cfg.teacher.input
        self.augment = build_augment(cfg.augment, *image_size)
        # the "switch strong augmentation off at the end" baseline of the paper
        self.off_last_epochs = cfg.augment.off_last_epochs
        mild = cfg.augment.model_copy(update={"policy": "none"})
        self.mild_augment = build_augment(mild, *image_size) if self.off_last_epochs else None

    def pipeline(self, epoch: int) -> AugmentPipeline:
        """The augmentation of ``epoch``: the policy is off in the last ``augment.off_last_epochs``."""
        if self.mild_augment is not None and epoch >= self.epochs - self.off_last_epochs:
            return self.mild_augment
        return self.augment

    def input(self, images: torch.Tensor) -> torch.Tensor:
        """:func:`model_input` with this run's statistics and memory format."""
        return model_input(images, self.mean, self.std, self.channels_last)

    def __call__(self, images: torch.Tensor, indices: torch.Tensor, epoch: int) -> StepViews:
        """The views of ``images`` ``(B,C,H,W)`` uint8 (on the training device), the samples ``indices``
        ``(B,)`` of ``epoch``."""
        return self.with_keys(images, make_keys(self.seed, epoch, indices), epoch)

    def with_keys(self, images: torch.Tensor, keys: torch.Tensor, epoch: int) -> StepViews:
        """The views of ``images`` augmented with the per-sample ``keys`` ``(B,)`` int64 (the run's own
        are ``make_keys(seed, epoch, indices)``); ``epoch`` picks the pipeline."""
        augment = self.pipeline(epoch)
        params = augment.sample(keys)
        student = self.input(augment.apply(images, params, backend=self.backend))
        teacher = student if self.teacher_sees == "augmented" else self.input(images)
        return StepViews(params, student, teacher)
