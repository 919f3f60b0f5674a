"""A model that sees low-resolution copies of its input: the resize, the hook, the bounds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import check_resolution, couple_resolution, downsample


def test_downsample_is_antialiased_bilinear_and_commutes_with_normalisation() -> None:
    x = torch.rand(2, 1, 28, 28)
    out = downsample(x, 14)
    expected = F.interpolate(x, size=(14, 14), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(out, expected)
    assert torch.allclose(downsample((x - 0.3) / 0.4, 14), (out - 0.3) / 0.4, atol=1e-5)
    assert downsample(x, 28) is x


def test_coupled_model_sees_the_small_copy_and_keeps_its_state_dict() -> None:
    torch.manual_seed(0)
    plain = build_model("resnet8", 10, 1).eval()
    coupled = build_model("resnet8", 10, 1).eval()
    coupled.load_state_dict(plain.state_dict())
    couple_resolution(coupled, 14, (28, 28))
    seen = []
    coupled.stem.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    x = torch.randn(3, 1, 28, 28)
    logits, feats = coupled(x, return_features=True)
    assert seen == [torch.Size([3, 1, 14, 14])] and feats["stage3"].shape[-2:] == (4, 4)
    assert torch.allclose(logits, plain(downsample(x, 14)))
    assert coupled.state_dict().keys() == plain.state_dict().keys()
    assert couple_resolution(plain, None, (28, 28)) is plain and not plain._forward_pre_hooks


@pytest.mark.parametrize("size", [0, 29])
def test_resolution_must_fit_the_images(size: int) -> None:
    with pytest.raises(
        BadInput, match=f"student_resolution={size} must be between 1 and 28, .* 28x28 images"
    ):
        check_resolution(size, (28, 28))
