"""Every policy on the 28x56 images of fashion-mnist-pairs, against Pillow image by image.

The op-by-op Pillow comparisons of test_ops.py run on these images too (``image_batch`` includes
``fashion_pairs``). Here each policy's whole chain is replayed per image: its colour ops in their
sampled order through Pillow's own functions, then its one warp through Pillow's ``Image.transform``
(nearest, the policy's fill) with the inverse map the policy composed from crop and its geometric ops
(each of those maps is checked against Pillow's rotate/affine on non-square images in test_ops.py).
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from test_ops import solarize_add_reference

from kdforaa.augment.op_table import GEOMETRIC_OPS, op_argument
from kdforaa.augment.pipeline import AugmentPipeline
from kdforaa.augment.plan import inverse_maps
from kdforaa.augment.policies import AutoAugment, RandAugment, SingleOp, TrivialAugment
from kdforaa.augment.random import make_keys

PILLOW_COLOUR = {
    "autocontrast": lambda img, a: ImageOps.autocontrast(img),
    "equalize": lambda img, a: ImageOps.equalize(img),
    "invert": lambda img, a: ImageOps.invert(img),
    "posterize": lambda img, a: ImageOps.posterize(img, int(a)),
    "solarize": lambda img, a: ImageOps.solarize(img, a),
    "solarize_add": lambda img, a: solarize_add_reference(img, a, 128),
    "color": lambda img, a: ImageEnhance.Color(img).enhance(a),
    "contrast": lambda img, a: ImageEnhance.Contrast(img).enhance(a),
    "brightness": lambda img, a: ImageEnhance.Brightness(img).enhance(a),
    "sharpness": lambda img, a: ImageEnhance.Sharpness(img).enhance(a),
    "identity": lambda img, a: img,
}

POLICIES = {
    "randaugment-10": lambda: RandAugment(2, 10.0),
    "randaugment-15": lambda: RandAugment(2, 15.0, fill=128),
    "autoaugment-imagenet": lambda: AutoAugment("imagenet"),
    "autoaugment-cifar10": lambda: AutoAugment("cifar10"),
    "autoaugment-svhn": lambda: AutoAugment("svhn"),
    "trivialaugment": lambda: TrivialAugment(),
}


def pillow_chain(x: torch.Tensor, params, fill: int, pillow) -> torch.Tensor:
    """Each image's colour ops through Pillow in slot order, then one Pillow affine warp."""
    height, width = x.shape[-2:]
    maps = inverse_maps(params, height, width)
    out = []
    for i in range(len(x)):
        img = pillow.to_image(x[i])
        for slot in range(params.ops.shape[1]):
            name = params.op_names[int(params.ops[i, slot])]
            if not params.applied[i, slot] or name in GEOMETRIC_OPS:
                continue
            level, sign = params.levels[i, slot : slot + 1], params.signs[i, slot : slot + 1]
            argument = op_argument(name, level, sign, height=height, width=width)
            img = PILLOW_COLOUR[name](img, float(argument[0]) if argument is not None else 0.0)
        if maps is not None:
            data = tuple(float(v) for v in maps[i, :2].ravel())
            img = img.transform((width, height), Image.Transform.AFFINE, data, Image.Resampling.NEAREST, fill)
        out.append(pillow.to_tensor(img))
    return torch.stack(out)


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("backend", ["torch", "native"])
def test_every_policy_with_crop_on_pairs_is_the_pillow_chain(name, backend, fashion_pairs, pillow):
    policy = POLICIES[name]()
    pipeline = AugmentPipeline(policy, 28, 56, crop_padding=4, flip=False)
    x = fashion_pairs.repeat(6, 1, 1, 1)
    params = pipeline.sample(make_keys(7, 0, torch.arange(len(x))))
    out = pipeline.apply(x, params, backend=backend)
    expected = pillow_chain(x, params, policy.fill, pillow)
    assert torch.equal(out, expected)


def test_translate_x_moves_a_pair_by_a_share_of_its_width(fashion_pairs, pillow):
    """Level 10 shifts by 0.45 of the width: 25.2 px of a 56 px pair, not of its 28 px height."""
    params = SingleOp("translate_x", 10.0).sample(make_keys(0, 0, torch.arange(8)))
    out = SingleOp("translate_x", 10.0).apply(fashion_pairs, params)
    shift = params.signs[:, 0].double() * 25.2
    nearest = Image.Resampling.NEAREST
    expected = pillow.apply(
        fashion_pairs,
        lambda img, s: img.transform((56, 28), Image.Transform.AFFINE, (1, 0, s, 0, 1, 0), nearest),
        shift,
    )
    assert torch.equal(out, expected)
