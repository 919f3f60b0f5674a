"""One distillation step for your own training loop: the student, its teacher and the objective together.

A :class:`Distiller` turns a batch of clean images, their labels and per-sample keys (or sample indices
and the epoch) into the student's logits, the loss to back-propagate and each loss term's value. It is
what ``kdforaa train`` runs at every step (:mod:`kdforaa.train.loop`), on the same parts
(:class:`~kdforaa.distill.views.TrainingViews`, the teacher or soft-label cache, the
:class:`~kdforaa.distill.criterion.Criterion` of ``distill:``), so a loop of your own that feeds it the
same batches with the same optimizer ends with the same weights, bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from kdforaa.augment.params import AugParams
from kdforaa.augment.pixels import to_uint8
from kdforaa.augment.random import make_keys
from kdforaa.config import RunConfig
from kdforaa.distill.cache import SoftLabelCache
from kdforaa.distill.criterion import Criterion, build_criterion
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.distill.views import TrainingViews
from kdforaa.errors import BadInput
from kdforaa.models.registry import to_channels_last


class ImageFacts(Protocol):
    """What the distiller needs to know of the data: a kdforaa data set has these attributes; for your
    own data, pass a :class:`DataFacts`."""

    @property
    def num_classes(self) -> int: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def image_size(self) -> tuple[int, int]: ...
    @property
    def mean(self) -> Sequence[float]: ...
    @property
    def std(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class DataFacts:
    """The facts of a data set that is not one of kdforaa's: class count, channels (1 or 3), image
    ``(height, width)`` and the per-channel ``mean`` and ``std`` of pixel values in ``[0, 1]``."""

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: Sequence[float]
    std: Sequence[float]


@dataclass(frozen=True)
class DistillStep:
    """What one call of a :class:`Distiller` gives.

    ``loss``: the scalar to back-propagate (``ce_weight · CE + Σ weight · term``); ``logits``: the
    student's ``(B, classes)`` logits; ``terms``: each term's detached, unweighted batch mean by name
    (``"ce"``, ``"distill"``, ``"sp"``, ``"hint_<stage>"``, ...); ``teacher_logits``: ``(B, classes)``
    float32 or None without a teacher; ``params``: how each sample was augmented
    (``params.strongest_level`` is the ``(B,)`` level each sample was augmented at, which a
    ``k_schedule`` reads).
    """

    loss: torch.Tensor
    logits: torch.Tensor
    terms: dict[str, torch.Tensor]
    teacher_logits: torch.Tensor | None
    params: AugParams


def build_teacher(
    cfg: RunConfig,
    num_classes: int,
    in_channels: int,
    device: torch.device,
    image_size: tuple[int, int] | None = None,
) -> Teacher | SoftLabelCache | None:
    """The teacher of ``cfg``: its soft-label cache when ``teacher.cache`` is set, else the live teacher
    from ``teacher.checkpoint`` (any weights format :func:`load_teacher` reads), else None.
    ``image_size``: the data's ``(H, W)``, which a resolution-coupled teacher must fit. None too when no
    term distils: a CE baseline whose config names a teacher never loads or runs it."""
    if not cfg.distill.needs_teacher or not cfg.teacher.checkpoint:
        return None  # (the config refuses a teacher.cache without a checkpoint)
    if cfg.teacher.cache:
        return SoftLabelCache.open(cfg.teacher.cache, cfg, cfg.teacher.checkpoint)
    return load_teacher(
        cfg.teacher, num_classes, in_channels, device, image_size, channels_last=cfg.train.channels_last
    )


class Distiller(nn.Module):
    """``student`` distilled from ``teacher`` with ``criterion``, on the images ``views`` make.

    An ``nn.Module`` whose parameters are the student's, then the criterion's learnable parts (hint
    adapters, Knowledge Representing): optimise ``distiller.parameters()``. The teacher is frozen and
    not a submodule (neither ``.parameters()`` nor ``state_dict()`` reach it). ``amp`` runs teacher and
    student in bfloat16 autocast on CUDA (the config's ``train.amp``; nothing changes on the CPU).
    Most loops build one with :meth:`from_config`.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | SoftLabelCache | None,
        criterion: Criterion,
        views: TrainingViews,
        *,
        amp: bool = False,
    ) -> None:
        super().__init__()
        self.student = student
        self.criterion = criterion
        self.teacher = teacher
        self.views = views
        self.amp = amp

    @classmethod
    def from_config(
        cls,
        cfg: RunConfig,
        student: nn.Module,
        data: ImageFacts,
        *,
        teacher: Teacher | SoftLabelCache | nn.Module | None = None,
        device: str | torch.device | None = None,
        wrapper: nn.Module | None = None,
    ) -> Distiller:
        """The distiller of a run of ``cfg`` (its ``augment``, ``teacher``, ``distill`` and ``train.amp``,
        ``train.channels_last``, ``train.label_smoothing`` and ``seed``) for ``student`` on ``data``.

        ``teacher``: None builds the config's (``teacher.checkpoint`` in any format kdforaa reads, or
        ``teacher.cache``); a model of yours is frozen and its BatchNorms folded (in place). ``device``:
        where the batches will be (default: the student's). ``wrapper``: what to call instead of the
        student, e.g. ``DistributedDataParallel(student)``.
        """
        device = torch.device(device) if device is not None else next(student.parameters()).device
        views = TrainingViews(cfg, data.image_size, data.mean, data.std, device=device)
        if teacher is None:
            teacher = build_teacher(cfg, data.num_classes, data.in_channels, device, data.image_size)
        elif isinstance(teacher, nn.Module):
            teacher = Teacher(teacher.to(device), type(teacher).__name__, data.num_classes, data.in_channels)
            if cfg.train.channels_last:
                to_channels_last(teacher.model)
        criterion = build_criterion(
            cfg.distill,
            data.num_classes,
            label_smoothing=cfg.train.label_smoothing,
            student_channels=getattr(student, "stage_channels", None),
            teacher_channels=teacher.stage_channels if isinstance(teacher, Teacher) else None,
        ).to(device)
        return cls(wrapper or student, teacher, criterion, views, amp=cfg.train.amp)

    @contextlib.contextmanager
    def _autocast(self, device: torch.device) -> Iterator[None]:
        if self.amp and device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield

    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        indices: torch.Tensor | None = None,
        epoch: int = 0,
        keys: torch.Tensor | None = None,
    ) -> DistillStep:
        """One step's outputs for the clean ``images`` ``(B,C,H,W)`` (uint8, or float in ``[0, 1]``) and
        ``labels`` ``(B,)`` int64, both on the training device.

        Each sample is augmented by its key: ``keys`` ``(B,)`` int64, or, without them,
        ``make_keys(seed, epoch, indices)`` from the samples' ``indices`` ``(B,)`` in the data set (what
        ``kdforaa train`` uses; a soft-label cache needs them, since it looks samples up by index).
        """
        if images.is_floating_point():
            images = to_uint8(images)
        cached = isinstance(self.teacher, SoftLabelCache)
        if keys is None:
            if indices is None:
                raise BadInput("pass the samples' indices (with the epoch) or their keys")
            keys = make_keys(self.views.seed, epoch, indices)
        elif cached:
            raise BadInput(
                "a soft-label cache holds the teacher's logits on the images of make_keys(seed, epoch, "
                "indices): pass indices and epoch instead of keys"
            )
        views = self.views.with_keys(images, keys, epoch)
        features = self.criterion.needs_features
        teacher_logits = teacher_feats = None
        with self._autocast(images.device):
            if self.teacher is not None:
                teacher_logits, teacher_feats = self.teacher.logits(
                    views.teacher, epoch=epoch, indices=indices, features=features
                )
            if features:
                logits, feats = self.student(views.student, return_features=True)
            else:
                logits, feats = self.student(views.student), None
        loss, terms = self.criterion(
            logits.float(),
            labels,
            teacher_logits=teacher_logits,
            level=views.params.strongest_level.to(logits.device, non_blocking=True),
            student_feats=feats,
            teacher_feats=teacher_feats,
        )
        return DistillStep(loss, logits, terms, teacher_logits, views.params)
