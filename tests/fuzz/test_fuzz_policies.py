"""Fuzzing the policies and the train-time pipeline of kdforaa.augment.

Valid input (a uint8 ``(B,C,H,W)`` batch, C in {1, 3}, levels 0..100, any op set) gives a new uint8
batch of the same shape on the same device, deterministically from the sampled parameters; anything
else is a ValueError (BadInput) with a message. Levels are accepted in ``0..MAX_LEVEL``: negative,
NaN, infinite, boolean or absurdly large levels are refused when the policy is built, never later.
Parameters may come back from a cache file, so tampered :class:`AugParams` are fuzzed too.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_ops import DEVICES, assert_new_uint8_like, assert_refused, fuzz, image_batches, invalid_batches

from kdforaa.augment import (
    OP_NAMES,
    AugmentPipeline,
    AugParams,
    AutoAugment,
    RandAugment,
    SingleOp,
    TrivialAugment,
    apply_params,
)
from kdforaa.augment.op_table import MAX_LEVEL
from kdforaa.augment.pipeline import AUTOAUGMENT_REFERENCE_MAGNITUDE, build_augment
from kdforaa.augment.policies import AUTOAUGMENT_POLICIES
from kdforaa.augment.random import make_keys
from kdforaa.config import AugmentConfig

pytestmark = pytest.mark.timeout(60)

levels = st.floats(0, 100)
op_sets = st.lists(st.sampled_from(OP_NAMES), min_size=1, max_size=len(OP_NAMES), unique=True)
common = {"fill": st.integers(0, 255), "interpolation": st.sampled_from(["nearest", "bilinear"])}


@st.composite
def policies(draw: st.DrawFn):
    """Any policy with valid random settings."""
    kind = draw(st.sampled_from(["randaugment", "autoaugment", "trivialaugment", "single"]))
    settings = {name: draw(strategy) for name, strategy in common.items()}
    if kind == "randaugment":
        return RandAugment(
            draw(st.integers(0, 4)),
            draw(levels),
            draw(st.sampled_from([0.0, 0.5, 5.0])),
            prob=draw(st.floats(0, 1)),
            ops=draw(op_sets),
            **settings,
        )
    if kind == "autoaugment":
        return AutoAugment(
            draw(st.sampled_from(sorted(AUTOAUGMENT_POLICIES))),
            magnitude_scale=draw(levels) / 9,
            magnitude_std=draw(st.sampled_from([0.0, 2.0])),
            **settings,
        )
    if kind == "trivialaugment":
        return TrivialAugment(draw(st.integers(0, 100)), ops=draw(op_sets), **settings)
    return SingleOp(draw(st.sampled_from(OP_NAMES)), draw(levels), **settings)


def keys_for(batch: int, seed: int) -> torch.Tensor:
    return make_keys(seed, 0, torch.arange(batch))


@fuzz(300)
@given(policy=policies(), x=image_batches(), seed=st.integers(0, 2**32 - 1))
def test_every_policy_gives_a_deterministic_uint8_batch_of_the_same_shape(policy, x, seed):
    params = policy.sample(keys_for(x.shape[0], seed))
    assert bool((params.levels >= 0).all()) and bool(params.levels.isfinite().all())
    before = x.clone()
    out = policy.apply(x, params)
    assert_new_uint8_like(out, x, before)
    assert torch.equal(out, policy.apply(x, params)), "apply is not a pure function of x and params"
    assert_new_uint8_like(policy(x, torch.Generator().manual_seed(seed)), x, before)


@fuzz(120)
@given(
    policy=st.one_of(st.none(), policies()),
    x=image_batches(),
    crop_padding=st.integers(0, 60),
    flip=st.booleans(),
    cutout=st.integers(0, 60),
    fill=st.integers(0, 255),
    seed=st.integers(0, 2**32 - 1),
)
def test_pipeline_gives_a_uint8_batch_of_the_same_shape(policy, x, crop_padding, flip, cutout, fill, seed):
    height, width = x.shape[2:]
    pipeline = AugmentPipeline(
        policy, height, width, crop_padding=crop_padding, flip=flip, cutout=cutout, fill=fill
    )
    params = pipeline.sample(keys_for(x.shape[0], seed))
    before = x.clone()
    out = pipeline.apply(x, params)
    assert_new_uint8_like(out, x, before)
    restored = AugParams.from_dict(params.to_dict())  # the round trip a cache makes
    assert torch.equal(pipeline.apply(x, restored), out)


@fuzz(60)
@given(
    policy=st.sampled_from(["none", "randaugment", "autoaugment", "trivialaugment"]),
    magnitude=st.one_of(levels, st.floats(0, 1e300)),
    num_ops=st.integers(0, 4),
    crop_padding=st.integers(0, 8),
    cutout=st.integers(0, 40),
    x=image_batches(),
)
def test_any_valid_augment_config_builds_a_working_pipeline_or_is_refused(
    policy, magnitude, num_ops, crop_padding, cutout, x
):
    """Config values pass pydantic's checks; a magnitude beyond MAX_LEVEL is refused when building."""
    cfg = AugmentConfig(
        policy=policy, magnitude=magnitude, num_ops=num_ops, crop_padding=crop_padding, cutout=cutout
    )
    height, width = x.shape[2:]
    limit = {"randaugment": MAX_LEVEL, "autoaugment": MAX_LEVEL * AUTOAUGMENT_REFERENCE_MAGNITUDE}
    if magnitude > limit.get(policy, math.inf):
        assert_refused(lambda: build_augment(cfg, height, width))
        return
    pipeline = build_augment(cfg, height, width)
    out = pipeline.apply(x, pipeline.sample(keys_for(x.shape[0], 0)))
    assert out.dtype == torch.uint8 and out.shape == x.shape


