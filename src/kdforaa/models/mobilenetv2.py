"""MobileNetV2 for CIFAR (Sandler et al. 2018) as RepDistiller trains it (its ``MobileNetV2`` =
``mobile_half``): width multiplier 0.5, expansion 6.

A 3x3 stride-2 stem to 16 channels, then seven stages of inverted residual blocks (1x1 expansion, 3x3
depthwise, linear 1x1 projection; a residual add where shape allows) with the expansions, output
channels, block counts and first strides of :data:`STAGES`, then a 1x1 convolution to 1280 channels,
global average pooling and a linear classifier. Unlike torchvision's, every block keeps its expansion
convolution, the first one's (expansion 1) included. A 32x32 input ends at 2x2 (RepDistiller's 2x2
average pool is global there), a 28x28 one at 2x2 too.

The module names are RepDistiller's, so its state dicts load unchanged: ``conv1`` (conv, BatchNorm,
ReLU), ``blocks.<stage>.<block>.conv`` (indices 0/1: expansion conv/BN, 3/4: depthwise conv/BN, 6/7:
projection conv/BN; ReLUs at 2 and 5), ``conv2`` (conv, BatchNorm, ReLU) and ``classifier.0``.

Features: "stem" is the stem's output (1/2 resolution), "stage1" stage 1's (1/2) and "stage2" stage 2's
(1/4), as RepDistiller's f0, f1, f2 (stage outputs are linear projections, not activated); "stage3"
is the activated 1280-channel map that is pooled (1/16).
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from kdforaa.models.cifar_resnet import FeatureClassifier, init_weights

#: (expansion, output channels, blocks, stride of the first block) of each stage: the paper's table at
#: half width, with the expansion 6 that RepDistiller's ``mobile_half`` uses
STAGES = (
    (1, 8, 1, 1),
    (6, 12, 2, 1),
    (6, 16, 3, 2),
    (6, 32, 4, 2),
    (6, 48, 3, 1),
    (6, 80, 3, 2),
    (6, 160, 1, 1),
)
STEM_CHANNELS = 16
LAST_CHANNELS = 1280


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution (no bias, "same" padding), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """``conv(x) (+ x)``: 1x1 expansion to ``in * expansion`` channels, 3x3 depthwise (``stride``), linear
    1x1 projection to ``out`` channels; the residual add when stride is 1 and the widths agree."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            *conv_bn_relu(in_channels, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(FeatureClassifier):
    """RepDistiller's half-width MobileNetV2, for ``in_channels``-channel images of any size >= 8x8."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels, STEM_CHANNELS, 3, stride=2)
        width, stages = STEM_CHANNELS, []
        for expansion, out_channels, num_blocks, stride in STAGES:
            blocks = []
            for index in range(num_blocks):
                blocks.append(InvertedResidual(width, out_channels, stride if index == 0 else 1, expansion))
                width = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(stages)
        self.conv2 = conv_bn_relu(width, LAST_CHANNELS, 1)
        self.classifier = nn.Sequential(nn.Linear(LAST_CHANNELS, num_classes))
        self.set_stage_channels([STEM_CHANNELS, STAGES[1][1], STAGES[2][1], LAST_CHANNELS])
        init_weights(self)

    def head(self) -> nn.Linear:
        return cast(nn.Linear, self.classifier[0])

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = self.conv1(x)
        feats = {"stem": stem}
        x = stem
        for index, stage in enumerate(self.blocks):
            x = stage(x)
            if index in (1, 2):
                feats[f"stage{index}"] = x
        feats["stage3"] = self.conv2(x)
        return feats
