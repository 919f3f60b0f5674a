"""The model a weights file holds: rebuilt, its weights loaded strictly, seeing the view it trained on.

One place for what ``kdforaa eval``, ``kdforaa export`` and a teacher need, so that they cannot drift
apart: the file read in its format (:mod:`kdforaa.models.weight_formats`), the architecture it records
or the one it is said to hold, the class count and input channels (recorded, or read off the weights:
the classifier's rows and the first convolution's input channels), a strict load whose first misfit is
one line, and the input downsampling of a resolution-coupled student (``distill.student_resolution``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kdforaa.errors import BadInput
from kdforaa.limits import MAX_CHANNELS, MAX_CLASSES, MAX_SIDE, check_range
from kdforaa.models.cifar_resnet import FeatureClassifier
from kdforaa.models.registry import TimmClassifier, build_model
from kdforaa.models.resolution import resize_inputs
from kdforaa.models.weight_formats import FORMAT_NAMES, Layout, StoredWeights, detect_layout, read_weights


@dataclass(frozen=True)
class TrainedModel:
    """A model rebuilt from a weights file (on the CPU), and what the file said about it.

    ``format`` and ``layout`` are the file's (see :mod:`~kdforaa.models.weight_formats`); ``config`` is
    the run's config for a kdforaa checkpoint; ``resolution`` is ``(H, W)`` of the images it was trained
    on and ``student_resolution`` the side it downsamples them to, when the file records them.
    """

    model: nn.Module
    name: str
    num_classes: int
    in_channels: int
    format: str = "kdforaa"
    layout: str = "kdforaa"
    config: dict[str, Any] | None = None
    resolution: tuple[int, int] | None = None
    student_resolution: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    data: str | None = None  # the data set's name (data.name), where the file records it
    epoch: int | None = None  # epochs trained, where the file records it


def count_keys(model: nn.Module) -> tuple[str, str]:
    """The state-dict keys of ``model``'s classifier weight ``(classes, D)`` and of its first
    convolution's weight ``(out, in_channels, kh, kw)``: where the two counts can be read off weights."""
    head: nn.Module | None = None
    if isinstance(model, TimmClassifier):
        head = model.model.get_classifier()
    elif isinstance(model, FeatureClassifier):
        head = model.head()
    names = {id(module): name for name, module in model.named_modules()}
    first_conv = next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if head is None or id(head) not in names or first_conv is None:
        raise BadInput(f"{type(model).__name__} has no classifier or no convolution to read its sizes from")
    return f"{names[id(head)]}.weight", f"{first_conv}.weight"


def model_counts(model: nn.Module) -> tuple[int, int]:
    """``(num_classes, in_channels)`` of a built model, from its classifier and first convolution."""
    head_key, conv_key = count_keys(model)
    weights = model.state_dict()
    return int(weights[head_key].shape[0]), int(weights[conv_key].shape[1])


def _architecture(stored: StoredWeights, given: str | None) -> str:
    if given is not None and stored.architecture is not None and given != stored.architecture:
        raise BadInput(
            f"{stored.path} holds a {stored.architecture!r}, not a {given!r}: remove --model "
            "(teacher.model) or pass the checkpoint of that architecture"
        )
    name = given or stored.architecture
    if name is None:
        raise BadInput(
            f"{stored.path} is a {FORMAT_NAMES[stored.format]} that does not record its architecture: "
            "name it with --model NAME (teacher.model=NAME in a config), e.g. resnet32x4; see kdforaa models"
        )
    return name


def _counts(stored: StoredWeights, weights: dict[str, Tensor], skeleton: nn.Module) -> tuple[int, int]:
    """The class count and input channels: recorded by the file, else read off its weights (1 where
    the weight is missing: the strict load then names it)."""
    head_key, conv_key = count_keys(skeleton)
    head, conv = weights.get(head_key), weights.get(conv_key)
    num_classes = stored.num_classes or (int(head.shape[0]) if head is not None and head.dim() > 0 else 1)
    in_channels = stored.in_channels or (int(conv.shape[1]) if conv is not None and conv.dim() > 1 else 1)
    return num_classes, in_channels


def _shape(value: Tensor) -> str:
    return "(" + ", ".join(map(str, value.shape)) + ")"


def _value_problem(key: str, stored: Tensor, expected: Tensor) -> str | None:
    """Why the stored tensor cannot stand for the model's ``expected`` one, or None: a floating-point
    weight must be stored as floating point (int8 or bool weights would be cast silently) and finite
    (one NaN poisons every prediction); integer buffers (BatchNorm's counts) must be integers."""
    if expected.is_floating_point():
        if not stored.is_floating_point():
            return f"{key} holds {str(stored.dtype).removeprefix('torch.')} values, not floating point"
        if not bool(torch.isfinite(stored).all()):
            return f"{key} holds NaN or infinite values"
    elif stored.is_floating_point() or stored.dtype == torch.bool:
        return f"{key} holds {str(stored.dtype).removeprefix('torch.')} values, the model needs integers"
    return None


