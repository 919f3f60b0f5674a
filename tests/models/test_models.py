"""The CIFAR ResNets and Wide ResNets: shapes, features, parameter counts, init, autograd, channels_last."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foreign_models import SAME_NAMES
from kdforaa.models import CifarResNet, WideResNet, available_models, build_model

FEATURES = ["stem", "stage1", "stage2", "stage3", "pooled"]
# the CIFAR ResNets and Wide ResNets (test_repdistiller_zoo.py checks the other families' stage layouts)
CHEAP_MODELS = [name for name in available_models() if name not in SAME_NAMES and name != "wrn_28_10"]


def _check_outputs(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Logits and features have the contract's shapes and agree with each other and stage_channels."""
    batch, _, height, width = x.shape
    logits, feats = model(x, return_features=True)
    assert logits.shape == (batch, num_classes)
    assert list(feats) == FEATURES
    assert set(model.stage_channels) == set(FEATURES)
    sizes = {"stem": 1, "stage1": 1, "stage2": 2, "stage3": 4}  # downsampling factor of each map
    for name, factor in sizes.items():
        expected = (batch, model.stage_channels[name], math.ceil(height / factor), math.ceil(width / factor))
        assert feats[name].shape == expected, name
        assert feats[name].min() >= 0, f"{name} is not post-activation"
    assert feats["pooled"].shape == (batch, model.stage_channels["pooled"])
    torch.testing.assert_close(feats["pooled"], feats["stage3"].mean(dim=(2, 3)))
    torch.testing.assert_close(model(x), logits)


@pytest.mark.parametrize("name", CHEAP_MODELS)
@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 10), (3, 100)])
def test_every_model_runs_on_28_and_32_pixel_inputs(name: str, in_channels: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, in_channels=in_channels).eval()
    with torch.no_grad():
        for side in (28, 32):
            _check_outputs(model, torch.randn(2, in_channels, side, side), num_classes)


def test_wrn_28_10_builds_and_runs() -> None:
    """The big one, checked once on a small input."""
    torch.manual_seed(0)
    model = build_model("wrn_28_10", num_classes=10, in_channels=1).eval()
    assert model.stage_channels == {"stem": 16, "stage1": 160, "stage2": 320, "stage3": 640, "pooled": 640}
    with torch.no_grad():
        _check_outputs(model, torch.randn(2, 1, 8, 8), 10)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_2"])
@pytest.mark.parametrize("side", [7, 29, 64])
def test_any_input_size_is_pooled_to_one_vector(name: str, side: int) -> None:
    model = build_model(name, num_classes=5, in_channels=3).eval()
    with torch.no_grad():
        _check_outputs(model, torch.randn(1, 3, side, side), 5)


# Parameter counts for CIFAR-100 (3 channels, 100 classes) as published in the KD literature
# (Tian et al., "Contrastive Representation Distillation", ICLR 2020, Table 1), in millions.
PUBLISHED_CIFAR100_PARAMS = {
    "resnet20": 0.28,
    "resnet32": 0.47,
    "resnet56": 0.86,
    "resnet110": 1.74,
    "resnet8x4": 1.23,
    "resnet32x4": 7.43,
    "wrn_16_2": 0.70,
    "wrn_40_1": 0.57,
    "wrn_40_2": 2.25,
}


def _num_params(name: str, num_classes: int, in_channels: int) -> float:
    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes, in_channels=in_channels)
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize(("name", "millions"), PUBLISHED_CIFAR100_PARAMS.items())
def test_parameter_counts_match_published_cifar100_numbers(name: str, millions: float) -> None:
    assert _num_params(name, 100, 3) == pytest.approx(millions, abs=0.011)


@pytest.mark.parametrize(
    ("name", "millions"), [("resnet20", 0.27), ("resnet56", 0.86), ("resnet32x4", 7.4), ("wrn_40_2", 2.2)]
)
def test_parameter_counts_for_cifar10(name: str, millions: float) -> None:
    assert _num_params(name, 10, 3) == pytest.approx(millions, rel=0.025)


def test_resnet8x4_and_resnet32x4_have_the_wide_layout() -> None:
    for name, blocks in (("resnet8x4", 1), ("resnet32x4", 5)):
        model = build_model(name, num_classes=10, in_channels=3)
        assert model.stage_channels == {"stem": 32, "stage1": 64, "stage2": 128, "stage3": 256, "pooled": 256}
        assert [len(stage) for stage in (model.stage1, model.stage2, model.stage3)] == [blocks] * 3


def test_init_is_deterministic_under_manual_seed() -> None:
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model("resnet8", num_classes=10, in_channels=1).state_dict()

    first, again, other = state(3), state(3), state(4)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_init_is_kaiming_normal_for_convs_and_unit_batchnorm() -> None:
    torch.manual_seed(0)
    model = build_model("resnet32x4", num_classes=10, in_channels=3)
    conv = model.stage3[1].conv1  # 256 -> 256, 3x3: fan_out = 2304, ~590k weights
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    assert conv.weight.mean().abs().item() < 1e-3
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    assert torch.all(model.fc.bias == 0)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "wrn_16_2"])
def test_losses_on_every_feature_backpropagate_to_every_parameter(name: str) -> None:
    """In-place ReLUs and residual adds must not break autograd when features are also used in a loss."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=1).train()
    logits, feats = model(torch.randn(4, 1, 28, 28), return_features=True)
    loss = F.cross_entropy(logits, torch.arange(4)) + sum(f.square().mean() for f in feats.values())
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_2"])
def test_channels_last_gives_the_same_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, expected_feats = model(x, return_features=True)
        model = model.to(memory_format=torch.channels_last)
        logits, feats = model(x.to(memory_format=torch.channels_last), return_features=True)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    for key in FEATURES:
        torch.testing.assert_close(feats[key], expected_feats[key], rtol=1e-4, atol=1e-4)


def test_wrn_dropout_is_active_in_training_only() -> None:
    torch.manual_seed(0)
    model = WideResNet(16, 1, num_classes=10, in_channels=1, dropout=0.3)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        no_dropout = WideResNet(16, 1, num_classes=10, in_channels=1).train()
        torch.testing.assert_close(no_dropout(x), no_dropout(x), rtol=0, atol=0)


def test_wrn_features_are_the_activations_the_next_stage_consumes() -> None:
    torch.manual_seed(0)
    model = WideResNet(16, 2, num_classes=10, in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, feats = model(x, return_features=True)
        torch.testing.assert_close(feats["stem"], F.relu(model.stage1[0].bn1(model.stem(x))))
        stage1_raw = model.stage1(model.stem(x))
        torch.testing.assert_close(feats["stage1"], F.relu(model.stage2[0].bn1(stage1_raw)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CifarResNet(21, (16, 16, 32, 64), 10, 3),
        lambda: CifarResNet(20, (16, 32, 64), 10, 3),
        lambda: WideResNet(20, 2, 10, 3),
        lambda: WideResNet(16, 0, 10, 3),
        lambda: WideResNet(16, 2, 10, 3, dropout=1.0),
    ],
)
def test_impossible_architectures_are_refused(make) -> None:
    with pytest.raises(ValueError):
        make()
