"""The parts of a training run, built from its config: data, student, distiller (views, teacher, criterion),
optimizer.

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
from kdforaa.distill.criterion import Criterion
from kdforaa.distill.distiller import Distiller
from kdforaa.distill.teacher import Teacher
from kdforaa.distill.views import TrainingViews
from kdforaa.models.registry import build_model, to_channels_last
from kdforaa.models.resolution import couple_resolution
from kdforaa.train import distributed as dist


@dataclass
class RunParts:
    """Everything a run trains with. ``model`` is the student itself (its state_dict is checkpointed);
    ``net`` is what the steps call (DDP around ``model`` under torchrun, else ``model``); ``distiller``
    runs a step: the views, the teacher (live, a soft-label cache, or None) and the criterion."""

    train_set: Dataset
    test_set: Dataset
    model: nn.Module
    net: nn.Module
    distiller: Distiller
    optimizer: torch.optim.Optimizer

    @property
    def views(self) -> TrainingViews:
        return self.distiller.views

    @property
    def teacher(self) -> Teacher | SoftLabelCache | None:
        return self.distiller.teacher

    @property
    def criterion(self) -> Criterion:
        return self.distiller.criterion


def _student(
    cfg: RunConfig, train_set: Dataset, device: torch.device, world: dist.World
) -> tuple[nn.Module, nn.Module]:
    """The student on ``device`` and the module the steps call (DDP around it when distributed)."""
    model = build_model(cfg.model.name, train_set.num_classes, train_set.in_channels).to(device)
    couple_resolution(model, cfg.distill.student_resolution, train_set.image_size)  # not the teacher
    if cfg.train.channels_last:
        to_channels_last(model)
    if not world.distributed:
        return model, model
    dist.init_process_group(world, device)
    if cfg.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def build_parts(cfg: RunConfig, device: torch.device, world: dist.World) -> RunParts:
    """The parts of a run of ``cfg`` on ``device``; seeds torch's generator with ``cfg.seed`` first."""
    torch.manual_seed(cfg.seed)
    train_set, test_set = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "test")
    model, net = _student(cfg, train_set, device, world)
    distiller = Distiller.from_config(cfg, model, train_set, device=device, wrapper=net)
    t = cfg.train
    optimizer = torch.optim.SGD(
        list(model.parameters()) + list(distiller.criterion.parameters()),
        lr=t.lr,
        momentum=t.momentum,
        nesterov=t.nesterov and t.momentum > 0,
        weight_decay=t.weight_decay,
        foreach=True,  # torch picks this on CUDA only; on the CPU too it is faster, with the same bits
    )
    return RunParts(train_set, test_set, model, net, distiller, optimizer)
