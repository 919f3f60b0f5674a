"""Per-sample augmentation policies: AutoAugment, RandAugment, TrivialAugment and a single fixed op.

Every policy splits augmentation in two so that it can be replayed, cached and inspected:
``sample(keys)`` draws all random decisions of each sample from its counter-based key
(:mod:`kdforaa.augment.random`) into an :class:`~kdforaa.augment.params.AugParams`, and
``apply(x, params)`` (:mod:`kdforaa.augment.apply`) is a pure function of the images and those
parameters. Ops are chosen independently per sample. A policy only says how ops, levels and
"applied" flags are drawn; this module also holds the policies' published tables.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal, overload

import torch

from kdforaa.augment import checks, pixels, resample
from kdforaa.augment import random as rnd
from kdforaa.augment.apply import apply_params
from kdforaa.augment.op_table import (
    ARGUMENT_FREE_OPS,
    MAX_LEVEL,
    OP_NAMES,
    OPS,
    SIGNED_OPS,
    check_op_name,
)
from kdforaa.augment.params import AugParams
from kdforaa.errors import BadInput

# The 14 ops of the RandAugment paper (Cubuk et al. 2020) in its order, which the draws index; TrivialAugment
# uses the same set. Each op's position is in the op table.
RANDAUGMENT_OPS: tuple[str, ...] = tuple(
    spec.name
    for spec in sorted(OPS, key=lambda spec: spec.randaugment_position or 0)
    if spec.randaugment_position is not None
)

# More ops per sample than this leave nothing of the image; the bound keeps the (B, num_ops) draws small.
MAX_NUM_OPS = 100

# AutoAugment's published sub-policies (Cubuk et al. 2019, appendix): (op, probability, level 0..10).
SubPolicy = tuple[tuple[str, float, int | None], tuple[str, float, int | None]]
AUTOAUGMENT_POLICIES: dict[str, tuple[SubPolicy, ...]] = {
    "imagenet": (
        (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
        (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
        (("equalize", 0.8, None), ("equalize", 0.6, None)),
        (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
        (("equalize", 0.4, None), ("solarize", 0.2, 4)),
        (("equalize", 0.4, None), ("rotate", 0.8, 8)),
        (("solarize", 0.6, 3), ("equalize", 0.6, None)),
        (("posterize", 0.8, 5), ("equalize", 1.0, None)),
        (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
        (("equalize", 0.6, None), ("posterize", 0.4, 6)),
        (("rotate", 0.8, 8), ("color", 0.4, 0)),
        (("rotate", 0.4, 9), ("equalize", 0.6, None)),
        (("equalize", 0.0, None), ("equalize", 0.8, None)),
        (("invert", 0.6, None), ("equalize", 1.0, None)),
        (("color", 0.6, 4), ("contrast", 1.0, 8)),
        (("rotate", 0.8, 8), ("color", 1.0, 2)),
        (("color", 0.8, 8), ("solarize", 0.8, 7)),
        (("sharpness", 0.4, 7), ("invert", 0.6, None)),
        (("shear_x", 0.6, 5), ("equalize", 1.0, None)),
        (("color", 0.4, 0), ("equalize", 0.6, None)),
        (("equalize", 0.4, None), ("solarize", 0.2, 4)),
        (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
        (("invert", 0.6, None), ("equalize", 1.0, None)),
        (("color", 0.6, 4), ("contrast", 1.0, 8)),
        (("equalize", 0.8, None), ("equalize", 0.6, None)),
    ),
    "cifar10": (
        (("invert", 0.1, None), ("contrast", 0.2, 6)),
        (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
        (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
        (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
        (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
        (("color", 0.4, 3), ("brightness", 0.6, 7)),
        (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
        (("equalize", 0.6, None), ("equalize", 0.5, None)),
        (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
        (("color", 0.7, 7), ("translate_x", 0.5, 8)),
        (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
        (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
        (("brightness", 0.9, 6), ("color", 0.2, 8)),
        (("solarize", 0.5, 2), ("invert", 0.0, None)),
        (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
        (("equalize", 0.2, None), ("equalize", 0.6, None)),
        (("color", 0.9, 9), ("equalize", 0.6, None)),
        (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
        (("brightness", 0.1, 3), ("color", 0.7, 0)),
        (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
        (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.9, None), ("solarize", 0.8, 3)),
        (("equalize", 0.8, None), ("invert", 0.1, None)),
        (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
    ),
    "svhn": (
        (("shear_x", 0.9, 4), ("invert", 0.2, None)),
        (("shear_y", 0.9, 8), ("invert", 0.7, None)),
        (("equalize", 0.6, None), ("solarize", 0.6, 6)),
        (("invert", 0.9, None), ("equalize", 0.6, None)),
        (("equalize", 0.6, None), ("rotate", 0.9, 3)),
        (("shear_x", 0.9, 4), ("autocontrast", 0.8, None)),
        (("shear_y", 0.9, 8), ("invert", 0.4, None)),
        (("shear_y", 0.9, 5), ("solarize", 0.2, 6)),
        (("invert", 0.9, None), ("autocontrast", 0.8, None)),
        (("equalize", 0.6, None), ("rotate", 0.9, 3)),
        (("shear_x", 0.9, 4), ("solarize", 0.3, 3)),
        (("shear_y", 0.8, 8), ("invert", 0.7, None)),
        (("equalize", 0.9, None), ("translate_y", 0.6, 6)),
        (("invert", 0.9, None), ("equalize", 0.6, None)),
        (("contrast", 0.3, 3), ("rotate", 0.8, 4)),
        (("invert", 0.8, None), ("translate_y", 0.0, 2)),
        (("shear_y", 0.7, 6), ("solarize", 0.4, 8)),
        (("invert", 0.6, None), ("rotate", 0.8, 4)),
        (("shear_y", 0.3, 7), ("translate_x", 0.9, 3)),
        (("shear_x", 0.1, 6), ("invert", 0.6, None)),
        (("solarize", 0.7, 2), ("translate_y", 0.6, 7)),
        (("shear_y", 0.8, 4), ("invert", 0.8, None)),
        (("shear_x", 0.7, 9), ("translate_y", 0.8, 3)),
        (("shear_y", 0.8, 5), ("autocontrast", 0.7, None)),
        (("shear_x", 0.7, 2), ("invert", 0.1, None)),
    ),
    # ImageNet policy of the TPU EfficientNet code (timm's "v0"), levels on our scale as published.
    "v0": (
        (("equalize", 0.8, None), ("shear_y", 0.8, 4)),
        (("color", 0.4, 9), ("equalize", 0.6, None)),
        (("color", 0.4, 1), ("rotate", 0.6, 8)),
        (("solarize", 0.8, 3), ("equalize", 0.4, None)),
        (("solarize", 0.4, 2), ("solarize", 0.6, 2)),
        (("color", 0.2, 0), ("equalize", 0.8, None)),
        (("equalize", 0.4, None), ("solarize_add", 0.8, 3)),
        (("shear_x", 0.2, 9), ("rotate", 0.6, 8)),
        (("color", 0.6, 1), ("equalize", 1.0, None)),
        (("invert", 0.4, None), ("rotate", 0.6, 0)),
        (("equalize", 1.0, None), ("shear_y", 0.6, 3)),
        (("color", 0.4, 7), ("equalize", 0.6, None)),
        (("posterize", 0.4, 6), ("autocontrast", 0.4, None)),
        (("solarize", 0.6, 8), ("color", 0.6, 9)),
        (("solarize", 0.2, 4), ("rotate", 0.8, 9)),
        (("rotate", 1.0, 7), ("translate_y", 0.8, 9)),
        (("shear_x", 0.0, 0), ("solarize", 0.8, 4)),
        (("shear_y", 0.8, 0), ("color", 0.6, 4)),
        (("color", 1.0, 0), ("rotate", 0.6, 2)),
        (("equalize", 0.8, None), ("equalize", 0.0, None)),
        (("equalize", 1.0, None), ("autocontrast", 0.6, None)),
        (("shear_y", 0.4, 7), ("solarize_add", 0.6, 7)),
        (("posterize", 0.8, 2), ("solarize", 0.6, 10)),
        (("solarize", 0.6, 8), ("equalize", 0.6, None)),
        (("color", 0.8, 6), ("rotate", 0.4, 5)),
    ),
}


# ----------------------------------------------------------------------------------------- checks
def _check_level(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_LEVEL:
        raise BadInput(f"{name}={value!r} must be a number in 0..{MAX_LEVEL:g}")
    return float(value)


def _check_choice(value: str, name: str, accepted: Sequence[str]) -> str:
    if value not in accepted:
        raise BadInput(f"{name}={value!r} is not accepted; use one of: {', '.join(accepted)}")
    return value


# --------------------------------------------------------------------------------------- policies
_ARGUMENT_FREE = torch.tensor([name in ARGUMENT_FREE_OPS for name in OP_NAMES])
_UNSIGNED = torch.tensor([name not in SIGNED_OPS for name in OP_NAMES])


def _op_ids(names: Sequence[str]) -> torch.Tensor:
    return torch.tensor([OP_NAMES.index(name) for name in names], dtype=torch.int64)


def _op_set(names: Sequence[str]) -> tuple[str, ...]:
    """The validated op names a policy draws from (BadInput naming ``ops`` otherwise)."""
    if isinstance(names, str) or not isinstance(names, Collection) or len(names) == 0:
        raise BadInput(f"ops={names!r} must list at least one op; accepted: {', '.join(OP_NAMES)}")
    return tuple(check_op_name(op, "ops") for op in names)


def _ops_setting(ops: tuple[str, ...]) -> dict[str, object]:
    """``{"ops": ops}`` for a repr, or nothing when they are the paper's 14 (the default)."""
    return {} if ops == RANDAUGMENT_OPS else {"ops": list(ops)}