def acceptable_level(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_LEVEL
    )


any_level = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([MAX_LEVEL, MAX_LEVEL * 1.0001, 1e39, -0.0, True, None, "9", [9]]),
)


@fuzz(200)
@given(
    where=st.sampled_from(
        ["RandAugment magnitude", "RandAugment std", "AutoAugment scale", "AutoAugment std", "SingleOp"]
    ),
    level=any_level,
    x=image_batches(),
)
def test_levels_are_accepted_exactly_in_range_and_then_always_work(where, level, x):
    build = {
        "RandAugment magnitude": lambda: RandAugment(2, level),
        "RandAugment std": lambda: RandAugment(2, 9.0, level),
        "AutoAugment scale": lambda: AutoAugment("imagenet", magnitude_scale=level),
        "AutoAugment std": lambda: AutoAugment("svhn", magnitude_std=level),
        "SingleOp": lambda: SingleOp("rotate", level),
    }[where]
    if not acceptable_level(level):
        assert_refused(build)
        return
    out = build()(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape


@fuzz(100)
@given(
    setting=st.sampled_from(["num_ops", "prob", "ops", "max_level", "policy", "op", "fill", "interpolation"]),
    value=st.one_of(
        st.none(),
        st.text(max_size=6),
        st.integers(-(10**20), -1),
        st.integers(10**7, 10**20),
        st.floats(allow_nan=True).filter(lambda v: not 0 <= v <= 1),
        st.sampled_from([[], ["rotate", "nope"], {"x": 1}, 1.5, True]),
    ),
)
def test_invalid_policy_settings_are_refused(setting, value):
    if isinstance(value, str) and value in (*OP_NAMES, *AUTOAUGMENT_POLICIES, "nearest", "bilinear"):
        value += "?"
    build = {
        "num_ops": lambda: RandAugment(num_ops=value),
        "prob": lambda: RandAugment(prob=value),
        "ops": lambda: RandAugment(ops=value),
        "max_level": lambda: TrivialAugment(max_level=value),
        "policy": lambda: AutoAugment(value),
        "op": lambda: SingleOp(value, 5.0),
        "fill": lambda: RandAugment(fill=value),
        "interpolation": lambda: TrivialAugment(interpolation=value),
    }[setting]
    assert_refused(build)


def _float_images(x: object) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


@st.composite
def out_of_range_floats(draw: st.DrawFn) -> torch.Tensor:
    """A float batch of a valid shape holding one value outside [0, 1] (or NaN)."""
    x = torch.zeros(draw(st.integers(1, 3)), draw(st.sampled_from([1, 3])), 4, 4)
    below, above = st.floats(max_value=-(0.5**20), width=32), st.floats(min_value=1 + 0.5**20, width=32)
    bad = below | above | st.just(math.nan)
    x[0, 0, 0, 0] = draw(bad)
    return x


@fuzz(100)
@given(policy=policies(), x=invalid_batches().filter(lambda x: not _float_images(x)) | out_of_range_floats())
def test_invalid_image_batches_are_refused(policy, x):
    """Float batches in [0, 1] are taken (as their bytes); every other dtype, shape or range is refused."""
    assert_refused(lambda: policy(x))


@fuzz(60)
@given(
    policy=policies(),
    keys=st.sampled_from(
        [
            torch.zeros(3),
            torch.zeros(2, 2, dtype=torch.int64),
            torch.zeros(3, dtype=torch.int32),
            [1, 2, 3],
            None,
            torch.tensor(5),
        ]
    ),
)
def test_malformed_keys_are_refused(policy, keys):
    assert_refused(lambda: policy.sample(keys))


@fuzz(60)
@given(policy=policies(), x=image_batches(), extra=st.integers(1, 3))
def test_params_for_another_batch_size_are_refused(policy, x, extra):
    params = policy.sample(keys_for(x.shape[0] + extra, 0))
    assert_refused(lambda: policy.apply(x, params))


def tampered(value: torch.Tensor, how: str, draw: st.DrawFn) -> object:
    """``value`` broken one way: a wrong dtype, shape or content, or not a tensor at all."""
    if how == "dtype":
        dtype = draw(st.sampled_from([torch.float32, torch.int64, torch.int8, torch.bool, torch.complex64]))
        return value.to(dtype)
    if how == "shape":
        return value.reshape(-1)[: draw(st.integers(0, 3))]
    if how == "values":  # int64 or float32, whichever holds the value
        return torch.full(
            value.shape, draw(st.sampled_from([-(2**40), -1, 99, 2**40, math.nan, math.inf, 0.5]))
        )
    return draw(st.sampled_from([None, 3, "x", [1, 2]]))


@st.composite
def tampered_params(draw: st.DrawFn) -> tuple[torch.Tensor, object]:
    """An image batch and a to_dict() of its params with one field tampered with."""
    x = draw(image_batches())
    pipeline = AugmentPipeline(
        RandAugment(2, draw(levels)), *x.shape[2:], crop_padding=2, flip=True, cutout=3
    )
    data = pipeline.sample(keys_for(x.shape[0], draw(st.integers(0, 1000)))).to_dict()
    name = draw(st.sampled_from(["ops", "levels", "signs", "applied", "crop", "flip", "cutout", "op_names"]))
    how = draw(st.sampled_from(["dtype", "shape", "values", "not a tensor"]))
    if name == "op_names":
        data[name] = draw(st.sampled_from([["rotat"], "rotate", 5, None, list(OP_NAMES)[:1], []]))
    else:
        data[name] = tampered(data[name], how, draw)
    return x, data


@fuzz(300)
@given(case=tampered_params())
def test_tampered_params_give_a_result_or_a_refusal(case):
    """A cached AugParams with a broken field: refused (ValueError) or applied to a valid batch."""
    x, data = case
    try:
        params = AugParams.from_dict(data)
    except ValueError as err:
        assert str(err).strip()
        return
    before = x.clone()
    try:
        out = apply_params(x, params)
    except ValueError as err:
        assert str(err).strip()
        return
    assert_new_uint8_like(out, x, before)


@pytest.mark.parametrize("device", DEVICES)
def test_params_on_the_cpu_apply_to_a_batch_on_any_device(device):
    x = torch.randint(0, 256, (5, 3, 20, 17), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pipeline = AugmentPipeline(RandAugment(3, 15.0), 20, 17, crop_padding=3, flip=True, cutout=5)
    params = pipeline.sample(keys_for(5, 7))
    out = pipeline.apply(x.to(device), params)
    assert out.device == x.to(device).device and out.dtype == torch.uint8
    diff = (out.cpu().int() - pipeline.apply(x, params).int()).abs()
    assert diff.max().item() <= 1 and (diff == 0).float().mean().item() >= 0.99