def check_recorded(stored: StoredWeights) -> None:
    """The sizes a weights file records are bounded (:mod:`kdforaa.limits`) before anything is built
    from them: a class count of 10^12 or a negative resolution is one BadInput line, not a terabyte
    allocation or a crash mid-run."""
    where = f"{stored.path}: its recorded"
    fix = "re-export the file with kdforaa export, or pass weights that record sensible sizes"
    if stored.num_classes is not None:
        check_range(f"{where} class count", stored.num_classes, 1, MAX_CLASSES, fix)
    if stored.in_channels is not None:
        check_range(f"{where} input channels", stored.in_channels, 1, MAX_CHANNELS, fix)
    if stored.student_resolution is not None:
        check_range(f"{where} student resolution", stored.student_resolution, 1, MAX_SIDE, fix)
    if stored.resolution is not None:
        if len(stored.resolution) != 2:
            raise BadInput(f"{where} resolution {list(stored.resolution)} is not [H, W]: {fix}")
        for side in stored.resolution:
            check_range(f"{where} image side", side, 1, MAX_SIDE, fix)
        if stored.student_resolution is not None and stored.student_resolution > min(stored.resolution):
            raise BadInput(
                f"{where} student resolution {stored.student_resolution} exceeds its images' sides "
                f"{list(stored.resolution)}: {fix}"
            )
    for name, values in (("mean", stored.mean), ("std", stored.std)):
        if values is not None and not all(
            isinstance(v, int | float) and math.isfinite(v) and (name == "mean" or v > 0) for v in values
        ):
            raise BadInput(f"{where} normalisation {name} {list(values)} is not finite (and positive): {fix}")


def load_strictly(
    model: nn.Module, weights: dict[str, Tensor], unexpected: list[str], layout: Layout, name: str, path: str
) -> None:
    """Load ``weights`` (our keys) into ``model``: every key present, none extra, every shape equal.

    The first misfit in the model's order (a missing key or a wrong shape), else the first of the
    file's keys ``unexpected`` by the model, is one BadInput line, naming the key as the file names it.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in weights]

    def file_key(key: str) -> str:
        return layout.theirs(key) or key

    for key, value in expected.items():
        problem: str | None
        if key not in weights:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            problem = f"{file_key(key)} is missing{more}"
        elif weights[key].shape != value.shape:
            problem = f"{file_key(key)} has shape {_shape(weights[key])}, the model needs {_shape(value)}"
        else:
            problem = _value_problem(file_key(key), weights[key], value)
            if problem is None:
                continue
        raise BadInput(f"{path}: its weights do not fit model {name!r}: {problem}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise BadInput(
            f"{path}: its weights do not fit model {name!r}: {unexpected[0]} is not one of its weights{more}"
        )
    model.load_state_dict(weights, strict=True)


def load_trained(path: str, *, architecture: str | None = None, format: str = "auto") -> TrainedModel:
    """The model the weights file ``path`` holds, on the CPU in train mode, its weights loaded strictly.

    ``architecture`` names the model (a zoo name or ``timm:<name>``) for files that do not record it
    (RepDistiller checkpoints, state dicts, foreign safetensors); for files that do, it must agree.
    ``format`` is one of ``kdforaa.config.WEIGHT_FORMATS``. Every problem is one BadInput line.
    """
    stored = read_weights(path, format)
    check_recorded(stored)
    name = _architecture(stored, architecture)
    with torch.device("meta"):  # names and shapes only: which layout, where the counts are
        skeleton = build_model(name, num_classes=1, in_channels=1)
    layout = detect_layout(list(stored.tensors), skeleton)
    expected = set(skeleton.state_dict())
    weights, unexpected = {}, []
    for key, value in stored.tensors.items():
        ours = layout.ours(key)
        if ours in expected:
            weights[ours] = value
        else:
            unexpected.append(key)
    num_classes, in_channels = _counts(stored, weights, skeleton)
    model = build_model(name, num_classes, in_channels)
    load_strictly(model, weights, unexpected, layout, name, stored.path)
    if stored.student_resolution:
        resize_inputs(model, stored.student_resolution)  # a coupled student sees the view it trained on
    return TrainedModel(
        model=model,
        name=name,
        num_classes=num_classes,
        in_channels=in_channels,
        format=stored.format,
        layout=layout.name,
        config=stored.config,
        resolution=stored.resolution,
        student_resolution=stored.student_resolution,
        mean=stored.mean,
        std=stored.std,
        data=stored.data,
        epoch=stored.epoch,
    )
