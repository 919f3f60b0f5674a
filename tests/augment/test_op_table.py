"""The op table: one entry per op, the level rules of the magnitude table and the sets derived from it
(what each backend runs an op with: test_op_contract.py)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdforaa.augment.op_table import (
    ARGUMENT_FREE_OPS,
    COLOUR_OPS,
    GEOMETRIC_OPS,
    OP_NAMES,
    OPS,
    SIGNED_OPS,
    op_argument,
)

ARGUMENT_OPS = set(OP_NAMES) - ARGUMENT_FREE_OPS


def arg(op, level, sign=1.0, height=32, width=32):
    return float(op_argument(op, level, sign, height=height, width=width))


def test_every_op_has_one_entry_and_the_sets_partition_it():
    assert len(OP_NAMES) == len(set(OP_NAMES)) == len(OPS) == 16
    assert COLOUR_OPS | GEOMETRIC_OPS | {"identity"} == set(OP_NAMES)
    assert not COLOUR_OPS & GEOMETRIC_OPS
    assert GEOMETRIC_OPS <= SIGNED_OPS <= ARGUMENT_OPS


# (op, level, sign, expected argument) straight from the level table of docs/architecture.md,
# on a 32x20 (HxW) image.
DESIGN_TABLE = [
    ("rotate", 5, 1, 15.0),
    ("rotate", 15, -1, -45.0),
    ("rotate", 30, 1, 90.0),
    ("shear_x", 10, 1, 0.3),
    ("shear_y", 15, -1, -0.45),
    ("shear_x", 30, 1, 0.9),
    ("translate_x", 10, 1, 0.45 * 20),  # uses the width
    ("translate_y", 15, -1, -0.675 * 32),  # uses the height
    ("translate_x", 30, 1, 1.35 * 20),
    ("brightness", 5, 1, 1.45),
    ("color", 5, -1, 0.55),
    ("contrast", 10, -1, 0.1),
    ("sharpness", 15, 1, 2.35),
    ("brightness", 15, -1, 0.0),  # 1 - 1.35 floored at 0
    ("contrast", 30, 1, 3.7),
    ("posterize", 0, 1, 8.0),
    ("posterize", 5, 1, 6.0),
    ("posterize", 10, 1, 4.0),
    ("posterize", 15, 1, 2.0),
    ("posterize", 30, 1, 0.0),
    ("solarize", 0, 1, 256.0),
    ("solarize", 5, 1, 128.0),
    ("solarize", 10, 1, 0.0),
    ("solarize", 15, 1, 0.0),
    ("solarize_add", 10, 1, 110.0),
    ("solarize_add", 15, 1, 165.0),
    ("solarize_add", 30, 1, 255.0),  # saturates everything below the threshold
]


@pytest.mark.parametrize(("op", "level", "sign", "expected"), DESIGN_TABLE)
def test_table_matches_design(op, level, sign, expected):
    assert arg(op, level, sign, height=32, width=20) == pytest.approx(expected, abs=1e-4)


def test_unsigned_ops_ignore_the_sign_and_argument_free_ops_give_zero():
    for op in ARGUMENT_OPS - SIGNED_OPS:
        assert arg(op, 7, -1) == arg(op, 7, 1)
    for op in ARGUMENT_FREE_OPS:
        assert arg(op, 7) == 0.0


def test_batched_levels_and_signs():
    out = op_argument("rotate", torch.tensor([0.0, 10.0, 20.0]), torch.tensor([1, -1, 1]), height=8, width=8)
    assert out.dtype == torch.float32
    assert out.tolist() == pytest.approx([0.0, -30.0, 60.0])


def test_unknown_op_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="op='blur'.*rotate"):
        op_argument("blur", 1.0, height=8, width=8)


def _strength(op, argument):
    """Distance of an argument from 'unchanged' in the direction the op gets stronger."""
    if op in ("posterize", "solarize"):
        return -argument
    if op in ("brightness", "color", "contrast", "sharpness"):
        return abs(argument - 1.0)
    return abs(argument)


@settings(max_examples=60, deadline=None)
@given(
    op=st.sampled_from(sorted(ARGUMENT_OPS)),
    low=st.floats(0, 100),
    extra=st.floats(0, 100),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_larger_level_is_never_weaker(op, low, extra, sign):
    weak, strong = arg(op, low, sign), arg(op, low + extra, sign)
    assert _strength(op, strong) >= _strength(op, weak) - 1e-4
