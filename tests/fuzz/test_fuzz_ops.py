"""Fuzzing every op of kdforaa.augment.ops: random shapes, levels, argument forms, dtypes and devices.

The contract under fuzzing (docs/architecture.md, "The ops"): a valid batch (``(B,C,H,W)`` uint8, C in {1, 3})
with a valid argument (a number or a ``(B,)``/``(1,)`` real tensor on any device, inside the op's domain)
gives a new uint8 batch of the same shape on the same device and leaves the input alone; anything else raises
ValueError (BadInput) with a non-empty message. No other exception, no hang.

Argument domains: posterize takes whole bits 0..8, solarize a threshold 0..256, the enhance ops a
factor >= 0 (any size: large factors saturate), the geometric ops and solarize_add any finite number.
NaN, infinities and integers beyond float64 are refused everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdforaa.augment import ops
from kdforaa.augment.op_table import ARGUMENT_FREE_OPS, GEOMETRIC_OPS, OP_NAMES, op_argument

pytestmark = pytest.mark.timeout(60)

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
OPS = tuple(ops.__all__)
ARGUMENT_OPS = tuple(sorted(set(OP_NAMES) - ARGUMENT_FREE_OPS))
ENHANCE_OPS = ("brightness", "color", "contrast", "sharpness")
# The argument at which each op returns its input unchanged.
NEUTRAL = {
    **dict.fromkeys(GEOMETRIC_OPS, 0.0),
    **dict.fromkeys(ENHANCE_OPS, 1.0),
    "posterize": 8,
    "solarize": 256,
    "solarize_add": 0,
}


def fuzz(examples: int) -> settings:
    """Hypothesis settings of this folder: no deadline (timeout guards hangs), a bounded example count."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def result_or_refusal(call: Callable[[], object]) -> object | None:
    """``call()``'s result, or None when it raised a ValueError with a message; other errors propagate."""
    try:
        return call()
    except ValueError as err:
        assert str(err).strip(), f"{type(err).__name__} raised without a message"
        return None


def assert_refused(call: Callable[[], object]) -> None:
    """``call()`` must raise ValueError (BadInput is one) with a non-empty message."""
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).strip()


def random_images(shape: tuple[int, ...], seed: int, content: str) -> torch.Tensor:
    """uint8 images: uniform noise, one grey level per image, or two levels (edge cases of histograms)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    if content == "flat":
        return noise[:, :, :1, :1].expand(shape).clone()
    if content == "two levels":
        return torch.where(noise < 128, 0, 255).to(torch.uint8)
    return noise


@st.composite
def image_batches(draw: st.DrawFn) -> torch.Tensor:
    """Valid batches: B 0..6, C in {1, 3}, H and W 1..48, on a device, sometimes channels-last."""
    shape = (draw(st.integers(0, 6)), draw(st.sampled_from([1, 3])), draw(st.integers(1, 48)))
    shape += (draw(st.integers(1, 48)),)
    x = random_images(
        shape, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(["noise", "flat", "two levels"]))
    )
    if draw(st.booleans()):
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(draw(st.sampled_from(DEVICES)))


def call_op(name: str, x: torch.Tensor, argument: object = None, **extra: object) -> torch.Tensor:
    """``ops.<name>(x, argument, **extra)``; ops without an argument get ``x`` alone."""
    op = getattr(ops, name)
    return op(x) if name not in ARGUMENT_OPS else op(x, argument, **extra)


def assert_new_uint8_like(out: object, x: torch.Tensor, before: torch.Tensor) -> None:
    """A new uint8 tensor shaped like ``x`` on its device; ``x`` still equals ``before``."""
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.device == x.device
    assert torch.equal(x, before), "the op wrote into its input"
    if x.numel():
        assert out.data_ptr() != x.data_ptr(), "the op returned its input, not a new tensor"


def assert_same_as_on_cpu(name: str, out: torch.Tensor, x: torch.Tensor, argument: object, **extra) -> None:
    """On an accelerator: colour ops within 1 grey level of the CPU, geometric ops on >= 99% of pixels."""
    if out.device.type == "cpu" or not out.numel():
        return
    cpu_argument = argument.cpu() if isinstance(argument, torch.Tensor) else argument
    diff = (out.cpu().int() - call_op(name, x.cpu(), cpu_argument, **extra).int()).abs()
    if name in GEOMETRIC_OPS:
        assert (diff == 0).float().mean().item() >= 0.99
    else:
        assert diff.max().item() <= 1


@fuzz(400)
@given(
    name=st.sampled_from(OPS),
    x=image_batches(),
    levels=st.lists(st.floats(0, 100), min_size=6, max_size=6),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6),
    form=st.sampled_from(["float32", "float64", "int64", "one", "number", "scalar tensor"]),
    argument_device=st.sampled_from(DEVICES),
    fill=st.integers(0, 255),
    interpolation=st.sampled_from(["nearest", "bilinear"]),
)
def test_every_level_gives_a_new_uint8_batch_of_the_same_shape(
    name, x, levels, signs, form, argument_device, fill, interpolation
):
    """Levels 0..100 through the level table, as every argument form, on every device: always a result."""
    batch, _, height, width = x.shape
    per_sample = op_argument(
        name, torch.tensor(levels[:batch]), torch.tensor(signs[:batch]), height=height, width=width
    )
    first = op_argument(name, levels[0], signs[0], height=height, width=width)
    argument = {
        "float32": per_sample,
        "float64": per_sample.double(),
        "int64": per_sample.long(),
        "one": first.reshape(1),
        "number": float(first),
        "scalar tensor": first,
    }[form]
    if isinstance(argument, torch.Tensor):
        argument = argument.to(argument_device)
    extra = {"fill": fill, "interpolation": interpolation} if name in GEOMETRIC_OPS else {}
    before = x.clone()
    out = call_op(name, x, argument, **extra)
    assert_new_uint8_like(out, x, before)
    assert_same_as_on_cpu(name, out, x, argument, **extra)


def layouts(x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` and its first image as non-contiguous views: channels-last, strided, stride-0, transposed."""
    views = []
    for images in (x, x[:1]):
        views += [
            images.contiguous(memory_format=torch.channels_last),
            torch.cat([images, images], dim=3)[..., ::2],
            images[:1].expand(3 * min(len(images), 1), *images.shape[1:]),
            images.transpose(2, 3).contiguous().transpose(2, 3),
        ]
    return views


