"""The model a kdforaa run checkpoint holds: rebuilt, its weights loaded, seeing the view it trained on.

One place for what ``kdforaa eval`` and a teacher both need, so that they cannot drift apart: the
architecture named by the run's config, a clean error when the weights do not fit it, and the input
downsampling of a resolution-coupled student (``distill.student_resolution``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import nn

from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import resize_inputs


class TrainedModel(NamedTuple):
    model: nn.Module
    name: str
    num_classes: int
    in_channels: int


def trained_model(state: dict[str, Any], path: str) -> TrainedModel:
    """The model of run checkpoint ``state`` (read from ``path``, named in errors), on the CPU."""
    try:
        name = str(state["config"]["model"]["name"])
        num_classes, in_channels = int(state["num_classes"]), int(state["in_channels"])
    except (KeyError, TypeError, ValueError):
        raise BadInput(
            f"{path} is a kdforaa checkpoint without its model description (config.model.name, "
            "num_classes, in_channels): pass a run folder's last.pt or best.pt"
        ) from None
    model = build_model(name, num_classes, in_channels)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise BadInput(f"{path}: its weights do not fit model {name!r} ({first})") from None
    distill = state["config"].get("distill")
    resolution = distill.get("student_resolution") if isinstance(distill, dict) else None
    if isinstance(resolution, int) and resolution > 0:
        resize_inputs(model, resolution)  # a resolution-coupled student sees the view it was trained on
    return TrainedModel(model, name, num_classes, in_channels)
