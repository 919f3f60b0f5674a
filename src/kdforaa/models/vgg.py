"""VGG for CIFAR (Simonyan & Zisserman 2015) as RepDistiller trains it: five blocks of 3x3 convolutions
with BatchNorm, no fully connected stack, global average pooling and one linear classifier.

Blocks have 64, 128, 256, 512 and 512 channels; a 2x2 max pool halves the resolution before blocks 1, 2
and 3 (RepDistiller pools once more before block 4, but only for 64x64 inputs; here never, so a 32x32
input ends at 4x4 and a 28x28 one at 3x3). VGG8, VGG11 and VGG13 differ in how many convolutions each
block holds (:data:`VGG_BLOCKS`); they are RepDistiller's ``vgg8``/``vgg11``/``vgg13``, which are its
BatchNorm variants (``vgg*_bn``).

The module names are RepDistiller's, so its state dicts load unchanged: ``block0`` .. ``block4`` are
sequences of (Conv2d with bias, BatchNorm2d, ReLU) triples, the last ReLU of each left out (so index
``3j`` is the block's j-th convolution, ``3j + 1`` its BatchNorm), and ``classifier`` is the linear layer.

Features (post-activation): "stem" is block 0 (full resolution), "stage1" block 1 (1/2), "stage2" block 2
(1/4) and "stage3" block 4 (1/8, the map that is pooled): RepDistiller's f0, f1, f2 and f4. Block 3's
output (its f3, at the same resolution as block 4) is not exposed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kdforaa.errors import BadInput
from kdforaa.models.cifar_resnet import FeatureClassifier, init_weights

#: depth -> the output channels of each convolution of blocks 0..4 (depth = convolutions + classifier)
VGG_BLOCKS: dict[int, tuple[tuple[int, ...], ...]] = {
    8: ((64,), (128,), (256,), (512,), (512,)),
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def conv_block(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """3x3 convolutions (padding 1, with bias) of ``widths`` output channels, each followed by BatchNorm
    and ReLU except that the last ReLU is left to the caller: ``(B,in,H,W) -> (B,widths[-1],H,W)``."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class VGG(FeatureClassifier):
    """VGG-``depth`` (8, 11 or 13) with BatchNorm, for ``in_channels``-channel images of any size >= 8x8."""

    def __init__(self, depth: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if depth not in VGG_BLOCKS:
            raise BadInput(f"VGG depth must be one of {', '.join(map(str, VGG_BLOCKS))}, got {depth}")
        widths = VGG_BLOCKS[depth]
        inputs = (in_channels, *(block[-1] for block in widths[:-1]))
        self.block0, self.block1, self.block2, self.block3, self.block4 = (
            conv_block(cin, block) for cin, block in zip(inputs, widths, strict=True)
        )
        self.classifier = nn.Linear(widths[-1][-1], num_classes)
        self.set_stage_channels([widths[0][-1], widths[1][-1], widths[2][-1], widths[4][-1]])
        init_weights(self)

    def head(self) -> nn.Linear:
        return self.classifier

    def stage_features(self, x: Tensor) -> dict[str, Tensor]:
        stem = F.relu(self.block0(x), inplace=True)
        stage1 = F.relu(self.block1(F.max_pool2d(stem, 2)), inplace=True)
        stage2 = F.relu(self.block2(F.max_pool2d(stage1, 2)), inplace=True)
        block3 = F.relu(self.block3(F.max_pool2d(stage2, 2)), inplace=True)
        stage3 = F.relu(self.block4(block3), inplace=True)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3}
