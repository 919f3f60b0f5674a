"""The frozen teacher: loaded once, never trained, called without building an autograd graph.

A live :class:`Teacher` and a :class:`~kdforaa.distill.cache.SoftLabelCache` answer the same call,
``logits(x, epoch=, indices=, features=)``, so the training loop runs one path for both: the live
teacher looks at ``x`` (the batch :class:`~kdforaa.distill.views.TrainingViews` built for it), the cache
looks the sample up by ``(epoch, index)``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdforaa.config import TeacherConfig, teacher_config
from kdforaa.errors import BadInput
from kdforaa.models.folding import fold_batch_norms
from kdforaa.models.from_checkpoint import load_trained, model_counts
from kdforaa.models.registry import pretrained_timm_model, to_channels_last
from kdforaa.models.resolution import check_resolution
from kdforaa.text import count


class Teacher:
    """A model in eval mode with ``requires_grad=False`` everywhere, run under ``torch.inference_mode``,
    its BatchNorms folded into the convolutions before them (:mod:`kdforaa.models.folding`: the same
    function, up to float rounding, for less work on every training step).

    Deliberately not an ``nn.Module``: a student's ``.train()``, ``.parameters()`` or ``state_dict()``
    can never reach it. Outputs are cloned out of inference mode, so losses may save them for backward.
    """

    def __init__(self, model: nn.Module, name: str, num_classes: int, in_channels: int) -> None:
        self.model = model.eval().requires_grad_(False)
        fold_batch_norms(self.model)
        self.name = name
        self.num_classes = num_classes
        self.in_channels = in_channels
        #: stage name -> channels of ``forward_features``' maps (None if the model does not say)
        self.stage_channels: dict[str, int] | None = getattr(model, "stage_channels", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,C,H,W)`` normalised float images -> ``(B, num_classes)`` logits."""
        with torch.inference_mode():
            logits = self.model(x)
        return logits.clone()

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and the stage features (stage name -> tensor, in network order)."""
        with torch.inference_mode():
            logits, feats = self.model(x, return_features=True)
        return logits.clone(), {stage: value.clone() for stage, value in feats.items()}

    def logits(
        self, x: torch.Tensor, *, epoch: int, indices: torch.Tensor | None, features: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """``(B, num_classes)`` float32 logits for the teacher's view ``x`` of the samples ``indices``
        in ``epoch`` (which a live teacher does not need), and the stage features when asked."""
        if features:
            logits, feats = self.forward_features(x)
            return logits.float(), feats
        return self(x).float(), None


def _check_fit(what: str, num_classes: int, in_channels: int, data_classes: int, data_channels: int) -> None:
    """A teacher must predict the data set's classes from its kind of images (one line otherwise)."""
    if num_classes != data_classes:
        raise BadInput(
            f"teacher {what} predicts {count(num_classes, 'class', 'classes')} but the data set has "
            f"{data_classes}: "
            "use a teacher trained on the same data set"
        )
    if in_channels != data_channels:
        raise BadInput(
            f"teacher {what} takes {in_channels}-channel images but the data set has {data_channels}: "
            "use a teacher trained on the same data set"
        )


def load_teacher(
    spec: str | TeacherConfig,
    num_classes: int,
    in_channels: int,
    device: str | torch.device,
    image_size: tuple[int, int] | None = None,
    *,
    channels_last: bool = False,
) -> Teacher:
    """Load a frozen teacher for a data set with ``num_classes`` classes and ``in_channels`` channels.

    ``spec`` is a config's ``teacher:`` section, or just its ``checkpoint`` (a path). The checkpoint is
    a weights file (a kdforaa run's ``best.pt``, a RepDistiller/mdistiller checkpoint or state dict with
    ``teacher.model`` naming its architecture, a ``.safetensors`` file; see ``teacher.format``), read
    without unpickling code and loaded strictly; or ``timm:<name>`` with ``teacher.pretrained`` (timm's
    weights, or ``teacher.weights``: a local file of them, loaded like a checkpoint). Mismatched class
    or channel counts are BadInput, and so is a resolution-coupled teacher whose side exceeds the data's
    ``image_size`` ``(H, W)``; so is a ``timm:`` teacher without pretrained weights.
    """
    teacher = spec if isinstance(spec, TeacherConfig) else teacher_config(spec)
    if teacher.checkpoint is None:
        raise BadInput("no teacher: set teacher.checkpoint=PATH (or timm:<name>)")
    if teacher.is_timm and teacher.weights is None:
        model: nn.Module = pretrained_timm_model(teacher.checkpoint)
        name = teacher.checkpoint
        what = f"{name} (timm's pretrained weights)"
        _check_fit(what, *model_counts(model), num_classes, in_channels)
    else:
        # the weights file: teacher.weights (which only timm teachers may set), else the checkpoint
        path = teacher.checkpoint if teacher.weights is None else teacher.weights
        architecture = teacher.checkpoint if teacher.is_timm else teacher.model
        trained = load_trained(path, architecture=architecture, format=teacher.format)
        _check_fit(path, trained.num_classes, trained.in_channels, num_classes, in_channels)
        if trained.student_resolution and image_size is not None:  # it downsamples the data's images
            check_resolution(trained.student_resolution, image_size)
        model, name = trained.model, trained.name
    frozen = Teacher(model.to(device), name, num_classes, in_channels)
    if channels_last:  # train.channels_last: the memory format of the batches the teacher will see
        to_channels_last(frozen.model)
    return frozen