def _jitter(
    levels: torch.Tensor, keys: torch.Tensor, std: float, ceiling: float | None = None
) -> torch.Tensor:
    """Per-sample, per-slot level drawn from N(level, std), floored at 0 and capped at ``ceiling`` when
    one is given (std = 0: unchanged)."""
    if std == 0:
        return levels
    noise = rnd.normal(keys, "level", levels.shape[1]).to(torch.float32)
    return (levels + std * noise).clamp(min=0.0, max=ceiling)


def _check_ceiling(value: float | None) -> float | None:
    return None if value is None else _check_level(value, "magnitude_max")


class Augmentation:
    """What every augmentation does with its draws: ``sample(keys)`` -> :class:`AugParams`, then
    ``apply(x, params)`` with the shared ``fill`` and ``interpolation``. Subclasses say how to sample."""

    def __init__(self, *, fill: int = 0, interpolation: str = "nearest") -> None:
        checks.check_fill(fill)
        self.fill = fill
        self.interpolation = _check_choice(interpolation, "interpolation", resample.INTERPOLATIONS)

    def sample(self, keys: torch.Tensor) -> AugParams:
        """Per-sample parameters for ``keys`` ``(B,)`` int64; the same key always gives the same draw."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: AugParams, *, backend: str = "auto") -> torch.Tensor:
        """``x`` ``(B,C,H,W) uint8`` augmented as ``params`` say (deterministic); ``backend`` is one of
        :data:`~kdforaa.augment.apply.BACKENDS` (the same bytes from each)."""
        return apply_params(x, params, fill=self.fill, interpolation=self.interpolation, backend=backend)

    @overload
    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        keys: torch.Tensor | None = None,
        backend: str = "auto",
        return_params: Literal[False] = False,
    ) -> torch.Tensor: ...

    @overload
    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        keys: torch.Tensor | None = None,
        backend: str = "auto",
        return_params: Literal[True],
    ) -> tuple[torch.Tensor, AugParams]: ...

    @overload
    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        keys: torch.Tensor | None = None,
        backend: str = "auto",
        return_params: bool,
    ) -> torch.Tensor | tuple[torch.Tensor, AugParams]: ...

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        keys: torch.Tensor | None = None,
        backend: str = "auto",
        return_params: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, AugParams]:
        """Augment a ``(B,C,H,W)`` batch: uint8 in, uint8 out; float in ``[0, 1]`` in, the same float
        dtype out (converted exactly as :mod:`kdforaa.augment.pixels` says, so the bytes are those of
        the uint8 path). On the batch's device.

        Each sample's randomness comes from its key: ``keys`` ``(B,)`` int64 (e.g.
        ``make_keys(seed, epoch, indices)``, reproducible), else fresh keys from ``generator`` (on its
        own device) or torch's default generator of ``x``'s device. ``return_params=True`` returns
        ``(images, params)``: the :class:`AugParams` drawn, whose ``params.strongest_level`` is each sample's
        ``(B,)`` strongest level (for a per-sample K schedule).
        """
        if keys is not None and generator is not None:
            raise BadInput("pass keys or a generator, not both: keys already fix every random draw")
        floating = isinstance(x, torch.Tensor) and x.is_floating_point()
        images = pixels.to_uint8(x) if floating else x
        checks.check_images(images)
        if keys is None:
            keys = rnd.draw_keys(images.shape[0], generator, images.device)
        elif len(rnd.check_keys(keys)) != images.shape[0]:
            raise BadInput(f"keys has {len(keys)} entries for a batch of {images.shape[0]} images")
        params = self.sample(keys)
        out = self.apply(images, params, backend=backend)
        if floating:
            out = pixels.to_float(out, x.dtype)
        return (out, params) if return_params else out

    def settings(self) -> dict[str, object]:
        """What this policy was built with, by argument name (its ``repr`` shows them)."""
        return {"fill": self.fill, "interpolation": self.interpolation}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.settings().items())})"


class Policy(Augmentation):
    """Shared part of every policy: subclasses only say how ops, levels and applied flags are drawn."""

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ops, levels, applied)``, each ``(B,S)``."""
        raise NotImplementedError

    def sample(self, keys: torch.Tensor) -> AugParams:
        """Per-sample parameters for ``keys`` ``(B,)`` int64; the same key always gives the same draw."""
        op_ids, levels, applied = self._draw(rnd.check_keys(keys))
        signs = torch.where(rnd.uniform(keys, "sign", op_ids.shape[1]) < 0.5, -1, 1).to(torch.int8)
        signs = torch.where(_UNSIGNED[op_ids], torch.ones_like(signs), signs)
        levels = torch.where(_ARGUMENT_FREE[op_ids], torch.zeros_like(levels), levels.to(torch.float32))
        return AugParams(ops=op_ids, levels=levels, signs=signs, applied=applied)


