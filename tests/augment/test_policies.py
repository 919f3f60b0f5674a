import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdforaa.augment import ops
from kdforaa.augment.op_table import ARGUMENT_FREE_OPS, GEOMETRIC_OPS, OP_NAMES, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.augment.policies import (
    AUTOAUGMENT_POLICIES,
    RANDAUGMENT_OPS,
    AutoAugment,
    RandAugment,
    SingleOp,
    TrivialAugment,
)
from kdforaa.augment.random import draw_keys, make_keys


@pytest.fixture(scope="module")
def fashion(fashion_test_images) -> torch.Tensor:
    """(300,1,28,28) uint8: real Fashion-MNIST test images."""
    return fashion_test_images


@pytest.fixture(scope="module")
def fashion_rgb(fashion) -> torch.Tensor:
    """(300,3,28,28) uint8: the same images with a different gain per channel, so colour ops act."""
    gains = torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    return (fashion.float() * gains).round().to(torch.uint8)


def keys_for(indices, seed=0, epoch=0):
    return make_keys(seed, epoch, torch.as_tensor(indices))


POLICIES = {
    "randaugment": lambda: RandAugment(2, 9.0),
    "autoaugment-imagenet": lambda: AutoAugment("imagenet"),
    "autoaugment-cifar10": lambda: AutoAugment("cifar10"),
    "autoaugment-svhn": lambda: AutoAugment("svhn"),
    "trivialaugment": lambda: TrivialAugment(),
}
# Distinct outputs among 256 copies of one image: a batch-level op choice would give 1.
MIN_DISTINCT = {
    "randaugment": 140,
    "autoaugment-imagenet": 35,
    "autoaugment-cifar10": 50,
    "autoaugment-svhn": 45,
    "trivialaugment": 95,
}


