"""Folding a frozen model's BatchNorms into its convolutions changes its outputs only by float rounding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdforaa.models.folding import fold_batch_norms
from kdforaa.models.registry import build_model


def trained_like(name: str) -> nn.Module:
    """A zoo model with BatchNorm statistics and affine parameters far from their initial values."""
    torch.manual_seed(0)
    model = build_model(name, 10, 3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.3, 3.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "pairs"),
    [
        ("resnet8", 1 + 3 * 2 + 2),
        ("resnet20", 1 + 9 * 2 + 2),
        ("wrn_16_2", 6),
        ("vgg8", 5),  # every BatchNorm: one per convolution
        ("mobilenetv2", 1 + 17 * 3 + 1),  # stem, 17 blocks of 3 convolutions, the last 1x1
        ("shufflenetv1", 1 + 16 * 3),
        ("shufflenetv2", 1 + 3 * 5 + 13 * 3 + 1),  # stem, 3 downsampling + 13 basic units, the last 1x1
        ("resnet50", 1 + 16 * 3 + 4),  # stem, 16 bottlenecks, 4 projection shortcuts
    ],
)
def test_folded_logits_and_features_equal_the_model_up_to_rounding(name, pairs):
    model = trained_like(name)
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model(x, return_features=True)
        assert fold_batch_norms(model) == pairs
        folded_logits, folded_feats = model(x, return_features=True)
    torch.testing.assert_close(folded_logits, logits, rtol=1e-4, atol=1e-5)
    for stage, value in feats.items():  # rounding grows with the maps' scale (ResNet50's reach ~100)
        scale = max(1.0, value.abs().max().item())
        torch.testing.assert_close(folded_feats[stage], value, rtol=1e-4, atol=1e-5 * scale)
    norms_left = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms_left) == sum(isinstance(m, nn.BatchNorm2d) for m in trained_like(name).modules()) - pairs


def test_a_model_it_does_not_know_is_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    assert fold_batch_norms(model) == 0
    assert isinstance(model[1], nn.BatchNorm2d)


def test_a_training_model_is_refused():
    with pytest.raises(ValueError, match="eval mode"):  # an internal contract, not user input
        fold_batch_norms(build_model("resnet8", 10, 1))
