import io

import pytest
import torch
import torch.nn.functional as F

from kdforaa.augment.op_table import OP_NAMES
from kdforaa.augment.params import AugParams
from kdforaa.augment.pipeline import AugmentPipeline, build_augment, build_policy
from kdforaa.augment.policies import Augmentation, AutoAugment, Policy, RandAugment, SingleOp, TrivialAugment
from kdforaa.augment.random import make_keys
from kdforaa.config import AugmentConfig
from kdforaa.errors import BadInput

H, W = 13, 17  # odd and different, so that a swapped height/width shows


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(1, 256, (64, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def keys_for(n, seed=0, epoch=0):
    return make_keys(seed, epoch, torch.arange(n))


def plain(**options) -> AugmentPipeline:
    return build_augment(
        AugmentConfig(**{"policy": "none", "crop_padding": 0, "flip": False, **options}), H, W
    )


def test_nothing_configured_is_the_identity(images):
    pipeline = plain()
    params = pipeline.sample(keys_for(64))
    assert params.crop is None and params.flip is None and params.cutout is None
    assert torch.equal(pipeline.apply(images, params), images)
    assert params.strongest_level.tolist() == [0.0] * 64


def test_crop_equals_zero_padding_then_cropping(images):
    pipeline = plain(crop_padding=4)
    params = pipeline.sample(keys_for(64))
    assert params.crop.min() == -4 and params.crop.max() == 4
    padded = F.pad(images, (4, 4, 4, 4))
    expected = torch.stack(
        [padded[i, :, 4 + t : 4 + t + H, 4 + l : 4 + l + W] for i, (t, l) in enumerate(params.crop.tolist())]
    )
    assert torch.equal(pipeline.apply(images, params), expected)


def test_flip_mirrors_the_flagged_samples(images):
    pipeline = plain(flip=True)
    params = pipeline.sample(keys_for(64))
    assert 10 < int(params.flip.sum()) < 54
    expected = torch.where(params.flip.view(-1, 1, 1, 1), images.flip(-1), images)
    assert torch.equal(pipeline.apply(images, params), expected)


def test_crop_then_flip_in_one_warp(images):
    pipeline = plain(crop_padding=3, flip=True)
    params = pipeline.sample(keys_for(64))
    cropped = plain(crop_padding=3).apply(images, AugParams(**{**params.to_dict(), "flip": None}))
    expected = torch.where(params.flip.view(-1, 1, 1, 1), cropped.flip(-1), cropped)
    assert torch.equal(pipeline.apply(images, params), expected)


def test_cutout_erases_a_square_clipped_to_the_image(images):
    pipeline = plain(cutout=6)
    params = pipeline.sample(keys_for(64))
    top, left, bottom, right = params.cutout.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (bottom <= H).all() and (right <= W).all()
    assert ((bottom - top) <= 6).all() and ((right - left) <= 6).all() and (bottom > top).all()
    assert ((bottom - top) == 6).any() and ((bottom - top) < 6).any()
    out = pipeline.apply(images, params)
    for i, (t, l, b, r) in enumerate(params.cutout.tolist()):
        expected = images[i].clone()
        expected[:, t:b, l:r] = 0
        assert torch.equal(out[i], expected)


def test_full_pipeline_replays_and_survives_saving(images):
    cfg = AugmentConfig(policy="randaugment", num_ops=2, magnitude=12, crop_padding=2, flip=True, cutout=5)
    pipeline = build_augment(cfg, H, W)
    params = pipeline.sample(keys_for(64, seed=3))
    out = pipeline.apply(images, params)
    buffer = io.BytesIO()
    torch.save(params.to_dict(), buffer)
    buffer.seek(0)
    loaded = AugParams.from_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(loaded.crop, params.crop) and torch.equal(loaded.flip, params.flip)
    assert torch.equal(pipeline.apply(images, loaded), out)
    described = [params.describe(i) for i in range(64)]
    assert any("flip" in d for d in described) and any("cutout" in d for d in described)
    assert any("crop top=" in d for d in described)
    # crop, flip and cutout do not count as augmentation strength
    assert torch.equal(params.strongest_level, pipeline.policy.sample(keys_for(64, seed=3)).strongest_level)


def test_same_sample_same_image_in_any_batch(images):
    pipeline = build_augment(AugmentConfig(policy="trivialaugment", cutout=4), H, W)
    big = pipeline.apply(images, pipeline.sample(make_keys(1, 5, torch.arange(64))))
    picked = torch.tensor([3, 30, 31, 60])
    small = pipeline.apply(images[picked], pipeline.sample(make_keys(1, 5, picked)))
    assert torch.equal(small, big[picked])


def test_build_policy_follows_the_config():
    assert build_policy(AugmentConfig(policy="none")) is None
    rand = build_policy(
        AugmentConfig(policy="randaugment", num_ops=3, magnitude=15, magnitude_std=0.5, fill=9)
    )
    assert isinstance(rand, RandAugment)
    assert (rand.num_ops, rand.magnitude, rand.magnitude_std, rand.fill) == (3, 15.0, 0.5, 9)
    auto = build_policy(AugmentConfig(policy="autoaugment", autoaugment_policy="svhn", magnitude=18))
    assert isinstance(auto, AutoAugment) and auto.policy == "svhn" and auto.magnitude_scale == 2.0
    trivial = build_policy(AugmentConfig(policy="trivialaugment", interpolation="bilinear"))
    assert isinstance(trivial, TrivialAugment) and trivial.interpolation == "bilinear"


def test_randaugment_ops_restricts_the_draw():
    rand = build_policy(AugmentConfig(policy="randaugment", ops=["rotate", "solarize"]))
    drawn = {OP_NAMES[i] for i in rand.sample(keys_for(200)).ops.flatten().tolist()}
    assert drawn == {"rotate", "solarize"}
    with pytest.raises(BadInput, match="ops"):
        build_policy(AugmentConfig(policy="randaugment", ops=["rotat"]))


def test_autoaugment_default_magnitude_is_the_published_policy():
    keys = keys_for(300)
    built = build_policy(AugmentConfig(policy="autoaugment", autoaugment_policy="cifar10")).sample(keys)
    assert torch.equal(built.levels, AutoAugment("cifar10").sample(keys).levels)


def test_single_op_applies_one_op_with_both_signs(images):
    policy = SingleOp("shear_x", 10.0)
    params = policy.sample(keys_for(64))
    assert (params.ops == OP_NAMES.index("shear_x")).all() and (params.levels == 10.0).all()
    assert set(params.signs.flatten().tolist()) == {-1, 1}
    assert not torch.equal(policy.apply(images, params), images)
    with pytest.raises(ValueError, match="op='sheer_x'"):
        SingleOp("sheer_x", 10.0)


def test_the_pipeline_is_an_augmentation_not_a_policy():
    """It samples for itself (policy draws plus crop, flip, cutout): it has no ``_draw`` to override."""
    pipeline = build_augment(AugmentConfig(policy="trivialaugment"), 8, 8)
    assert isinstance(pipeline, Augmentation) and not isinstance(pipeline, Policy)


def test_images_of_another_size_are_rejected(images):
    pipeline = plain(cutout=4)
    with pytest.raises(ValueError, match=r"built for \(13, 17\)"):
        pipeline(images[:, :, :, : W - 1].contiguous())


@pytest.mark.parametrize(
    ("options", "match"), [({"height": 0}, "height=0"), ({"crop_padding": -1}, "crop_padding=-1")]
)
def test_bad_pipeline_options_are_value_errors(options, match):
    kwargs = {"height": H, "width": W, **options}
    with pytest.raises(ValueError, match=match):
        AugmentPipeline(None, kwargs.pop("height"), kwargs.pop("width"), **kwargs)