class RandAugment(Policy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops drawn uniformly per sample, all at ``magnitude``.

    ``magnitude_std > 0`` draws each op's level from N(magnitude, std) floored at 0 and, when
    ``magnitude_max`` is set, capped there (timm caps at 10); ``prob`` < 1 applies each drawn op with
    that probability (timm uses 0.5); ``ops`` replaces the paper's 14 ops.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        magnitude_std: float = 0.0,
        *,
        magnitude_max: float | None = None,
        prob: float = 1.0,
        ops: Sequence[str] = RANDAUGMENT_OPS,
        fill: int = 0,
        interpolation: str = "nearest",
    ) -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or not 0 <= num_ops <= MAX_NUM_OPS:
            raise BadInput(f"num_ops={num_ops!r} must be an integer in 0..{MAX_NUM_OPS}")
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0.0 <= prob <= 1.0:
            raise BadInput(f"prob={prob!r} must be a probability in [0, 1]")
        self.num_ops = num_ops
        self.magnitude = _check_level(magnitude, "magnitude")
        self.magnitude_std = _check_level(magnitude_std, "magnitude_std")
        self.magnitude_max = _check_ceiling(magnitude_max)
        self.prob = prob
        self.ops = _op_set(ops)
        self._ids = _op_ids(self.ops)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        op_ids = self._ids[rnd.integers(keys, "op", len(self._ids), self.num_ops)]
        levels = _jitter(
            torch.full(op_ids.shape, self.magnitude), keys, self.magnitude_std, self.magnitude_max
        )
        applied = rnd.uniform(keys, "apply", self.num_ops) < self.prob
        return op_ids, levels, applied

    def settings(self) -> dict[str, object]:
        mine: dict[str, object] = {"num_ops": self.num_ops, "magnitude": self.magnitude}
        mine |= {"magnitude_std": self.magnitude_std, "magnitude_max": self.magnitude_max, "prob": self.prob}
        return mine | _ops_setting(self.ops) | super().settings()


