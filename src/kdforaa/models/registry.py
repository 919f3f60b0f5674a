"""Model names -> constructors: the CIFAR models of the KD literature, plus ``timm:<name>``.

The zoo is RepDistiller's: its ResNets and Wide ResNets, and the models of its cross-architecture
pairs, VGG8/11/13, MobileNetV2 (half width), ShuffleNet V1 and V2, and its bottleneck ResNet50.

Every model built here takes ``(B, in_channels, H, W)`` float images of any size >= 8x8 and follows the
``forward(x, return_features=False)`` contract of :class:`~kdforaa.models.cifar_resnet.FeatureClassifier`.
A ``timm:`` model exposes only the "pooled" feature (timm backbones have no common stage layout).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kdforaa.config import TIMM_PREFIX
from kdforaa.errors import BadInput
from kdforaa.models.bottleneck_resnet import ResNet50
from kdforaa.models.cifar_resnet import CifarResNet
from kdforaa.models.mobilenetv2 import MobileNetV2
from kdforaa.models.shufflenet import ShuffleNetV1, ShuffleNetV2
from kdforaa.models.vgg import VGG, VGG_BLOCKS
from kdforaa.models.wrn import WideResNet


@dataclass(frozen=True)
class _Entry:
    """How to build one named model, and how to describe it in one line."""

    family: str
    shape: str
    build: Callable[[int, int, float], nn.Module]  # (num_classes, in_channels, dropout) -> model
    has_dropout: bool


def _resnet(depth: int, widths: Sequence[int]) -> _Entry:
    return _Entry(
        family="CIFAR ResNet",
        shape=f"depth {depth}, widths {'/'.join(map(str, widths))}",
        build=lambda num_classes, in_channels, _: CifarResNet(depth, widths, num_classes, in_channels),
        has_dropout=False,
    )


def _wrn(depth: int, widen_factor: int) -> _Entry:
    return _Entry(
        family="Wide ResNet",
        shape=f"depth {depth}, widen factor {widen_factor}",
        build=lambda num_classes, in_channels, dropout: WideResNet(
            depth, widen_factor, num_classes, in_channels, dropout
        ),
        has_dropout=True,
    )


def _vgg(depth: int) -> _Entry:
    convs = "/".join(str(len(block)) for block in VGG_BLOCKS[depth])
    return _Entry(
        family="VGG with BatchNorm",
        shape=f"convolutions per block {convs}, widths 64/128/256/512/512",
        build=lambda num_classes, in_channels, _: VGG(depth, num_classes, in_channels),
        has_dropout=False,
    )


def _fixed(family: str, shape: str, build: Callable[[int, int], nn.Module]) -> _Entry:
    """An architecture without size arguments: ``build(num_classes, in_channels)``."""
    return _Entry(family, shape, lambda num_classes, in_channels, _: build(num_classes, in_channels), False)


_THIN = (16, 16, 32, 64)  # RepDistiller's resnet8..resnet110
_WIDE = (32, 64, 128, 256)  # RepDistiller's resnet8x4, resnet32x4

_REGISTRY: dict[str, _Entry] = {
    **{f"resnet{depth}": _resnet(depth, _THIN) for depth in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": _resnet(8, _WIDE),
    "resnet32x4": _resnet(32, _WIDE),
    **{
        f"wrn_{d}_{k}": _wrn(d, k)
        for d, k in ((16, 1), (16, 2), (16, 4), (28, 10), (40, 1), (40, 2), (40, 4))
    },
    **{f"vgg{depth}": _vgg(depth) for depth in VGG_BLOCKS},
    "mobilenetv2": _fixed("MobileNetV2", "width 0.5, expansion 6 (RepDistiller's mobile_half)", MobileNetV2),
    "shufflenetv1": _fixed("ShuffleNet V1", "groups 3, widths 240/480/960", ShuffleNetV1),
    "shufflenetv2": _fixed("ShuffleNet V2", "size 1x, widths 116/232/464/1024", ShuffleNetV2),
    "resnet50": _fixed("bottleneck ResNet", "blocks 3/4/6/3, widths 256/512/1024/2048", ResNet50),
}


class TimmClassifier(nn.Module):
    """A timm model behind our ``forward(x, return_features)`` contract.

    Features are only ``{"pooled": (B, D)}``: the pre-logits vector timm's head computes, so
    logit-based and pooled-feature distillation work, stage hints do not.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        # a timm model: num_features, forward_features, forward_head, get_classifier are timm's (no types)
        timm_model: Any = model
        self.model = timm_model
        pooled_channels: int = getattr(timm_model, "head_hidden_size", None) or timm_model.num_features
        self.stage_channels = {"pooled": pooled_channels}

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``(B,C,H,W) float`` -> logits ``(B, num_classes)``, or ``(logits, {"pooled": (B, D)})``."""
        if not return_features:
            return self.model(x)
        pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return self.model.get_classifier()(pooled), {"pooled": pooled}


def _timm(name: str) -> Any:
    """The timm module, which knows model ``name`` (BadInput naming what to install or what is unknown)."""
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        raise BadInput(
            f"model '{TIMM_PREFIX}{name}' needs timm, which is not installed: pip install 'kdforaa[timm]'"
        ) from None
    if not timm.is_model(name):
        raise BadInput(
            f"timm has no model '{name}'; list them with: python -c 'import timm; print(timm.list_models())'"
        )
    return timm


def _build_timm(name: str, num_classes: int, in_channels: int, dropout: float) -> TimmClassifier:
    model = _timm(name).create_model(
        name, pretrained=False, in_chans=in_channels, num_classes=num_classes, drop_rate=dropout
    )
    return TimmClassifier(model)


def pretrained_timm_model(name: str) -> TimmClassifier:
    """``timm:<name>`` with timm's own pretrained weights, from timm's cache (downloaded there if absent).

    Built with the class count and input channels the weights were trained for (timm would otherwise
    replace a mismatched classifier with an untrained one). A failed download is BadInput.
    """
    name = name.removeprefix(TIMM_PREFIX)
    timm = _timm(name)
    try:
        model = timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError, ValueError) as err:  # offline, no such weights, hub errors
        first = str(err).splitlines()[0] if str(err) else ""
        raise BadInput(
            f"timm could not load the pretrained weights of '{TIMM_PREFIX}{name}' ({type(err).__name__}: "
            f"{first[:200]}): connect once to fill timm's cache, or set teacher.weights=FILE"
        ) from None
    return TimmClassifier(model)


def available_models() -> list[str]:
    """The registered model names (``timm:<name>`` is accepted too but not listed)."""
    return list(_REGISTRY)


def build_model(name: str, num_classes: int, in_channels: int, *, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised model (deterministic under ``torch.manual_seed``).

    ``dropout`` is the Wide ResNets' in-block dropout (timm's ``drop_rate``); other models reject it.
    Raises BadInput for an unknown name or impossible sizes.
    """
    if num_classes < 1 or in_channels < 1:
        raise BadInput(
            f"model needs num_classes >= 1 and in_channels >= 1, got {num_classes} and {in_channels}"
        )
    if not 0.0 <= dropout < 1.0:
        raise BadInput(f"dropout must be in [0, 1), got {dropout}")
    if name.startswith(TIMM_PREFIX):
        return _build_timm(name.removeprefix(TIMM_PREFIX), num_classes, in_channels, dropout)
    entry = _REGISTRY.get(name)
    if entry is None:
        raise BadInput(
            f"unknown model '{name}'; choose one of {', '.join(available_models())} or timm:<name>"
        )
    if dropout > 0 and not entry.has_dropout:
        raise BadInput(f"model '{name}' has no dropout; set dropout to 0 or pick a wrn_* model")
    return entry.build(num_classes, in_channels, dropout)


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` itself, its 4-d weights now in channels-last memory order (``train.channels_last``):
    the student and the teacher go through here alike."""
    # torch's stubs leave out Module.to's memory_format keyword, which torch documents and accepts
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def describe_model(name: str) -> str:
    """One line: name, family, depth/width and parameter count for 10 classes and 1 input channel."""
    with torch.device("meta"):  # shapes only: no memory, no init work, no random draws
        model = build_model(name, num_classes=10, in_channels=1)
    num_params = sum(p.numel() for p in model.parameters())
    entry = _REGISTRY.get(name)
    kind = f"{entry.family}, {entry.shape}" if entry else "timm model"
    return f"{name}: {kind}, {num_params / 1e6:.2f}M parameters (10 classes, 1 channel)"
