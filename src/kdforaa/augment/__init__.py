"""Per-sample, batched augmentation: the op table, ops, policies and the train-time pipeline.

Modules, bottom to top: ``random`` (counter-based keys), ``pixels`` (the exact float <-> uint8
conversion), ``checks`` (images, per-sample arguments, fill), ``affine`` (inverse maps and their
fixed-point sample points), ``pieces`` (a batch in cache-sized pieces), ``kernels`` (the colour ops'
torch kernels), ``resample`` (one warp per batch), ``op_table`` (every op's facts, one entry per op),
``native_build`` (compiling the C kernels: the wheel's prebuilt library and the run-time build),
``native_library`` (finding and loading a kernel library), ``params`` (``AugParams``), ``plan`` (the
per-sample plan the fused backends run), ``ops`` (the public, validated ops), ``native`` (calling the C
kernels), ``triton_kernels`` (the Triton kernels and their launcher), ``apply`` (applying params on a
backend), ``policies`` (AutoAugment, RandAugment, TrivialAugment), ``pipeline`` (policy + crop, flip,
cutout, built from the config), ``timm_strings`` (policies from timm-style strings), ``module`` (any
policy as an ``nn.Module``). The import contracts in ``pyproject.toml`` are the authority on this order
(``tests/test_architecture.py`` compares the two).
"""

from kdforaa.augment.apply import BACKENDS, apply_params
from kdforaa.augment.module import Augment
from kdforaa.augment.op_table import OP_NAMES, OPS, OpSpec, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.augment.pipeline import AugmentPipeline, build_augment, build_policy
from kdforaa.augment.pixels import to_float, to_uint8
from kdforaa.augment.policies import Augmentation, AutoAugment, Policy, RandAugment, SingleOp, TrivialAugment
from kdforaa.augment.random import draw_keys, make_keys
from kdforaa.augment.timm_strings import policy_from_string

__all__ = [
    "BACKENDS",
    "OPS",
    "OP_NAMES",
    "AugParams",
    "Augment",
    "AugmentPipeline",
    "Augmentation",
    "AutoAugment",
    "OpSpec",
    "Policy",
    "RandAugment",
    "SingleOp",
    "TrivialAugment",
    "apply_params",
    "build_augment",
    "build_policy",
    "draw_keys",
    "make_keys",
    "op_argument",
    "policy_from_string",
    "to_float",
    "to_uint8",
]