class AutoAugment(Policy):
    """AutoAugment (Cubuk et al. 2019): one of the published sub-policies drawn per sample.

    The published magnitudes (levels 0..9 on the 0..10 scale) go through our level table, in the
    increasing convention (as torchvision reads them). ``magnitude_scale`` multiplies every level, so
    2.0 pushes a published level 9 to 18; ``magnitude_std`` adds per-sample Gaussian noise to levels
    (floored at 0, capped at ``magnitude_max`` when set).
    """

    def __init__(
        self,
        policy: str = "imagenet",
        *,
        magnitude_scale: float = 1.0,
        magnitude_std: float = 0.0,
        magnitude_max: float | None = None,
        fill: int = 0,
        interpolation: str = "nearest",
    ) -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        self.policy = _check_choice(policy, "policy", tuple(AUTOAUGMENT_POLICIES))
        self.magnitude_scale = _check_level(magnitude_scale, "magnitude_scale")
        self.magnitude_std = _check_level(magnitude_std, "magnitude_std")
        self.magnitude_max = _check_ceiling(magnitude_max)
        table = AUTOAUGMENT_POLICIES[policy]
        self._ids = torch.stack([_op_ids([op for op, _, _ in sub]) for sub in table])
        self._probs = torch.tensor([[p for _, p, _ in sub] for sub in table], dtype=torch.float64)
        self._levels = torch.tensor([[lv or 0 for _, _, lv in sub] for sub in table], dtype=torch.float32)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        chosen = rnd.integers(keys, "subpolicy", len(self._ids))[:, 0]
        levels = self._levels[chosen] * self.magnitude_scale
        levels = _jitter(levels, keys, self.magnitude_std, self.magnitude_max)
        applied = rnd.uniform(keys, "apply", 2) < self._probs[chosen]
        return self._ids[chosen], levels, applied

    def settings(self) -> dict[str, object]:
        mine = {"policy": self.policy, "magnitude_scale": self.magnitude_scale}
        mine |= {"magnitude_std": self.magnitude_std, "magnitude_max": self.magnitude_max}
        return mine | super().settings()


