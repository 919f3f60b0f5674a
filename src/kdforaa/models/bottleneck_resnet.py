"""RepDistiller's ResNet50 for CIFAR (its ``models/resnetv2.py``): He et al.'s four stages of
bottleneck blocks after a 3x3 stem, without the ImageNet stem's stride and max pool.

A 3x3 convolution to 64 channels (BatchNorm, ReLU), then stages of 3, 4, 6 and 3 bottleneck blocks
(1x1 to ``planes``, 3x3 with the stage's stride, 1x1 to ``4 * planes``, each with BatchNorm, ReLU after
the residual add) with ``planes`` 64, 128, 256, 512 and strides 1, 2, 2, 2, then global average pooling
and a linear classifier on 2048 features. A 32x32 input ends at 4x4, a 28x28 one at 4x4 too.

The module names are RepDistiller's, so its state dicts load unchanged: ``conv1``, ``bn1``,
``layer1..4.<block>.{conv1,bn1,conv2,bn2,conv3,bn3}`` with ``shortcut.0``/``shortcut.1`` (1x1 conv,
BatchNorm) where a block changes width or stride, and ``linear``.

Features (post-activation): "stem" (full resolution), "stage1" and "stage2" the outputs of stages 1
and 2 (1/1, 1/2), "stage3" stage 4's (1/8, the map that is pooled): RepDistiller's f0, f1, f2 and f4.
Stage 3's output (its f3) is not exposed.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdforaa.models.cifar_resnet import FeatureClassifier, conv3x3, init_weights

EXPANSION = 4
#: (planes, blocks, stride of the first block) of each stage
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
STEM_CHANNELS = 64


class Bottleneck(nn.Module):
    """``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))``: ``(B,in,H,W) ->
    (B,4*planes,H/stride,W/stride)``; the shortcut projects (1x1 conv, BatchNorm) where shapes change."""

    def __init__(self, in_channels: int, planes: int, stride: int) -> None:
        super().__init__()
        out_channels = EXPANSION * planes
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        return F.relu(out, inplace=True)


class ResNet50(FeatureClassifier):
    """RepDistiller's CIFAR ResNet50, for ``in_channels``-channel images of any size >= 8x8."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, STEM_CHANNELS), nn.BatchNorm2d(STEM_CHANNELS)
        width, stages = STEM_CHANNELS, []
        for planes, num_blocks, stride in RESNET50_STAGES:
            blocks = [Bottleneck(width, planes, stride)]
            blocks += [Bottleneck(EXPANSION * planes, planes, 1) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            width = EXPANSION * planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(width, num_classes)
        widths = [EXPANSION * planes for planes, _, _ in RESNET50_STAGES]
        self.set_stage_channels([STEM_CHANNELS, widths[0], widths[1], widths[3]])
        init_weights(self)

    def head(self) -> nn.Linear:
        return self.linear

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = F.relu(self.bn1(self.conv1(x)), inplace=True)
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": self.layer4(self.layer3(stage2))}
