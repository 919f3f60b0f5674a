"""The drop-in side of the engine: float batches, keys on any device, params on request, reprs, nn.Module,
timm-style strings."""

import pytest
import torch
from torch import nn

from kdforaa.augment import (
    Augment,
    AugmentPipeline,
    AutoAugment,
    RandAugment,
    SingleOp,
    TrivialAugment,
    draw_keys,
    make_keys,
    policy_from_string,
    to_float,
    to_uint8,
)
from kdforaa.augment.policies import AUTOAUGMENT_POLICIES
from kdforaa.augment.timm_strings import TIMM_RAND_OPS
from kdforaa.errors import BadInput

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def batch(n: int = 6, c: int = 3, side: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("dtype", FLOATS)
def test_every_byte_survives_the_float_round_trip(dtype):
    every = torch.arange(256, dtype=torch.uint8)
    as_float = to_float(every, dtype)
    assert as_float.dtype == dtype and float(as_float[0]) == 0.0 and float(as_float[-1]) == 1.0
    assert torch.equal(to_uint8(as_float), every)


def test_the_conversion_rounds_to_the_nearest_byte():
    x = torch.tensor([0.0, 0.4 / 255, 0.6 / 255, 127.5 / 255, 128.5 / 255, 1.0])
    assert to_uint8(x).tolist() == [0, 0, 1, 128, 128, 255]  # ties to even, as torch.round


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "policy",
    [RandAugment(2, 12, 2.0), AugmentPipeline(TrivialAugment(), 12, 12, crop_padding=2, flip=True, cutout=4)],
    ids=["randaugment", "pipeline"],
)
def test_a_float_batch_gives_the_bytes_of_the_uint8_path(policy, dtype):
    x, keys = batch(), make_keys(3, 1, torch.arange(6))
    expected = policy(x, keys=keys)
    out = policy(to_float(x, dtype), keys=keys)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(to_uint8(out), expected)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_float_values_outside_the_unit_range_are_refused(bad):
    x = to_float(batch())
    x[0, 0, 0, 0] = bad
    with pytest.raises(BadInput, match=r"values in \[0, 1\].*augment before normalising"):
        RandAugment()(x)


def test_keys_give_what_sample_and_apply_give_and_params_come_back_on_request():
    policy, x = RandAugment(2, 9), batch()
    keys = make_keys(0, 2, torch.arange(6))
    out, params = policy(x, keys=keys, return_params=True)
    assert torch.equal(out, policy.apply(x, policy.sample(keys)))
    assert torch.equal(params.ops, policy.sample(keys).ops)
    assert params.strongest_level.shape == (6,) and set(params.strongest_level.tolist()) <= {0.0, 9.0}


def test_keys_and_a_generator_are_not_both_taken_and_keys_must_fit_the_batch():
    with pytest.raises(BadInput, match="keys or a generator"):
        RandAugment()(batch(), torch.Generator(), keys=make_keys(0, 0, torch.arange(6)))
    with pytest.raises(BadInput, match="keys has 2 entries for a batch of 6"):
        RandAugment()(batch(), keys=make_keys(0, 0, torch.arange(2)))


def test_keys_are_drawn_on_the_generators_device_or_the_batchs():
    g = torch.Generator().manual_seed(5)
    assert torch.equal(draw_keys(4, g), draw_keys(4, torch.Generator().manual_seed(5)))
    assert draw_keys(4, torch.Generator(device="cpu"), device="meta").device.type == "cpu"
    assert draw_keys(4, device="meta").device.type == "meta"  # no generator: the batch's device


def test_a_generator_makes_the_call_reproducible():
    x, policy = batch(), TrivialAugment()
    first = policy(x, torch.Generator().manual_seed(1))
    assert torch.equal(first, policy(x, torch.Generator().manual_seed(1)))


