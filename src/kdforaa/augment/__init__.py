"""Per-sample, batched augmentation: ops, the level table, policies and the train-time pipeline."""

from kdforaa.augment.levels import OP_NAMES, op_argument
from kdforaa.augment.pipeline import AugmentPipeline, build_augment, build_policy, build_single_op
from kdforaa.augment.policies import (
    AugParams,
    AutoAugment,
    Policy,
    RandAugment,
    SingleOp,
    TrivialAugment,
    apply_params,
    draw_keys,
)

__all__ = [
    "OP_NAMES",
    "AugParams",
    "AugmentPipeline",
    "AutoAugment",
    "Policy",
    "RandAugment",
    "SingleOp",
    "TrivialAugment",
    "apply_params",
    "build_augment",
    "build_policy",
    "build_single_op",
    "draw_keys",
    "op_argument",
]
