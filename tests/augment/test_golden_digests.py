"""Recorded bytes: every policy, on real Fashion-MNIST images and fixed keys, gives the same output as
when these digests were recorded (before the augment package was reorganised around its op table).

A change that alters any output byte of ``apply(x, sample(keys))`` fails here, on either CPU path
(the native kernels and the torch path, ``KDFORAA_NATIVE=0``). An intended change of behaviour must
say so and record new digests with ``python tests/augment/test_golden_digests.py``.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from kdforaa.augment import AutoAugment, RandAugment, TrivialAugment
from kdforaa.augment.pipeline import AugmentPipeline
from kdforaa.augment.random import make_keys

POLICIES = {
    "randaugment-2-9": lambda: RandAugment(2, 9),
    "randaugment-2-15": lambda: RandAugment(2, 15),
    "autoaugment-imagenet": lambda: AutoAugment("imagenet"),
    "autoaugment-cifar10": lambda: AutoAugment("cifar10"),
    "autoaugment-svhn": lambda: AutoAugment("svhn"),
    "trivialaugment": lambda: TrivialAugment(),
}
# (channels, interpolation): grey and composed-RGB images; bilinear runs on the torch path only
VARIANTS = {"grey": (1, "nearest"), "rgb": (3, "nearest"), "rgb-bilinear": (3, "bilinear")}

DIGESTS = {
    "randaugment-2-9/grey": "21dd6652feda72e465b17eea4eca1f575f73b3c8e4dfc19730b4c7cbfa575947",
    "randaugment-2-9/rgb": "7575bb40dc25fcb83809cc25972b41f965d8816f82ba917bc379041f2eedd5a6",
    "randaugment-2-9/rgb-bilinear": "d05c296a45a8cfc8ae1e38faae2e33cff77a3feeb2b563024e3342f180aafe28",
    "randaugment-2-15/grey": "87f7dd6a7cecf2fcf2c6f5dab2ec0481b781ff82f477440716f8c11e9568354e",
    "randaugment-2-15/rgb": "e1946cf3e6a259c5aceafa239f7a17fe8fb0cd31155b109d00fa15483a0a0d8d",
    "randaugment-2-15/rgb-bilinear": "55c68763b5d04a2564b98c5cbbeeb76966444dba218a4d095666f749b015f0ac",
    "autoaugment-imagenet/grey": "b605b0c3e638f5c331e1a65d67a5b379c3dbcee65351b46ea091f328dffd2a99",
    "autoaugment-imagenet/rgb": "298514e92bd8c1c4dabefc85da9e1434e1b07493267034b1ad285e236611ded7",
    "autoaugment-imagenet/rgb-bilinear": "ecde5162fa6e27055fd23252eb9b49af6464c9739b9a466b5b3454055bba4af8",
    "autoaugment-cifar10/grey": "2ba21185b6b7f42c21361b63cf385d510614d640e282610e90dae451934c599c",
    "autoaugment-cifar10/rgb": "2fda390407508813bc8ddbaf07b622750c8b12ece8210fc9f1cb9b5a79023cf6",
    "autoaugment-cifar10/rgb-bilinear": "77d2e290f9df2f54c01c1bc856f8252042b86062a4b5036a3dc7fa7d65829347",
    "autoaugment-svhn/grey": "6085ad9120e4955e55ededad3ba90ff2e64c47e80641da8419f64f4f7c991eb9",
    "autoaugment-svhn/rgb": "1f901d42bbe972a67e08de99899df28b1ac3b3b5e236e1f469b80e364851e737",
    "autoaugment-svhn/rgb-bilinear": "1a05c2d9349ce6d2fd8aee775d6f43341a2e7d1dc4ebc6aca2a228a95f309741",
    "trivialaugment/grey": "e57b37caeed5f565626a31e026b583afd23439b528ad7811031597c512d46d68",
    "trivialaugment/rgb": "436642a4d3af3973094eb307632cc73558b6c350bd86c86bade373b2a1236f90",
    "trivialaugment/rgb-bilinear": "77e75c639a56e29fcc6f20b72d4a025688655dafce5201817b5fa8a8279b9ae3",
}


def _images(fashion_test_images: torch.Tensor, channels: int) -> torch.Tensor:
    """64 real images ``(64,C,28,28)``; RGB image ``i`` has test images i, i+64, i+128 as channels."""
    grey = fashion_test_images[:192, 0]
    if channels == 1:
        return grey[:64, None].clone()
    return torch.stack([grey[0:64], grey[64:128], grey[128:192]], dim=1)


def augmented_digest(fashion_test_images: torch.Tensor, policy: str, variant: str) -> str:
    """sha256 of the augmented batch: crop (pad 4), flip and cutout 8 around ``policy``, fill 17."""
    channels, interpolation = VARIANTS[variant]
    x = _images(fashion_test_images, channels)
    pipeline = AugmentPipeline(
        POLICIES[policy](), 28, 28, crop_padding=4, flip=True, cutout=8, fill=17, interpolation=interpolation
    )
    keys = make_keys(20261206, 3, torch.arange(len(x)) * 7 + 11)
    out = pipeline.apply(x, pipeline.sample(keys))
    return hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest()


CASES = [(p, v) for p in POLICIES for v in VARIANTS]


@pytest.mark.parametrize("path", ["native", "torch"])
@pytest.mark.parametrize(("policy", "variant"), CASES, ids=[f"{p}-{v}" for p, v in CASES])
def test_augmented_bytes_are_the_recorded_ones(policy, variant, path, monkeypatch, fashion_test_images):
    if path == "native":
        if shutil.which("cc") is None:
            pytest.skip("no C compiler (cc): the native path cannot be built here")
        monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    else:
        monkeypatch.setenv("KDFORAA_NATIVE", "0")
    assert augmented_digest(fashion_test_images, policy, variant) == DIGESTS[f"{policy}/{variant}"]


if __name__ == "__main__":  # print the digest table of the code as it is now
    from kdforaa.config import DataConfig
    from kdforaa.data.datasets import load_dataset

    images = load_dataset(DataConfig(name="fashion-mnist", test_limit=300), "test").data
    for policy, variant in CASES:
        print(f'    "{policy}/{variant}": "{augmented_digest(images, policy, variant)}",')