@pytest.mark.parametrize("level", [float("nan"), float("inf"), -1.0])
def test_params_with_a_level_no_policy_draws_are_refused(level):
    data = RandAugment(2, 9.0).sample(keys_for(range(3))).to_dict()
    data["levels"][1, 0] = level
    with pytest.raises(ValueError, match="levels must be finite numbers >= 0"):
        AugParams.from_dict(data)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_ops_are_chosen_per_sample(name, fashion_rgb):
    x = fashion_rgb[:1].expand(256, -1, -1, -1).contiguous()
    out = POLICIES[name]()(x, generator=torch.Generator().manual_seed(0))
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    assert distinct >= MIN_DISTINCT[name]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_apply_replays_sample_and_matches_call(name, fashion_rgb):
    policy, x = POLICIES[name](), fashion_rgb[:64]
    params = policy.sample(draw_keys(64, torch.Generator().manual_seed(3)))
    first = policy.apply(x, params)
    assert torch.equal(first, policy.apply(x, params))
    assert torch.equal(first, policy(x, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, x)


def test_apply_does_not_modify_its_input(fashion_rgb):
    x = fashion_rgb[:32].clone()
    RandAugment(3, 12.0)(x)
    assert torch.equal(x, fashion_rgb[:32])


@pytest.mark.parametrize("height", [28, 13])  # 13x28x3 bytes per image: rows not a multiple of 8
def test_memory_layout_and_row_size_do_not_change_the_result(fashion_rgb, height):
    policy, x = RandAugment(3, 9.0), fashion_rgb[:48, :, :height].contiguous()
    params = policy.sample(keys_for(range(48)))
    expected = policy.apply(x, params)
    assert torch.equal(policy.apply(x.contiguous(memory_format=torch.channels_last), params), expected)
    assert torch.equal(
        policy.apply(x[:, :, :, :-1], params), policy.apply(x[:, :, :, :-1].contiguous(), params)
    )


def test_params_survive_dict_and_weights_only_save(fashion_rgb):
    policy, x = RandAugment(2, 9.0, magnitude_std=0.5, prob=0.7), fashion_rgb[:40]
    params = policy.sample(keys_for(range(40)))
    buffer = io.BytesIO()
    torch.save(params.to_dict(), buffer)
    buffer.seek(0)
    loaded = AugParams.from_dict(torch.load(buffer, weights_only=True))
    for field in ("ops", "levels", "signs", "applied"):
        assert torch.equal(getattr(loaded, field), getattr(params, field))
    assert loaded.op_names == params.op_names
    assert torch.equal(policy.apply(x, loaded), policy.apply(x, params))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_sample_gets_the_same_augmentation_in_any_batch(name, fashion_rgb):
    policy = POLICIES[name]()
    big = policy.apply(fashion_rgb[:64], policy.sample(keys_for(range(64), seed=7, epoch=2)))
    picked = [5, 17, 40, 63]
    small = policy.apply(fashion_rgb[picked], policy.sample(keys_for(picked, seed=7, epoch=2)))
    assert torch.equal(small, big[picked])


def test_epochs_and_seeds_change_the_draw():
    policy = RandAugment(2, 9.0)
    base = policy.sample(keys_for(range(128)))
    for other in (keys_for(range(128), epoch=1), keys_for(range(128), seed=1)):
        assert not torch.equal(policy.sample(other).ops, base.ops)


def test_randaugment_draws_each_of_its_ops_uniformly():
    params = RandAugment(2, 9.0).sample(keys_for(range(14_000)))
    counts = torch.bincount(params.ops.flatten(), minlength=len(OP_NAMES))
    used = [OP_NAMES.index(op) for op in RANDAUGMENT_OPS]
    assert set(torch.nonzero(counts).flatten().tolist()) == set(used)
    assert counts[used].min() > 1600 and counts[used].max() < 2400  # expected 2000 each
    assert params.applied.all()
    signs = params.signs[params.ops == OP_NAMES.index("rotate")]
    assert 0.4 < (signs < 0).float().mean() < 0.6


def test_magnitude_std_draws_a_level_per_sample_floored_at_zero():
    levels = RandAugment(2, 1.0, magnitude_std=2.0, ops=["rotate"]).sample(keys_for(range(4000))).levels
    assert levels.min() == 0.0
    assert levels.unique().numel() > 1000
    positive = RandAugment(2, 9.0, magnitude_std=1.0, ops=["rotate"]).sample(keys_for(range(4000))).levels
    assert positive.mean().item() == pytest.approx(9.0, abs=0.1)
    assert positive.std().item() == pytest.approx(1.0, abs=0.1)


def test_prob_skips_ops_and_level_is_the_max_over_applied_ops():
    params = RandAugment(3, 6.0, prob=0.5, ops=["rotate", "equalize"]).sample(keys_for(range(2000)))
    assert 0.45 < params.applied.float().mean() < 0.55
    uses_rotate = (params.applied & (params.ops == OP_NAMES.index("rotate"))).any(1)
    assert torch.equal(params.strongest_level, torch.where(uses_rotate, 6.0, 0.0))


def test_autoaugment_replays_the_published_tables():
    for name, table in AUTOAUGMENT_POLICIES.items():
        assert len(table) == 25, name
        assert all(op in OP_NAMES and 0 <= p <= 1 for sub in table for op, p, _ in sub)
    params = AutoAugment("cifar10").sample(keys_for(range(5000)))
    table = AUTOAUGMENT_POLICIES["cifar10"]
    pairs = {tuple(OP_NAMES.index(op) for op, _, _ in sub) for sub in table}
    assert {tuple(row) for row in params.ops.tolist()} == pairs
    # "translate_y 0.9 level 9" then "translate_y 0.7 level 9" is the only sub-policy with two translate_y.
    ty = OP_NAMES.index("translate_y")
    rows = (params.ops == ty).all(1)
    assert params.levels[rows].unique().tolist() == [9.0]
    assert params.applied[rows].float().mean(0).tolist() == pytest.approx([0.9, 0.7], abs=0.08)


def test_autoaugment_magnitude_scale_multiplies_published_levels():
    keys = keys_for(range(500))
    plain, doubled = AutoAugment("svhn").sample(keys), AutoAugment("svhn", magnitude_scale=2.0).sample(keys)
    assert torch.equal(doubled.ops, plain.ops)
    assert torch.equal(doubled.levels, 2 * plain.levels)
    assert doubled.levels.max() == 18.0


def test_trivialaugment_one_op_per_sample_at_integer_levels():
    params = TrivialAugment().sample(keys_for(range(3000)))
    assert params.ops.shape == (3000, 1) and params.applied.all()
    levels = params.levels[params.ops[:, 0] == OP_NAMES.index("rotate")]
    assert levels.min() == 0 and levels.max() == 30 and torch.equal(levels, levels.round())


def test_describe_names_ops_levels_and_signs():
    params = AugParams(
        ops=torch.tensor([[OP_NAMES.index("rotate"), OP_NAMES.index("solarize")], [0, 0]]),
        levels=torch.tensor([[15.0, 15.0], [0.0, 0.0]]),
        signs=torch.tensor([[-1, 1], [1, 1]], dtype=torch.int8),
        applied=torch.tensor([[True, True], [False, True]]),
    )
    assert params.describe(0) == "rotate L=15 -, solarize L=15"
    assert params.describe(1) == "identity"
    assert params.strongest_level.tolist() == [15.0, 0.0]


@pytest.mark.parametrize("op", sorted(GEOMETRIC_OPS))
def test_geometric_ops_at_level_zero_are_the_identity(op, fashion_rgb):
    x = fashion_rgb[:16]
    assert torch.equal(SingleOp(op, 0.0)(x), x)


def test_larger_magnitude_changes_images_more(fashion):
    keys = keys_for(range(len(fashion)))
    change = []
    for level in (5.0, 10.0, 20.0):
        policy = RandAugment(2, level)
        out = policy.apply(fashion, policy.sample(keys))
        change.append((out.float() - fashion.float()).abs().mean().item())
    assert change[0] < change[1] < change[2]


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 37),
    width=st.integers(1, 37),
    level=st.floats(0, 100),
    which=st.sampled_from(["rand", "auto", "trivial", "single"]),
    op=st.sampled_from(OP_NAMES),
    seed=st.integers(0, 2**31),
    interpolation=st.sampled_from(["nearest", "bilinear"]),
)
def test_any_level_and_shape_gives_a_valid_batch(
    batch, channels, height, width, level, which, op, seed, interpolation
):
    policy = {
        "rand": lambda: RandAugment(3, level, magnitude_std=1.0, interpolation=interpolation),
        "auto": lambda: AutoAugment("imagenet", magnitude_scale=level / 9, interpolation=interpolation),
        "trivial": lambda: TrivialAugment(int(level), interpolation=interpolation),
        "single": lambda: SingleOp(op, level, fill=128, interpolation=interpolation),
    }[which]()
    x = torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8)
    params = policy.sample(make_keys(seed, 0, torch.arange(batch)))
    out = policy.apply(x, params)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert (params.levels >= 0).all() and set(params.signs.unique().tolist()) <= {-1, 1}
    assert (
        (params.strongest_level >= 0) & (params.strongest_level <= params.levels.amax(1, keepdim=True).max())
    ).all()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AutoAugment("cifar100"), "policy='cifar100'.*imagenet, cifar10, svhn"),
        (lambda: RandAugment(2, -1.0), "magnitude=-1.0"),
        (lambda: RandAugment(2, 9.0, magnitude_std=-0.5), "magnitude_std"),
        (lambda: RandAugment(-1), "num_ops"),
        (lambda: RandAugment(ops=["rotate", "blur"]), "ops='blur'.*identity"),
        (lambda: TrivialAugment(ops=[]), r"ops=\[\] must list at least one op"),
        (lambda: RandAugment(interpolation="cubic"), "interpolation='cubic'.*nearest, bilinear"),
        (lambda: RandAugment(fill=300), "fill.*300"),
        (lambda: TrivialAugment(-3), "max_level"),
        (lambda: SingleOp("zoom", 3.0), "op='zoom'"),
        (lambda: SingleOp("rotate", float("nan")), "level=nan"),
    ],
)
def test_bad_options_are_value_errors_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8"),
        (torch.full((2, 3, 8, 8), 2.0), r"values in \[0, 1\], got 2\.\.2"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"\(B,C,H,W\)"),
        (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), "channels"),
    ],
)
def test_bad_images_are_value_errors(x, match):
    with pytest.raises(ValueError, match=match):
        RandAugment()(x)


def test_params_of_another_batch_size_are_rejected(fashion):
    policy = RandAugment()
    with pytest.raises(ValueError, match="params describe 3 samples"):
        policy.apply(fashion[:4], policy.sample(keys_for(range(3))))


def test_colour_ops_equal_the_public_ops_applied_image_by_image(fashion_rgb):
    """The policies call the ops unchecked and batched per op; the result is the plain per-image chain."""
    colour = [name for name in OP_NAMES if name not in GEOMETRIC_OPS]
    policy = RandAugment(3, 12.0, 4.0, prob=0.8, ops=colour)
    x = fashion_rgb[:48]
    params = policy.sample(keys_for(range(48)))
    out = policy.apply(x, params)
    for i in range(48):
        image = x[i : i + 1]
        for slot in range(params.ops.shape[1]):
            if not params.applied[i, slot]:
                continue
            name = params.op_names[int(params.ops[i, slot])]
            op = getattr(ops, name)
            if name in ARGUMENT_FREE_OPS:
                image = op(image)
            else:
                level, sign = params.levels[i, slot : slot + 1], params.signs[i, slot : slot + 1]
                image = op(image, op_argument(name, level, sign, height=28, width=28))
        assert torch.equal(out[i], image[0]), i
