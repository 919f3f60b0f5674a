"""CIFAR-style ResNets (He et al. 2016): a 3x3 stem and three stages of basic blocks.

Depth is ``6n + 2`` (``n`` blocks per stage). Where a block changes width or resolution its shortcut
is a strided 1x1 convolution followed by BatchNorm ("option B"), as in RepDistiller's models, so the
names below have the same layers and parameter counts as the KD literature's tables.

This module also holds what every model of the zoo shares: the weight init, the 3x3 convolution and
:class:`FeatureClassifier`, the ``forward(x, return_features)`` contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kdforaa.errors import BadInput

FEATURE_NAMES = ("stem", "stage1", "stage2", "stage3")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm always follows or precedes it)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def init_weights(model: nn.Module) -> None:
    """The usual ResNet init: Kaiming-normal convs (fan-out, ReLU gain) with zero bias (VGG's convs have
    one), BatchNorm 1/0, zero linear bias.

    Draws from torch's default generator, so ``torch.manual_seed`` makes it deterministic.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


class FeatureClassifier(nn.Module):
    """A backbone with named stage features, global average pooling and a linear classifier.

    Subclasses build their stages, call :meth:`build_head` (or build their own classifier, return it
    from :meth:`head` and call :meth:`set_stage_channels`) and implement :meth:`stage_features`.
    Any input size works (28x28, 32x32, larger): pooling averages whatever spatial size is left.
    """

    fc: nn.Linear
    stage_channels: dict[str, int]

    def build_head(self, widths: Sequence[int], num_classes: int) -> None:
        """The classifier ``fc`` and ``stage_channels``, from ``widths = (stem, stage1, stage2, stage3)``."""
        self.fc = nn.Linear(widths[-1], num_classes)
        self.set_stage_channels(widths)

    def set_stage_channels(self, widths: Sequence[int]) -> None:
        """``stage_channels`` from ``widths = (stem, stage1, stage2, stage3)``; "pooled" averages stage3."""
        self.stage_channels = dict(zip(FEATURE_NAMES, widths, strict=True)) | {"pooled": widths[-1]}

    def head(self) -> nn.Linear:
        """The classifier, pooled ``(B, D)`` -> logits ``(B, num_classes)``: ``fc`` as :meth:`build_head`
        names it. Families whose published weights call it otherwise override this (and set their
        channels with :meth:`set_stage_channels`)."""
        return self.fc

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        """``(B,C,H,W) float`` -> ``{"stem", "stage1", "stage2", "stage3"}`` maps (see :meth:`forward`)."""
        raise NotImplementedError

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``(B,C,H,W) float`` -> logits ``(B, num_classes)``, or ``(logits, feats)``.

        ``feats`` maps, in this order, "stem", "stage1", "stage2", "stage3" to ``(B, C_i, H_i, W_i)``
        maps ("stage3" is the last before pooling) and "pooled" to ``(B, D)``;
        ``self.stage_channels`` gives each feature's channel count. The maps are post-activation in
        every family but MobileNetV2, whose "stage1" and "stage2" are linear bottleneck outputs.
        """
        feats = self.stage_features(x)
        pooled = feats["stage3"].mean(dim=(2, 3))
        logits = self.head()(pooled)
        if not return_features:
            return logits
        feats["pooled"] = pooled
        return logits, feats


class BasicBlock(nn.Module):
    """Post-activation basic block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out, inplace=True)


class CifarResNet(FeatureClassifier):
    """ResNet of depth ``6n + 2`` with ``widths = (stem, stage1, stage2, stage3)`` channels.

    Stages 2 and 3 halve the resolution: a 32x32 input gives 32/16/8 maps, a 28x28 one 28/14/7.
    """

    def __init__(self, depth: int, widths: Sequence[int], num_classes: int, in_channels: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise BadInput(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        if len(widths) != 4:
            raise BadInput(f"widths must be (stem, stage1, stage2, stage3), got {tuple(widths)}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        self.stage1 = make_stage(BasicBlock, widths[0], widths[1], blocks_per_stage, stride=1)
        self.stage2 = make_stage(BasicBlock, widths[1], widths[2], blocks_per_stage, stride=2)
        self.stage3 = make_stage(BasicBlock, widths[2], widths[3], blocks_per_stage, stride=2)
        self.build_head(widths, num_classes)
        init_weights(self)

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = self.stem(x)
        stage1 = self.stage1(stem)
        stage2 = self.stage2(stage1)
        stage3 = self.stage3(stage2)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3}


def make_stage(
    block: Callable[[int, int, int], nn.Module],
    in_channels: int,
    out_channels: int,
    num_blocks: int,
    stride: int,
) -> nn.Sequential:
    """``num_blocks`` blocks made by ``block(in, out, stride)``; only the first changes width and stride."""
    blocks = [block(in_channels, out_channels, stride)]
    blocks += [block(out_channels, out_channels, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
