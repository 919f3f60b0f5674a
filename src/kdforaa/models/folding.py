"""Folding a frozen model's BatchNorms into the convolutions before them, for faster inference.

In eval mode a BatchNorm that follows a convolution is a per-channel affine map of its output, so it
can be multiplied into that convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``):
the same function, one memory pass fewer per BatchNorm. A frozen teacher pays for every BatchNorm on every
training step; on a resnet20 at 28x28 folding cut its forward time by about a sixth (docs/results.md).
The logits change only by float rounding (about 1e-6 of their size).

Only pairs where the BatchNorm reads nothing but the convolution's output are folded: in the CIFAR
ResNets every BatchNorm (stem, both convolutions of a block, the projection shortcut), in the Wide
ResNets the one between a block's two convolutions (the others normalise a block's input, which the
shortcut also reads), in the VGGs, MobileNetV2, the ShuffleNets and ResNet50 every BatchNorm (each is
registered right after the convolution it normalises). Other models (timm's) are left as they are.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from kdforaa.models.bottleneck_resnet import ResNet50
from kdforaa.models.cifar_resnet import BasicBlock, CifarResNet
from kdforaa.models.mobilenetv2 import MobileNetV2
from kdforaa.models.shufflenet import ShuffleNetV1, ShuffleNetV2
from kdforaa.models.vgg import VGG
from kdforaa.models.wrn import PreActBlock

#: families in which every BatchNorm directly follows, among its parent's children, the convolution whose
#: output alone it normalises
_NORM_AFTER_ITS_CONV = (VGG, MobileNetV2, ShuffleNetV1, ShuffleNetV2, ResNet50)


def _fold(parent: nn.Module, conv: str, norm: str) -> None:
    """Replace ``parent.<conv>`` by the folded convolution and ``parent.<norm>`` by an identity."""
    setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, norm)))
    setattr(parent, norm, nn.Identity())


def _fold_adjacent(model: nn.Module) -> int:
    """Fold every (Conv2d, BatchNorm2d) pair of consecutive children, in every module of ``model``."""
    folded = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(children, children[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                _fold(parent, conv_name, norm_name)
                folded += 1
    return folded


def fold_batch_norms(model: nn.Module) -> int:
    """Fold, in place, every BatchNorm of ``model`` (in eval mode) that follows a convolution alone.

    Returns how many were folded (0 for a model this does not know). The model must not train again.
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode: folded BatchNorms no longer learn")
    if isinstance(model, _NORM_AFTER_ITS_CONV):
        return _fold_adjacent(model)
    folded = 0
    for module in list(model.modules()):  # a list: the loop replaces children
        if isinstance(module, CifarResNet):
            _fold(module.stem, "0", "1")
            folded += 1
        elif isinstance(module, BasicBlock):
            _fold(module, "conv1", "bn1")
            _fold(module, "conv2", "bn2")
            folded += 2
            if isinstance(module.shortcut, nn.Sequential):
                _fold(module.shortcut, "0", "1")
                folded += 1
        elif isinstance(module, PreActBlock):
            _fold(module, "conv1", "bn2")
            folded += 1
    return folded