@fuzz(150)
@given(name=st.sampled_from(OPS), x=image_batches())
def test_memory_layout_does_not_change_the_result(name, x):
    argument = 0.6 if name in ENHANCE_OPS else {"posterize": 3, "solarize": 100}.get(name, 5.0)
    for view in layouts(x):
        before = view.clone()
        out = call_op(name, view, argument)
        assert torch.equal(out, call_op(name, view.contiguous(), argument))
        assert torch.equal(view, before)


@fuzz(120)
@given(
    name=st.sampled_from((*ARGUMENT_OPS, "identity")),
    x=image_batches(),
    interpolation=st.sampled_from(["nearest", "bilinear"]),
)
def test_neutral_argument_returns_the_input_unchanged(name, x, interpolation):
    extra = {"interpolation": interpolation} if name in GEOMETRIC_OPS else {}
    assert torch.equal(call_op(name, x, NEUTRAL.get(name), **extra), x)


@fuzz(60)
@given(x=image_batches(), fill=st.integers(0, 255), direction=st.sampled_from([-1, 1]))
def test_translating_by_a_whole_side_leaves_only_fill(x, fill, direction):
    height, width = x.shape[2:]
    for out in (
        ops.translate_x(x, direction * width, fill=fill),
        ops.translate_y(x, direction * height, fill=fill),
    ):
        assert bool((out == fill).all())


def in_domain(name: str, value: float) -> bool:
    """Whether ``value`` is a valid argument of op ``name`` (see the module docstring)."""
    if not math.isfinite(value):
        return False
    if name == "posterize":
        return 0 <= value <= 8 and value == int(value)
    if name == "solarize":
        return 0 <= value <= 256
    if name in ENHANCE_OPS:
        return value >= 0
    return True


def as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float64
        return math.inf


raw_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-300, 300),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400), 8.5, 256.5, -0.0, 1e-300, 1e300]),
)


@fuzz(400)
@given(
    name=st.sampled_from(ARGUMENT_OPS),
    x=image_batches(),
    values=st.lists(raw_numbers, min_size=6, max_size=6),
    form=st.sampled_from(["number", "float64", "float32", "int64"]),
    broadcast=st.booleans(),
)
def test_arbitrary_numbers_are_accepted_exactly_in_the_op_domain(name, x, values, form, broadcast):
    """Any number (negative, NaN, inf, huge) as a number or a per-sample tensor: a result iff in domain."""
    if form == "number":
        argument, passed = values[0], [as_float(values[0])]
    else:
        values = values[: 1 if broadcast else x.shape[0]]
        if form == "int64":  # what an int64 tensor can hold
            values = [int(v) if abs(as_float(v)) < 2**62 else 0 for v in values]
        else:
            values = [as_float(v) for v in values]
        dtype = {"float64": torch.float64, "float32": torch.float32, "int64": torch.int64}[form]
        argument = torch.tensor(values, dtype=dtype)
        passed = argument.double().tolist()  # float32 rounds, e.g. 1e300 -> inf
    before = x.clone()
    out = result_or_refusal(lambda: call_op(name, x, argument))
    assert (out is not None) == all(in_domain(name, v) for v in passed), (name, passed)
    if out is not None:
        assert_new_uint8_like(out, x, before)


