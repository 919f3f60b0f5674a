"""ShuffleNet V1 (Zhang et al. 2018) and V2 (Ma et al. 2018) for CIFAR, as RepDistiller trains them
(its ``ShuffleV1`` and ``ShuffleV2``).

Both start with a 1x1 convolution of the image to 24 channels (BatchNorm, ReLU; no downsampling), then
three stages that each halve the resolution in their first unit, then global average pooling and a
linear classifier: a 32x32 input ends at 4x4 (RepDistiller's 4x4 average pool is global there), a 28x28
one at 4x4 too.

- V1 (groups 3): stages of 4, 8 and 4 bottleneck units, 240, 480 and 960 channels. A unit is a grouped
  1x1 convolution to a quarter of its output width, a channel shuffle, a 3x3 depthwise convolution and
  a grouped 1x1 convolution, each with BatchNorm and the first two with ReLU (RepDistiller's ReLU after
  the depthwise convolution, which the paper does not have, is kept). A stage's first unit (stride 2)
  concatenates its branch with a 3x3 average pool of its input; the others add the input. The very
  first 1x1 convolution, on the stem's 24 channels, is not grouped.
- V2 (size 1x): stages of a downsampling unit and 3, 7 and 3 basic units, 116, 232 and 464 channels,
  then a 1x1 convolution to 1024 channels (BatchNorm, ReLU). A basic unit passes half of its channels
  through and transforms the other half (1x1, 3x3 depthwise, 1x1); a downsampling unit transforms its
  whole input along two strided branches; both concatenate and shuffle with 2 groups.

The module names are RepDistiller's, so its state dicts load unchanged: ``conv1``, ``bn1``,
``layer1..3.<unit>.{conv1,bn1,conv2,bn2,conv3,bn3}`` (V2's downsampling units up to ``conv5``, ``bn5``),
V2's ``conv2``, ``bn2``, and ``linear``.

Features (post-activation): "stem" (full resolution), "stage1" .. "stage2" the outputs of stages 1 and 2
(1/2, 1/4), "stage3" the map that is pooled (1/8): stage 3's output for V1, the 1024-channel map for V2.
These are RepDistiller's f0, f1, f2 and (V1) f3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdforaa.models.cifar_resnet import FeatureClassifier, init_weights

STEM_CHANNELS = 24
V1_GROUPS = 3
V1_STAGES = ((240, 4), (480, 8), (960, 4))  # (output channels, units)
V2_STAGES = ((116, 3), (232, 7), (464, 3))  # (output channels, basic units after the downsampling one)
V2_LAST_CHANNELS = 1024


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """``(B,C,H,W)`` with C = groups * n: channel ``g * n + i`` moves to ``i * groups + g``."""
    batch, channels, height, width = x.shape
    grouped = x.reshape(batch, groups, channels // groups, height, width)
    return grouped.transpose(1, 2).reshape(batch, channels, height, width)


def pointwise(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)


def depthwise(channels: int, stride: int) -> nn.Conv2d:
    """3x3 depthwise convolution (padding 1) without bias."""
    return nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 bottleneck: ``(B,in,H,W) -> (B,in+branch,H/2,W/2)`` at stride 2, else ``(B,in,H,W)``.

    ``branch`` is the output width of the residual branch; ``input_groups`` the grouping of its first
    1x1 convolution and of the shuffle after it.
    """

    def __init__(self, in_channels: int, branch: int, stride: int, groups: int, input_groups: int) -> None:
        super().__init__()
        mid = branch // 4
        self.stride, self.input_groups = stride, input_groups
        self.conv1, self.bn1 = pointwise(in_channels, mid, input_groups), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = depthwise(mid, stride), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = pointwise(mid, branch, groups), nn.BatchNorm2d(branch)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = channel_shuffle(out, self.input_groups)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            out = torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], dim=1)
        else:
            out = out + x
        return F.relu(out, inplace=True)


