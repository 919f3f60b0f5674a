"""The benchmarks' Pillow baseline computes what the engine computes, so that a speed ratio between them
compares two ways of doing the same work: every op of the table, both signs, at the benchmarks'
magnitude, bit for bit on the benchmarks' own images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kdforaa.augment import AugParams, apply_params
from kdforaa.augment.op_table import OP_NAMES, op_argument
from kdforaa.experiments.benchmarking.pillow_randaugment import PILLOW_OPS, PillowRandAugment
from kdforaa.experiments.benchmarking.workload import MAGNITUDE, NUM_OPS, real_batch

BATCH, SIDE = 4, 16


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return real_batch(SIDE, BATCH, torch.device("cpu"))


def test_every_op_of_the_table_has_a_pillow_counterpart() -> None:
    assert sorted(PILLOW_OPS) == sorted(OP_NAMES)


@pytest.mark.parametrize("sign", [1, -1])
def test_the_pillow_ops_give_the_engines_bytes(images: torch.Tensor, sign: int) -> None:
    differ = {}
    for name in OP_NAMES:
        params = AugParams(
            ops=torch.full((BATCH, 1), OP_NAMES.index(name)),
            levels=torch.full((BATCH, 1), MAGNITUDE),
            signs=torch.full((BATCH, 1), sign, dtype=torch.int8),
            applied=torch.ones(BATCH, 1, dtype=torch.bool),
        )
        ours = apply_params(images, params, backend="torch")
        argument = float(op_argument(name, MAGNITUDE, float(sign), height=SIDE, width=SIDE))
        pillow = [PILLOW_OPS[name](Image.fromarray(a), argument) for a in images.permute(0, 2, 3, 1).numpy()]
        theirs = torch.from_numpy(np.stack([np.asarray(img) for img in pillow])).permute(0, 3, 1, 2)
        differ[name] = int((ours != theirs).sum())
    assert differ == dict.fromkeys(OP_NAMES, 0)


def test_pillow_randaugment_keeps_the_batch_and_its_seed_repeats_it(images: torch.Tensor) -> None:
    first = PillowRandAugment(NUM_OPS, MAGNITUDE, seed=3)(images)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, PillowRandAugment(NUM_OPS, MAGNITUDE, seed=3)(images))
