"""The fused backends' per-slot numbers (op arguments, inverse maps) come from a memory of the
(op, level, sign) triples already seen; they must be, bit for bit, what the op table's level rules and
inverse maps give for each slot, whether found in memory, computed now, or after the memory starts afresh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdforaa.augment import AutoAugment, RandAugment, TrivialAugment, plan
from kdforaa.augment.op_table import BY_NAME, OP_NAMES, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.augment.pipeline import AugmentPipeline
from kdforaa.augment.random import make_keys


def by_definition(params: AugParams, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each applied slot's argument ``(B,S)`` float32 and map ``(B,S,3,3)``, one slot and op at a time."""
    batch, slots = params.ops.shape
    arguments, maps = np.zeros((batch, slots), np.float32), np.tile(np.eye(3), (batch, slots, 1, 1))
    for slot in range(slots):
        for i in range(batch):
            if not params.applied[i, slot]:
                continue
            name = params.op_names[int(params.ops[i, slot])]
            level, sign = params.levels[i : i + 1, slot], params.signs[i : i + 1, slot]
            arguments[i, slot] = op_argument(name, level, sign, height=h, width=w).numpy()[0]
            if BY_NAME[name].inverse_map is not None:
                maps[i, slot] = BY_NAME[name].inverse_map(
                    arguments[i : i + 1, slot].astype(np.float64), h, w
                )[0]
    return arguments, maps


POLICIES = [
    RandAugment(2, 9),
    RandAugment(3, 12, 4.0, prob=0.7, ops=list(OP_NAMES)),  # levels drawn from a continuum
    AutoAugment("imagenet"),
    TrivialAugment(30),
]


@pytest.mark.parametrize("policy", POLICIES, ids=["ra", "ra-std", "aa", "ta"])
def test_slot_numbers_are_the_op_tables_bit_for_bit_from_memory_or_not(policy, monkeypatch):
    monkeypatch.setattr(plan, "_KNOWN_SLOTS", {})
    monkeypatch.setattr(plan, "_KNOWN_SLOTS_LIMIT", 40)  # small: the memory starts afresh now and then
    for seed in range(4):
        params = AugmentPipeline(policy, 20, 27).sample(make_keys(seed, 0, torch.arange(24)))
        arguments, maps = plan._slot_numbers(params, 20, 27)
        expected_arguments, expected_maps = by_definition(params, 20, 27)
        assert arguments.tobytes() == expected_arguments.tobytes()
        if maps is not None:
            assert maps.tobytes() == expected_maps.tobytes()
        else:
            assert np.array_equal(expected_maps, np.tile(np.eye(3), (*params.ops.shape, 1, 1)))