def test_reprs_say_what_was_built():
    assert repr(RandAugment(2, 9, 0.5)) == (
        "RandAugment(num_ops=2, magnitude=9.0, magnitude_std=0.5, magnitude_max=None, prob=1.0, fill=0, "
        "interpolation='nearest')"
    )
    assert repr(SingleOp("rotate", 3)) == "SingleOp(op='rotate', level=3.0, fill=0, interpolation='nearest')"
    assert "ops=['rotate', 'invert']" in repr(TrivialAugment(ops=["rotate", "invert"]))
    pipeline = AugmentPipeline(AutoAugment("svhn"), 8, 8, flip=True)
    assert repr(pipeline).startswith("AugmentPipeline(policy=AutoAugment(policy='svhn', ")
    assert "flip=True" in repr(pipeline)
    assert repr(Augment(RandAugment())).startswith("Augment(RandAugment(num_ops=2,")


def test_augment_is_a_module_without_state_that_composes():
    augment = Augment(RandAugment(2, 12), backend="torch")
    model = nn.Sequential(augment, nn.Flatten(), nn.Linear(3 * 12 * 12, 4))
    model.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert list(model.state_dict()) == ["2.weight", "2.bias"]
    assert augment.to("cpu") is augment and list(augment.parameters()) == []
    x = to_float(batch())
    assert model(x).shape == (6, 4)
    keys = make_keys(0, 0, torch.arange(6))
    assert torch.equal(augment(x, keys=keys), to_float(RandAugment(2, 12)(batch(), keys=keys)))
    out, params = augment(batch(), keys=keys, return_params=True)
    assert out.dtype == torch.uint8 and len(params) == 6
    with pytest.raises(BadInput, match="needs a kdforaa policy"):
        Augment(nn.Identity())


def test_timm_rand_strings_map_onto_randaugment():
    policy = policy_from_string("rand-m9-n2-mstd0.5")
    assert isinstance(policy, RandAugment)
    assert (policy.num_ops, policy.magnitude, policy.magnitude_std) == (2, 9.0, 0.5)
    assert (policy.magnitude_max, policy.prob, policy.ops) == (10.0, 0.5, TIMM_RAND_OPS)
    capped = policy_from_string("rand-m15-n3-mmax12-p0.7-inc1")
    assert (capped.num_ops, capped.magnitude, capped.magnitude_max, capped.prob) == (3, 12.0, 12.0, 0.7)
    assert policy_from_string("rand").magnitude == 10.0  # timm's defaults: m10, n2


def test_timm_noise_is_capped_at_mmax():
    levels = policy_from_string("rand-m9-n4-mstd5").sample(make_keys(0, 0, torch.arange(500))).levels
    assert float(levels.max()) == 10.0 and float(levels.min()) == 0.0


def test_timm_autoaugment_and_trivialaugment_strings():
    original = policy_from_string("original-mstd0.5")
    assert isinstance(original, AutoAugment) and original.policy == "imagenet"
    assert (original.magnitude_std, original.magnitude_max) == (0.5, 10.0)
    assert policy_from_string("originalr").policy == "imagenet"
    assert policy_from_string("v0r").policy == "v0" and len(AUTOAUGMENT_POLICIES["v0"]) == 25
    assert isinstance(policy_from_string("trivialaugment"), TrivialAugment)
    augment = Augment.from_string("v0", fill=128, backend="torch")
    assert augment.policy.fill == 128 and augment(batch()).shape == (6, 3, 12, 12)


@pytest.mark.parametrize(
    ("spec", "part"),
    [
        ("augmix-m5-w4", "'augmix'"),
        ("3a", "'3a'"),
        ("rand-m9-w0", "'w0' is not supported \\(weighted op choice\\)"),
        ("rand-m9-mstd101", "'mstd101'"),
        ("rand-m9-q3", "'q3'"),
        ("rand-mx", "'mx'"),
        ("original-m9", "'m9'"),
        ("randaugment", "'randaugment'"),
    ],
)
def test_unsupported_parts_of_a_string_are_named_in_one_line(spec, part):
    with pytest.raises(BadInput, match=f"augmentation string '{spec}': {part}") as err:
        policy_from_string(spec)
    assert "\n" not in str(err.value) and "rand-m<M>" in str(err.value)
