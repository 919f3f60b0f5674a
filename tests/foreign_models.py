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
