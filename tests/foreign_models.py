"""Reference networks in RepDistiller's and mdistiller's CIFAR layout, and checkpoints saved their way.

Written for the tests from the documented module names and block semantics of those projects
(models/resnet.py and models/wrn.py of HobbitLong/RepDistiller, mdistiller/models/cifar/ of
megvii-research/mdistiller, read for their names only):

- ResNet: ``conv1``, ``bn1`` (the stem), ``layer1..3`` of basic blocks ``conv1, bn1, conv2, bn2`` with a
  ``downsample`` = (1x1 strided conv, BatchNorm) where a block changes width or stride, then ``fc``;
  a block is ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.
- Wide ResNet: ``conv1``, ``block1..3`` each holding ``layer`` = pre-activation blocks ``bn1, conv1,
  bn2, conv2`` with a ``convShortcut`` (1x1 strided conv of the activated input) where the width
  changes, then ``bn1`` (the final BatchNorm) and ``fc``.

Both pool globally (their 8x8 average pool is global at 32x32 inputs) and classify with ``fc``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESNETS = {
    **{f"resnet{d}": (d, (16, 16, 32, 64)) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": (8, (32, 64, 128, 256)),
    "resnet32x4": (32, (32, 64, 128, 256)),
}
WIDE_RESNETS = {
    f"wrn_{d}_{k}": (d, k) for d, k in ((16, 1), (16, 2), (16, 4), (28, 10), (40, 1), (40, 2), (40, 4))
}


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class ForeignBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, 3), nn.BatchNorm2d(cout)
        changes = stride != 1 or cin != cout
        self.downsample = (
            nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)) if changes else None
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ForeignResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple[int, ...], num_classes: int, in_channels: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1, self.bn1 = _conv(in_channels, widths[0], 3), nn.BatchNorm2d(widths[0])
        for stage in (1, 2, 3):
            cin, cout, stride = widths[stage - 1], widths[stage], 1 if stage == 1 else 2
            blocks = [ForeignBasicBlock(cin, cout, stride)] + [
                ForeignBasicBlock(cout, cout, 1) for _ in range(n - 1)
            ]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ForeignWideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv(cin, cout, 3, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv(cout, cout, 3)
        self.convShortcut = _conv(cin, cout, 1, stride) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        activated = torch.relu(self.bn1(x))
        y = self.conv2(torch.relu(self.bn2(self.conv1(activated))))
        return y + (x if self.convShortcut is None else self.convShortcut(activated))


class ForeignWideGroup(nn.Module):
    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class ForeignWideResNet(nn.Module):
    def __init__(self, depth: int, k: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        n, widths = (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k)
        self.conv1 = _conv(in_channels, 16, 3)
        for stage in (1, 2, 3):
            cin, cout, stride = widths[stage - 1], widths[stage], 1 if stage == 1 else 2
            blocks = [ForeignWideBlock(cin, cout, stride)] + [
                ForeignWideBlock(cout, cout, 1) for _ in range(n - 1)
            ]
            setattr(self, f"block{stage}", ForeignWideGroup(blocks))
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(torch.relu(self.bn1(x)), 1).flatten(1))


def foreign_model(name: str, num_classes: int = 100, in_channels: int = 3, seed: int = 0) -> nn.Module:
    """The zoo architecture ``name`` in the foreign layout, in eval mode, with every weight and
    BatchNorm statistic random (so that a misplaced tensor shows in the logits)."""
    torch.manual_seed(seed)
    if name in RESNETS:
        model: nn.Module = ForeignResNet(*RESNETS[name], num_classes, in_channels)
    else:
        model = ForeignWideResNet(*WIDE_RESNETS[name], num_classes, in_channels)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(123)
            elif isinstance(module, nn.Linear):
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def save_repdistiller_checkpoint(model: nn.Module, path: Path, legacy: bool = False) -> Path:
    """Save ``model`` as RepDistiller's train_teacher.py does: ``{"epoch", "model", "accuracy", "optimizer"}``
    (``legacy``: torch's pre-1.6 file format, as their published teachers were written)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    state = {"epoch": 240, "model": model.state_dict(), "accuracy": 77.5, "optimizer": optimizer.state_dict()}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


# ------------------------------------------------------------------ the zoo that shares RepDistiller's names
# RepDistiller's models/vgg.py (vgg*_bn), models/mobilenetv2.py (mobile_half), models/ShuffleNetv1.py,
# models/ShuffleNetv2.py and models/resnetv2.py (ResNet50), read for their module names and layer sizes:
# our modules carry the same names, so a checkpoint of theirs loads under an identity mapping.
# ``repdistiller_shapes`` spells out the state dict such a checkpoint holds (written here from their
# module structure, not from ours).
Shapes = dict[str, tuple[int, ...]]
SAME_NAMES = ("vgg8", "vgg11", "vgg13", "mobilenetv2", "shufflenetv1", "shufflenetv2", "resnet50")


def _conv_shapes(name: str, cin: int, cout: int, kernel: int, groups: int = 1, bias: bool = False) -> Shapes:
    shapes = {f"{name}.weight": (cout, cin // groups, kernel, kernel)}
    return shapes | ({f"{name}.bias": (cout,)} if bias else {})


def _bn_shapes(name: str, channels: int) -> Shapes:
    stats = ("weight", "bias", "running_mean", "running_var")
    return {f"{name}.{stat}": (channels,) for stat in stats} | {f"{name}.num_batches_tracked": ()}


def _conv_bn_shapes(conv: str, bn: str, cin: int, cout: int, kernel: int, groups: int = 1) -> Shapes:
    return _conv_shapes(conv, cin, cout, kernel, groups) | _bn_shapes(bn, cout)


def _linear_shapes(name: str, features: int, classes: int) -> Shapes:
    return {f"{name}.weight": (classes, features), f"{name}.bias": (classes,)}


def _vgg_shapes(convs: tuple[int, ...], classes: int, cin: int) -> Shapes:
    """``block{i}`` = [Conv2d(bias), BatchNorm2d, ReLU] * convs[i], minus the last ReLU; 64..512 wide."""
    shapes: Shapes = {}
    for block, (count, width) in enumerate(zip(convs, (64, 128, 256, 512, 512), strict=True)):
        for j in range(count):
            shapes |= _conv_shapes(f"block{block}.{3 * j}", cin, width, 3, bias=True)
            shapes |= _bn_shapes(f"block{block}.{3 * j + 1}", width)
            cin = width
    return shapes | _linear_shapes("classifier", 512, classes)


def _mobilenetv2_shapes(classes: int, cin: int) -> Shapes:
    """mobile_half: width 0.5 of (t, c, n, s) = (1,16,1,1) (6,24,2,1) (6,32,3,2) (6,64,4,2) (6,96,3,1)
    (6,160,3,2) (6,320,1,1); stem 32*0.5 = 16; conv2 to 1280; classifier = Sequential(Linear)."""
    shapes = _conv_bn_shapes("conv1.0", "conv1.1", cin, 16, 3)
    width = 16
    settings = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)]
    for stage, (t, c, n) in enumerate(settings):
        for block in range(n):
            out, hidden, prefix = c // 2, width * t, f"blocks.{stage}.{block}.conv"
            shapes |= _conv_bn_shapes(f"{prefix}.0", f"{prefix}.1", width, hidden, 1)
            shapes |= _conv_bn_shapes(f"{prefix}.3", f"{prefix}.4", hidden, hidden, 3, groups=hidden)
            shapes |= _conv_bn_shapes(f"{prefix}.6", f"{prefix}.7", hidden, out, 1)
            width = out
    shapes |= _conv_bn_shapes("conv2.0", "conv2.1", width, 1280, 1)
    return shapes | _linear_shapes("classifier.0", 1280, classes)


def _shufflev1_shapes(classes: int, cin: int) -> Shapes:
    """ShuffleV1: out_planes 240/480/960, blocks 4/8/4, groups 3; a stage's first block makes
    out - in channels (concatenated with the pooled input); conv1 ungrouped where in_planes == 24."""
    shapes = _conv_bn_shapes("conv1", "bn1", cin, 24, 1)
    width = 24
    for stage, (planes, blocks) in enumerate(((240, 4), (480, 8), (960, 4)), start=1):
        for block in range(blocks):
            out = planes - width if block == 0 else planes
            mid, g, prefix = out // 4, 1 if width == 24 else 3, f"layer{stage}.{block}"
            shapes |= _conv_bn_shapes(f"{prefix}.conv1", f"{prefix}.bn1", width, mid, 1, groups=g)
            shapes |= _conv_bn_shapes(f"{prefix}.conv2", f"{prefix}.bn2", mid, mid, 3, groups=mid)
            shapes |= _conv_bn_shapes(f"{prefix}.conv3", f"{prefix}.bn3", mid, out, 1, groups=3)
            width = planes
    return shapes | _linear_shapes("linear", 960, classes)


def _shufflev2_shapes(classes: int, cin: int) -> Shapes:
    """ShuffleV2 (net_size 1): out_channels 116/232/464/1024, blocks 3/7/3 after each DownBlock."""
    shapes = _conv_bn_shapes("conv1", "bn1", cin, 24, 1)
    width = 24
    for stage, (out, blocks) in enumerate(((116, 3), (232, 7), (464, 3)), start=1):
        mid, down = out // 2, f"layer{stage}.0"
        convs = [
            (width, width, 3, width),
            (width, mid, 1, 1),
            (width, mid, 1, 1),
            (mid, mid, 3, mid),
            (mid, mid, 1, 1),
        ]
        for index, (cin_, cout, kernel, groups) in enumerate(convs, start=1):
            shapes |= _conv_bn_shapes(f"{down}.conv{index}", f"{down}.bn{index}", cin_, cout, kernel, groups)
        for block in range(1, blocks + 1):
            prefix = f"layer{stage}.{block}"
            for index, (kernel, groups) in enumerate(((1, 1), (3, mid), (1, 1)), start=1):
                shapes |= _conv_bn_shapes(
                    f"{prefix}.conv{index}", f"{prefix}.bn{index}", mid, mid, kernel, groups
                )
        width = out
    shapes |= _conv_bn_shapes("conv2", "bn2", 464, 1024, 1)
    return shapes | _linear_shapes("linear", 1024, classes)


def _resnet50_shapes(classes: int, cin: int) -> Shapes:
    """ResNet(Bottleneck, [3, 4, 6, 3]): conv1 3x3 to 64, layer1..4 of planes 64..512 (expansion 4;
    ``shortcut`` = 1x1 conv + BN where stride != 1 or in != 4 * planes), linear on 2048."""
    shapes = _conv_bn_shapes("conv1", "bn1", cin, 64, 3)
    width = 64
    for stage, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            shapes |= _conv_bn_shapes(f"{prefix}.conv1", f"{prefix}.bn1", width, planes, 1)
            shapes |= _conv_bn_shapes(f"{prefix}.conv2", f"{prefix}.bn2", planes, planes, 3)
            shapes |= _conv_bn_shapes(f"{prefix}.conv3", f"{prefix}.bn3", planes, 4 * planes, 1)
            if (stride if block == 0 else 1) != 1 or width != 4 * planes:
                shapes |= _conv_bn_shapes(
                    f"{prefix}.shortcut.0", f"{prefix}.shortcut.1", width, 4 * planes, 1
                )
            width = 4 * planes
    return shapes | _linear_shapes("linear", 2048, classes)


def repdistiller_shapes(name: str, num_classes: int = 100, in_channels: int = 3) -> Shapes:
    """The state dict (key -> shape) of RepDistiller's model for our zoo name ``name``."""
    vgg = {"vgg8": (1, 1, 1, 1, 1), "vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2)}
    if name in vgg:
        return _vgg_shapes(vgg[name], num_classes, in_channels)
    builders = {
        "mobilenetv2": _mobilenetv2_shapes,
        "shufflenetv1": _shufflev1_shapes,
        "shufflenetv2": _shufflev2_shapes,
        "resnet50": _resnet50_shapes,
    }
    return builders[name](num_classes, in_channels)


def repdistiller_state(
    name: str, num_classes: int = 100, in_channels: int = 3, seed: int = 0
) -> dict[str, Tensor]:
    """A random state dict in RepDistiller's names and shapes for ``name`` (BatchNorm variances positive,
    ``num_batches_tracked`` 123), as its train_teacher.py would have saved one after training."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in repdistiller_shapes(name, num_classes, in_channels).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(123)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state
