"""What ``kdforaa config --show`` checks beyond the schema: what ``kdforaa train`` checks before its first
step, so that a config the one accepts the other accepts too.

The schema (:mod:`kdforaa.config`) checks keys, types and ranges; the rest needs the run's parts: the
device, the data sets (their class count, channels and image size), the model (its name, its stages
for ``distill.hints`` and ``distill.kr_stages``, a student resolution that fits the images), the
augmentation policy (``augment.ops``), the teacher file or soft-label cache, the distillation terms and
TensorBoard. :func:`check_run` builds each of them as training does (:func:`~kdforaa.train.parts.
build_parts`), on the CPU and with the student's weights on the meta device, and throws them away.
"""

from __future__ import annotations

import importlib.util

import torch

from kdforaa.config import RunConfig
from kdforaa.data.datasets import load_dataset
from kdforaa.distill.cache import SoftLabelCache
from kdforaa.distill.criterion import build_criterion
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.distill.views import TrainingViews
from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import check_resolution
from kdforaa.train.device import resolve_device


def check_run(cfg: RunConfig) -> None:
    """BadInput (one line) for anything ``kdforaa train`` would refuse in ``cfg`` before training."""
    resolve_device(cfg.train.device)
    train_set = load_dataset(cfg.data, "train")
    load_dataset(cfg.data, "test")
    with torch.device("meta"):
        model = build_model(cfg.model.name, train_set.num_classes, train_set.in_channels)
    if cfg.distill.student_resolution is not None:
        check_resolution(cfg.distill.student_resolution, train_set.image_size)
    TrainingViews(cfg, train_set.image_size, train_set.mean, train_set.std, device=torch.device("cpu"))
    teacher: Teacher | SoftLabelCache | None = None
    if cfg.teacher.cache:
        teacher = SoftLabelCache.open(cfg.teacher.cache, cfg, str(cfg.teacher.checkpoint))  # set: validated
    elif cfg.teacher.checkpoint:
        teacher = load_teacher(
            cfg.teacher, train_set.num_classes, train_set.in_channels, "cpu", train_set.image_size
        )
    build_criterion(
        cfg.distill,
        train_set.num_classes,
        label_smoothing=cfg.train.label_smoothing,
        student_channels=getattr(model, "stage_channels", None),
        teacher_channels=teacher.stage_channels if isinstance(teacher, Teacher) else None,
    )
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise BadInput("train.tensorboard needs tensorboard: pip install 'kdforaa[tensorboard]'")