class ShuffleNetV1(FeatureClassifier):
    """RepDistiller's ShuffleNet V1 (groups 3), for ``in_channels``-channel images of any size >= 8x8."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = pointwise(in_channels, STEM_CHANNELS), nn.BatchNorm2d(STEM_CHANNELS)
        width, stages = STEM_CHANNELS, []
        for out_channels, num_units in V1_STAGES:
            input_groups = 1 if width == STEM_CHANNELS else V1_GROUPS  # 24 channels: too few to group
            units = [ShuffleV1Unit(width, out_channels - width, 2, V1_GROUPS, input_groups)]
            units += [
                ShuffleV1Unit(out_channels, out_channels, 1, V1_GROUPS, V1_GROUPS)
                for _ in range(num_units - 1)
            ]
            stages.append(nn.Sequential(*units))
            width = out_channels
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(width, num_classes)
        self.set_stage_channels([STEM_CHANNELS, *(out_channels for out_channels, _ in V1_STAGES)])
        init_weights(self)

    def head(self) -> nn.Linear:
        return self.linear

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = F.relu(self.bn1(self.conv1(x)), inplace=True)
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": self.layer3(stage2)}


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 basic unit, ``(B,C,H,W) -> (B,C,H,W)``: the first half of the channels passes,
    the second goes through 1x1, 3x3 depthwise, 1x1 (ReLU after the outer two); then concat, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1, self.bn1 = pointwise(half, half), nn.BatchNorm2d(half)
        self.conv2, self.bn2 = depthwise(half, 1), nn.BatchNorm2d(half)
        self.conv3, self.bn3 = pointwise(half, half), nn.BatchNorm2d(half)

    def forward(self, x: Tensor) -> Tensor:
        kept, transformed = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(transformed)), inplace=True)
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)), inplace=True)
        return channel_shuffle(torch.cat([kept, out], dim=1), 2)


class ShuffleV2Down(nn.Module):
    """ShuffleNet V2 downsampling unit, ``(B,in,H,W) -> (B,out,H/2,W/2)``: two strided branches of
    ``out // 2`` channels each (3x3 depthwise then 1x1; 1x1, 3x3 depthwise, 1x1), concat, shuffle."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv1, self.bn1 = depthwise(in_channels, 2), nn.BatchNorm2d(in_channels)
        self.conv2, self.bn2 = pointwise(in_channels, mid), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = pointwise(in_channels, mid), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = depthwise(mid, 2), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = pointwise(mid, mid), nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))), inplace=True)
        right = F.relu(self.bn3(self.conv3(x)), inplace=True)
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))), inplace=True)
        return channel_shuffle(torch.cat([left, right], dim=1), 2)


class ShuffleNetV2(FeatureClassifier):
    """RepDistiller's ShuffleNet V2 (size 1x), for ``in_channels``-channel images of any size >= 8x8."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = pointwise(in_channels, STEM_CHANNELS), nn.BatchNorm2d(STEM_CHANNELS)
        width, stages = STEM_CHANNELS, []
        for out_channels, num_units in V2_STAGES:
            units: list[nn.Module] = [ShuffleV2Down(width, out_channels)]
            units += [ShuffleV2Unit(out_channels) for _ in range(num_units)]
            stages.append(nn.Sequential(*units))
            width = out_channels
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2, self.bn2 = pointwise(width, V2_LAST_CHANNELS), nn.BatchNorm2d(V2_LAST_CHANNELS)
        self.linear = nn.Linear(V2_LAST_CHANNELS, num_classes)
        self.set_stage_channels([STEM_CHANNELS, V2_STAGES[0][0], V2_STAGES[1][0], V2_LAST_CHANNELS])
        init_weights(self)

    def head(self) -> nn.Linear:
        return self.linear

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = F.relu(self.bn1(self.conv1(x)), inplace=True)
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        stage3 = F.relu(self.bn2(self.conv2(self.layer3(stage2))), inplace=True)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3}
