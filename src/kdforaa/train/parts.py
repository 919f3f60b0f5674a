"""The parts of a training run, built from its config: data, student, views, teacher, criterion, optimizer.

:func:`build_parts` is the factory the training loop starts from. The order of construction is fixed
(every part that draws from torch's generator draws after ``torch.manual_seed(cfg.seed)`` in the same
order), so a run's initial weights depend only on its config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdforaa.config import RunConfig
from kdforaa.data.datasets import Dataset, load_dataset
from kdforaa.distill.cache import SoftLabelCache
from kdforaa.distill.criterion import Criterion, build_criterion
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.distill.views import TrainingViews
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import couple_resolution
from kdforaa.train import distributed as dist


@dataclass
class RunParts:
    """Everything a run trains with. ``model`` is the student itself (its state_dict is checkpointed);
    ``net`` is what the steps call (DDP around ``model`` under torchrun, else ``model``); ``teacher`` is
    a live teacher, a soft-label cache (both answer ``logits(...)``) or None."""

    train_set: Dataset
    test_set: Dataset
    model: nn.Module
    net: nn.Module
    views: TrainingViews
    teacher: Teacher | SoftLabelCache | None
    criterion: Criterion
    optimizer: torch.optim.Optimizer


def _student(cfg: RunConfig, train_set: Dataset, device: torch.device, world: dist.World):
    """The student on ``device`` and the module the steps call (DDP around it when distributed)."""
    model = build_model(cfg.model.name, train_set.num_classes, train_set.in_channels).to(device)
    couple_resolution(model, cfg.distill.student_resolution, train_set.image_size)  # not the teacher
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not world.distributed:
        return model, model
    dist.init_process_group(world, device)
    if cfg.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _teacher(cfg: RunConfig, train_set: Dataset, device: torch.device) -> Teacher | SoftLabelCache | None:
    """The soft-label cache when ``teacher.cache`` is set, else the live teacher; None without one, and
    None when no term distils (a CE baseline whose config names a teacher never loads or runs it)."""
    if not cfg.distill.needs_teacher:
        return None
    if cfg.teacher.cache:
        return SoftLabelCache.open(cfg.teacher.cache, cfg, cfg.teacher.checkpoint)
    if not cfg.teacher.checkpoint:
        return None
    teacher = load_teacher(cfg.teacher, train_set.num_classes, train_set.in_channels, device)
    if cfg.train.channels_last:
        teacher.model.to(memory_format=torch.channels_last)
    return teacher


def build_parts(cfg: RunConfig, device: torch.device, world: dist.World) -> RunParts:
    """The parts of a run of ``cfg`` on ``device``; seeds torch's generator with ``cfg.seed`` first."""
    torch.manual_seed(cfg.seed)
    train_set, test_set = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "test")
    model, net = _student(cfg, train_set, device, world)
    views = TrainingViews(cfg, train_set.image_size, train_set.mean, train_set.std, device=device)
    teacher = _teacher(cfg, train_set, device)
    criterion = build_criterion(
        cfg.distill,
        train_set.num_classes,
        label_smoothing=cfg.train.label_smoothing,
        student_channels=getattr(model, "stage_channels", None),
        teacher_channels=teacher.stage_channels if isinstance(teacher, Teacher) else None,
    ).to(device)
    t = cfg.train
    optimizer = torch.optim.SGD(
        list(model.parameters()) + list(criterion.parameters()),
        lr=t.lr,
        momentum=t.momentum,
        nesterov=t.nesterov and t.momentum > 0,
        weight_decay=t.weight_decay,
        foreach=True,  # torch picks this on CUDA only; on the CPU too it is faster, with the same bits
    )
    return RunParts(train_set, test_set, model, net, views, teacher, criterion, optimizer)
