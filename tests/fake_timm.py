"""A stand-in ``timm`` module for the CPU suite, where the real one cannot be imported (its torchvision
does not load beside this torch build): one model, "tiny", with just the interface kdforaa uses
(``is_model``, ``create_model``; ``forward_features``, ``forward_head``, ``get_classifier``,
``num_features`` on the model). Tests install it with :func:`install`; tests/models/test_timm_real.py
runs the same paths against the real timm where it imports."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn


class TinyTimmNet(nn.Module):
    """A conv, global pooling and a linear head, named as timm names them (``conv_stem``, ``fc``)."""

    num_features = 8

    def __init__(self, in_chans: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv_stem = nn.Conv2d(in_chans, self.num_features, 3, padding=1)
        self.bn = nn.BatchNorm2d(self.num_features)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_stem(x)).relu()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled if pre_logits else self.fc(pooled)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass
class FakeTimm:
    """What the fake knows and saw: the pretrained weights' class count and channels, whether the
    "download" fails, and every ``create_model`` call."""

    pretrained_classes: int = 10
    pretrained_channels: int = 1
    offline: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)

    def pretrained_model(self) -> TinyTimmNet:
        """The "pretrained" tiny net: fixed weights, drawn from a private generator."""
        with torch.random.fork_rng():
            torch.manual_seed(1234)
            model = TinyTimmNet(self.pretrained_channels, self.pretrained_classes)
            with torch.no_grad():
                model.bn.running_mean.uniform_(-0.5, 0.5)
                model.bn.running_var.uniform_(0.5, 2.0)
        return model

    def create_model(self, name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        self.calls.append({"name": name, "pretrained": pretrained, **kwargs})
        if not pretrained:
            return TinyTimmNet(kwargs["in_chans"], kwargs["num_classes"])
        if self.offline:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")
        return self.pretrained_model()


def install(monkeypatch: pytest.MonkeyPatch) -> FakeTimm:
    """Make ``import timm`` give the fake (for the test's duration); returns its state."""
    fake = FakeTimm()
    module = types.ModuleType("timm")
    module.is_model = lambda name: name == "tiny"
    module.create_model = fake.create_model
    monkeypatch.setitem(sys.modules, "timm", module)
    return fake