class TrivialAugment(Policy):
    """TrivialAugment-wide (Müller & Hutter 2021): one op per sample at a level uniform in 0..max_level.

    TA-wide draws one of 31 magnitude bins; here bin b is level b on our scale (``max_level=30``), so
    levels stay comparable with RandAugment's. At level 30: rotate ±90° (TA-wide ±135°), shear ±0.9
    (±0.99), translate ±1.35 of the side (±32 px), enhance factors 1 ± 2.7 floored at 0 (1 ± 0.99),
    posterize 0 bits from level 19 (2 bits), solarize threshold 0 from level 10 (0).
    """

    def __init__(
        self,
        max_level: int = 30,
        *,
        ops: Sequence[str] = RANDAUGMENT_OPS,
        fill: int = 0,
        interpolation: str = "nearest",
    ) -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        if isinstance(max_level, bool) or not isinstance(max_level, int) or not 0 <= max_level <= MAX_LEVEL:
            raise BadInput(f"max_level={max_level!r} must be an integer in 0..{MAX_LEVEL:g}")
        self.max_level = max_level
        self.ops = _op_set(ops)
        self._ids = _op_ids(self.ops)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        op_ids = self._ids[rnd.integers(keys, "op", len(self._ids))]
        levels = rnd.integers(keys, "level", self.max_level + 1).to(torch.float32)
        return op_ids, levels, torch.ones_like(op_ids, dtype=torch.bool)

    def settings(self) -> dict[str, object]:
        return {"max_level": self.max_level} | _ops_setting(self.ops) | super().settings()


class SingleOp(Policy):
    """Exactly one named op at a fixed level on every sample, with a random sign where signed.

    Used to measure what one op does at one level (outlier analysis, augmentation grids).
    """

    def __init__(self, op: str, level: float, *, fill: int = 0, interpolation: str = "nearest") -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        self.op = check_op_name(op)
        self.level = _check_level(level, "level")

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        op_ids = torch.full((len(keys), 1), OP_NAMES.index(self.op), dtype=torch.int64)
        levels = torch.full((len(keys), 1), self.level)
        return op_ids, levels, torch.ones_like(op_ids, dtype=torch.bool)

    def settings(self) -> dict[str, object]:
        return {"op": self.op, "level": self.level} | super().settings()
