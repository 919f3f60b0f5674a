"""Model names, one-line descriptions, input validation and the optional ``timm:`` prefix."""

from __future__ import annotations

import sys

import pytest
import torch

from fake_timm import install as install_fake_timm
from kdforaa.errors import BadInput
from kdforaa.models import TimmClassifier, WideResNet, available_models, build_model, describe_model

REQUIRED = [
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "wrn_16_2",
    "wrn_16_4",
    "wrn_28_10",
    "wrn_40_2",
    "wrn_40_4",
]


def test_available_models_lists_the_zoo() -> None:
    names = available_models()
    assert set(REQUIRED) <= set(names)
    assert len(names) == len(set(names))


def test_unknown_name_is_bad_input_listing_the_names() -> None:
    with pytest.raises(BadInput, match="unknown model 'resnet19'") as error:
        build_model("resnet19", num_classes=10, in_channels=1)
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in available_models()) and "timm:<name>" in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0, "in_channels": 1}, "num_classes >= 1"),
        ({"num_classes": 10, "in_channels": 0}, "in_channels >= 1"),
        ({"num_classes": 10, "in_channels": 1, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"num_classes": 10, "in_channels": 1, "dropout": 0.1}, "has no dropout"),
    ],
)
def test_impossible_requests_are_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        build_model("resnet8", **kwargs)


def test_dropout_reaches_wide_resnet_blocks() -> None:
    model = build_model("wrn_16_2", num_classes=10, in_channels=1, dropout=0.3)
    assert isinstance(model, WideResNet)
    assert {block.dropout for stage in (model.stage1, model.stage2, model.stage3) for block in stage} == {0.3}


def test_describe_model_is_one_line_with_family_shape_and_parameter_count() -> None:
    assert describe_model("resnet20") == (
        "resnet20: CIFAR ResNet, depth 20, widths 16/16/32/64, 0.27M parameters (10 classes, 1 channel)"
    )
    assert describe_model("wrn_40_2") == (
        "wrn_40_2: Wide ResNet, depth 40, widen factor 2, 2.24M parameters (10 classes, 1 channel)"
    )
    for name in available_models():
        line = describe_model(name)
        assert line.startswith(f"{name}: ") and "\n" not in line


def test_describe_model_draws_no_random_numbers() -> None:
    before = torch.get_rng_state()
    describe_model("resnet8")
    assert torch.equal(torch.get_rng_state(), before)


def test_describe_unknown_model_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown model"):
        describe_model("nope")


def test_timm_prefix_builds_a_model_when_timm_is_installed_and_explains_otherwise() -> None:
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(BadInput, match=r"pip install 'kdforaa\[timm\]'"):
            build_model("timm:resnet18", num_classes=10, in_channels=1)
        return
    model = build_model("timm:resnet18", num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        logits, feats = model(torch.randn(2, 1, 32, 32), return_features=True)
    assert logits.shape == (2, 10)
    assert feats["pooled"].shape == (2, model.stage_channels["pooled"])


def test_timm_prefix_without_timm_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail even where it is installed
    with pytest.raises(BadInput, match=r"needs timm, which is not installed: pip install 'kdforaa\[timm\]'"):
        build_model("timm:resnet18", num_classes=10, in_channels=1)


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The stand-in `timm` (tests/fake_timm.py); returns the create_model calls it saw."""
    return install_fake_timm(monkeypatch).calls


def test_timm_model_is_wrapped_to_our_forward_contract(fake_timm: list[dict]) -> None:
    model = build_model("timm:tiny", num_classes=7, in_channels=1, dropout=0.2)
    assert isinstance(model, TimmClassifier)
    assert fake_timm == [
        {"name": "tiny", "pretrained": False, "in_chans": 1, "num_classes": 7, "drop_rate": 0.2}
    ]
    assert model.stage_channels == {"pooled": 8}
    x = torch.randn(2, 1, 28, 28)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (2, 7) and list(feats) == ["pooled"] and feats["pooled"].shape == (2, 8)
    torch.testing.assert_close(model(x), logits)


def test_unknown_timm_model_is_bad_input(fake_timm: list[dict]) -> None:
    with pytest.raises(BadInput, match="timm has no model 'huge'"):
        build_model("timm:huge", num_classes=10, in_channels=1)
    assert fake_timm == []
