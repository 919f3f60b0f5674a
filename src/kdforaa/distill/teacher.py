"""The frozen teacher: loaded once, never trained, called without building an autograd graph.

A live :class:`Teacher` and a :class:`~kdforaa.distill.cache.SoftLabelCache` answer the same call,
``logits(x, epoch=, indices=, features=)``, so the training loop runs one path for both: the live
teacher looks at ``x`` (the batch :class:`~kdforaa.distill.views.TrainingViews` built for it), the cache
looks the sample up by ``(epoch, index)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kdforaa.checkpoint import load_checkpoint
from kdforaa.errors import BadInput
from kdforaa.models.from_checkpoint import trained_model
from kdforaa.models.registry import TIMM_PREFIX, build_model


class Teacher:
    """A model in eval mode with ``requires_grad=False`` everywhere, run under ``torch.inference_mode``.

    Deliberately not an ``nn.Module``: a student's ``.train()``, ``.parameters()`` or ``state_dict()``
    can never reach it. Outputs are cloned out of inference mode, so losses may save them for backward.
    """

    def __init__(self, model: nn.Module, name: str, num_classes: int, in_channels: int) -> None:
        self.model = model.eval().requires_grad_(False)
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
        self, x: torch.Tensor, *, epoch: int, indices: torch.Tensor, features: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """``(B, num_classes)`` float32 logits for the teacher's view ``x`` of the samples ``indices``
        in ``epoch`` (which a live teacher does not need), and the stage features when asked."""
        if features:
            logits, feats = self.forward_features(x)
            return logits.float(), feats
        return self(x).float(), None


def _from_checkpoint(path: str, num_classes: int, in_channels: int) -> tuple[nn.Module, str]:
    trained = trained_model(load_checkpoint(path, map_location="cpu"), path)
    if trained.num_classes != num_classes:
        raise BadInput(
            f"teacher {path} predicts {trained.num_classes} classes but the data set has {num_classes}: "
            "use a teacher trained on the same data set"
        )
    if trained.in_channels != in_channels:
        raise BadInput(
            f"teacher {path} takes {trained.in_channels}-channel images but the data set has {in_channels}: "
            "use a teacher trained on the same data set"
        )
    return trained.model, trained.name


def load_teacher(spec: str, num_classes: int, in_channels: int, device: str | torch.device) -> Teacher:
    """Load a frozen teacher for a data set with ``num_classes`` classes and ``in_channels`` channels.

    ``spec``: a kdforaa checkpoint (a run folder's ``best.pt`` / ``last.pt``; weights only, never
    unpickled code), or ``timm:<name>`` (a timm architecture, randomly initialised: pretrained=False;
    needs ``pip install 'kdforaa[timm]'``). Mismatched class or channel counts are BadInput.
    """
    if spec.startswith(TIMM_PREFIX):
        model, name = build_model(spec, num_classes, in_channels), spec
    elif Path(spec).is_dir():
        raise BadInput(f"teacher {spec} is a folder: pass a checkpoint in it, e.g. {Path(spec) / 'best.pt'}")
    else:
        model, name = _from_checkpoint(spec, num_classes, in_channels)
    return Teacher(model.to(device), name, num_classes, in_channels)
