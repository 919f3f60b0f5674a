"""Wide ResNets (Zagoruyko & Komodakis 2016): WRN-d-k with pre-activation blocks and optional dropout.

Depth is ``6n + 4`` (``n`` blocks per stage); stage widths are ``16k, 32k, 64k`` after a 16-channel
3x3 stem. Shortcuts that change width or stride are 1x1 convolutions of the block's activated input.

Features are post-activation like the ResNets': since every block opens with BatchNorm-ReLU, the
activated view of the stem (of stage 1, 2) is the BatchNorm-ReLU that stage 1 (2, 3) opens with, and
"stage3" is the final BatchNorm-ReLU before pooling. Exposing them costs no extra operation.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from kdforaa.errors import BadInput
from kdforaa.models.cifar_resnet import FEATURE_NAMES, FeatureClassifier, conv3x3, init_weights, make_stage


class PreActBlock(nn.Module):
    """``conv(dropout(relu(bn(conv(a))))) + shortcut`` with ``a = relu(bn(x))`` the activated input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.dropout = dropout
        needs_projection = stride != 1 or in_channels != out_channels
        self.projection = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
            if needs_projection
            else None
        )

    def activate(self, x: Tensor) -> Tensor:
        """The block's opening BatchNorm-ReLU: ``(B,C_in,H,W) -> (B,C_in,H,W)``."""
        return F.relu(self.bn1(x), inplace=True)

    def forward_activated(self, x: Tensor, activated: Tensor) -> Tensor:
        """The rest of the block, given the raw input ``x`` and ``activated = self.activate(x)``."""
        out = F.relu(self.bn2(self.conv1(activated)), inplace=True)
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        out += x if self.projection is None else self.projection(activated)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_activated(x, self.activate(x))


class WideResNet(FeatureClassifier):
    """WRN-``depth``-``widen_factor``; ``dropout`` is the drop probability between a block's two convs."""

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, in_channels: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise BadInput(f"Wide ResNet depth must be 6n+4 with n >= 1, got {depth}")
        if widen_factor < 1:
            raise BadInput(f"widen factor must be >= 1, got {widen_factor}")
        if not 0.0 <= dropout < 1.0:
            raise BadInput(f"dropout must be in [0, 1), got {dropout}")
        blocks_per_stage = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.stem = conv3x3(in_channels, widths[0])
        block = partial(PreActBlock, dropout=dropout)
        self.stage1 = make_stage(block, widths[0], widths[1], blocks_per_stage, stride=1)
        self.stage2 = make_stage(block, widths[1], widths[2], blocks_per_stage, stride=2)
        self.stage3 = make_stage(block, widths[2], widths[3], blocks_per_stage, stride=2)
        self.final_bn = nn.BatchNorm2d(widths[3])
        self.build_head(widths, num_classes)
        init_weights(self)

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        feats = {}
        stages = (self.stage1, self.stage2, self.stage3)
        for name, stage in zip(FEATURE_NAMES, stages, strict=False):
            first, *rest = stage
            assert isinstance(first, PreActBlock)  # make_stage builds PreActBlocks
            activated = first.activate(x)
            feats[name] = activated
            x = first.forward_activated(x, activated)
            for block in rest:
                x = block(x)
        feats["stage3"] = F.relu(self.final_bn(x), inplace=True)
        return feats
