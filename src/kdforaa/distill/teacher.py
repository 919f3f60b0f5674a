"""The frozen teacher: loaded once, never trained, called without building an autograd graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdforaa.errors import BadInput
from kdforaa.models.registry import TIMM_PREFIX, build_model
from kdforaa.models.resolution import resize_inputs
from kdforaa.train.checkpoint import load_checkpoint


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


def _require(state: dict[str, Any], path: str) -> tuple[str, int, int]:
    """The architecture name, class count and input channels a kdforaa run checkpoint records."""
    try:
        return str(state["config"]["model"]["name"]), int(state["num_classes"]), int(state["in_channels"])
    except (KeyError, TypeError, ValueError):
        raise BadInput(
            f"{path} is a kdforaa checkpoint without its model description (config.model.name, "
            "num_classes, in_channels): pass a run folder's last.pt or best.pt"
        ) from None


def _from_checkpoint(path: str, num_classes: int, in_channels: int) -> tuple[nn.Module, str]:
    state = load_checkpoint(path, map_location="cpu")
    name, ckpt_classes, ckpt_channels = _require(state, path)
    if ckpt_classes != num_classes:
        raise BadInput(
            f"teacher {path} predicts {ckpt_classes} classes but the data set has {num_classes}: "
            "use a teacher trained on the same data set"
        )
    if ckpt_channels != in_channels:
        raise BadInput(
            f"teacher {path} takes {ckpt_channels}-channel images but the data set has {in_channels}: "
            "use a teacher trained on the same data set"
        )
    model = build_model(name, num_classes, in_channels)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise BadInput(f"teacher {path}: its weights do not fit model {name!r} ({first})") from None
    distill = state["config"].get("distill")
    resolution = distill.get("student_resolution") if isinstance(distill, dict) else None
    if isinstance(resolution, int) and resolution > 0:  # a resolution-coupled student as a teacher
        resize_inputs(model, resolution)  # sees the low-resolution view it was trained on
    return model, name


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