@fuzz(200)
@given(
    name=st.sampled_from(ARGUMENT_OPS),
    x=image_batches(),
    level=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-100, 0)),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_any_level_through_the_table_is_a_result_or_a_refusal(name, x, level, sign):
    """Negative, NaN and infinite levels: the op refuses exactly the arguments outside its domain."""
    height, width = x.shape[2:]
    argument = op_argument(name, level, sign, height=height, width=width)
    out = result_or_refusal(lambda: call_op(name, x, argument))
    assert (out is not None) == in_domain(name, float(argument)), (name, level, float(argument))


@fuzz(150)
@given(
    name=st.sampled_from(ARGUMENT_OPS),
    x=image_batches(),
    bad=st.sampled_from(
        [
            "wrong length",
            "matrix",
            "bool tensor",
            "complex tensor",
            "string",
            "None",
            "list",
            "ndarray",
            "bool",
        ]
    ),
    length=st.integers(0, 9),
)
def test_malformed_arguments_are_refused(name, x, bad, length):
    batch = x.shape[0]
    if bad == "wrong length" and length in (1, batch):
        length = batch + 2
    neutral = NEUTRAL[name]
    argument = {
        "wrong length": torch.full((length,), float(neutral)),
        "matrix": torch.full((max(batch, 1), 2), float(neutral)),
        "bool tensor": torch.ones(max(batch, 1), dtype=torch.bool),
        "complex tensor": torch.full((max(batch, 1),), complex(neutral)),
        "string": str(neutral),
        "None": None,
        "list": [neutral] * batch,
        "ndarray": np.full(batch, neutral),
        "bool": True,
    }[bad]
    assert_refused(lambda: call_op(name, x, argument))


@st.composite
def invalid_batches(draw: st.DrawFn) -> object:
    """Anything but a (B,C,H,W) uint8 tensor with C in {1, 3} and H, W >= 1."""
    b, h, w = draw(st.integers(0, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["dtype", "rank 3", "rank 5", "channels", "empty side", "ndarray", "list"]))
    if kind == "dtype":
        dtype = draw(
            st.sampled_from([torch.float32, torch.float64, torch.int16, torch.int64, torch.int8, torch.bool])
        )
        return torch.zeros(b, draw(st.sampled_from([1, 3])), h, w, dtype=dtype)
    if kind == "rank 3":
        return torch.zeros(3, h, w, dtype=torch.uint8)
    if kind == "rank 5":
        return torch.zeros(b, 2, 3, h, w, dtype=torch.uint8)
    if kind == "channels":
        return torch.zeros(b, draw(st.sampled_from([0, 2, 4, 5])), h, w, dtype=torch.uint8)
    if kind == "empty side":
        return torch.zeros(b, 3, *draw(st.sampled_from([(0, w), (h, 0), (0, 0)])), dtype=torch.uint8)
    if kind == "ndarray":
        return np.zeros((b, 3, h, w), dtype=np.uint8)
    return [[[[0] * w] * h] * 3] * b


@fuzz(150)
@given(name=st.sampled_from(OPS), x=invalid_batches())
def test_invalid_image_batches_are_refused(name, x):
    assert_refused(lambda: call_op(name, x, NEUTRAL.get(name)))


@fuzz(80)
@given(
    name=st.sampled_from(sorted(GEOMETRIC_OPS)),
    x=image_batches(),
    fill=st.one_of(st.integers(-1000, -1), st.integers(256, 1000), st.floats(), st.just(True), st.just("0")),
    interpolation=st.sampled_from(["nearest", "bilinear"]),
)
def test_invalid_fill_is_refused(name, x, fill, interpolation):
    assert_refused(lambda: call_op(name, x, 1.0, fill=fill, interpolation=interpolation))


@fuzz(40)
@given(
    name=st.sampled_from(sorted(GEOMETRIC_OPS)),
    x=image_batches(),
    interpolation=st.one_of(st.text(max_size=8), st.none(), st.integers()),
)
def test_unknown_interpolation_is_refused(name, x, interpolation):
    if interpolation in ("nearest", "bilinear"):
        interpolation = "bicubic"
    assert_refused(lambda: call_op(name, x, 1.0, interpolation=interpolation))


@fuzz(60)
@given(
    name=st.sampled_from(ENHANCE_OPS),
    x=image_batches(),
    factor=st.floats(256, 1e308),
    form=st.sampled_from(["number", "float64"]),
)
def test_huge_enhance_factors_saturate_like_256(name, x, factor, form):
    """Past 256 every pixel that differs from the blend's degenerate image saturates: no NaN garbage."""
    argument = factor if form == "number" else torch.full((x.shape[0],), factor, dtype=torch.float64)
    assert torch.equal(call_op(name, x, argument), call_op(name, x, 256.0))
