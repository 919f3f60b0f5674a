"""The train-time augmentation built from the config: policy, padded random crop, flip, cutout.

Order: the policy's colour ops, then one warp per batch that fuses crop, flip and the policy's
geometric ops (in that order), then cutout. Every pixel without a source (crop padding, rotated-in
corners, the cutout square) takes the config's ``fill``, 0 by default. All of it is drawn per sample
from the counter-based keys, so a sample's training image can be regenerated from
``(seed, epoch, index)``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from kdforaa.augment import checks
from kdforaa.augment import random as rnd
from kdforaa.augment.params import AugParams
from kdforaa.augment.policies import (
    RANDAUGMENT_OPS,
    Augmentation,
    AutoAugment,
    Policy,
    RandAugment,
    TrivialAugment,
)
from kdforaa.config import AugmentConfig
from kdforaa.errors import BadInput

# AutoAugment has no single magnitude: augment.magnitude / this value scales its published levels.
AUTOAUGMENT_REFERENCE_MAGNITUDE = 9.0


class AugmentPipeline(Augmentation):
    """``policy`` (or none), then random crop after zero padding, horizontal flip and cutout.

    Built for images of one size ``height x width`` (cutout boxes are drawn for that size).
    """

    def __init__(
        self,
        policy: Policy | None,
        height: int,
        width: int,
        *,
        crop_padding: int = 0,
        flip: bool = False,
        cutout: int = 0,
        fill: int = 0,
        interpolation: str = "nearest",
    ) -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value <= 0:
                raise BadInput(f"{name}={value!r} must be a positive number of pixels")
        for name, value in (("crop_padding", crop_padding), ("cutout", cutout)):
            if not isinstance(value, int) or value < 0:
                raise BadInput(f"{name}={value!r} must be an integer >= 0 (0 turns it off)")
        self.policy = policy
        self.height, self.width = height, width
        self.crop_padding, self.flip, self.cutout = crop_padding, bool(flip), cutout

    def settings(self) -> dict[str, object]:
        mine: dict[str, object] = {"policy": self.policy, "height": self.height, "width": self.width}
        mine |= {"crop_padding": self.crop_padding, "flip": self.flip, "cutout": self.cutout}
        return mine | super().settings()

    def sample(self, keys: torch.Tensor) -> AugParams:
        """The policy's parameters plus per-sample crop shift, flip flag and cutout box."""
        keys = rnd.check_keys(keys)
        params = self.policy.sample(keys) if self.policy is not None else AugParams.no_ops(len(keys))
        crop = flip = cutout = None
        if self.crop_padding > 0:
            pad = self.crop_padding
            crop = rnd.integers(keys, "crop", 2 * pad + 1, 2) - pad
        if self.flip:
            flip = rnd.uniform(keys, "flip")[:, 0] < 0.5
        if self.cutout > 0:
            size = torch.tensor([self.height, self.width])
            centre = (rnd.uniform(keys, "cutout", 2) * size).floor().long()
            start = centre - self.cutout // 2
            top_left, bottom_right = start.clamp(min=0), torch.minimum(start + self.cutout, size)
            cutout = torch.cat([top_left, bottom_right], dim=1)
        return replace(params, crop=crop, flip=flip, cutout=cutout)

    def apply(self, x: torch.Tensor, params: AugParams, *, backend: str = "auto") -> torch.Tensor:
        """``x`` ``(B,C,height,width) uint8`` augmented as ``params`` say (deterministic)."""
        checks.check_images(x)
        if tuple(x.shape[-2:]) != (self.height, self.width):
            size = (self.height, self.width)
            raise BadInput(f"x has images of {tuple(x.shape[-2:])} but the pipeline was built for {size}")
        return super().apply(x, params, backend=backend)


def build_policy(cfg: AugmentConfig) -> Policy | None:
    """The policy named by ``cfg.policy`` (None for ``"none"``).

    ``autoaugment`` scales the published levels by ``magnitude / 9`` (so the default 9 is the published
    policy and 18 doubles every level); ``trivialaugment`` draws its own levels and ignores ``magnitude``.
    """
    fill, interpolation = cfg.fill, cfg.interpolation
    if cfg.policy == "none":
        return None
    if cfg.policy == "randaugment":
        ops = RANDAUGMENT_OPS if cfg.ops is None else cfg.ops
        return RandAugment(
            cfg.num_ops, cfg.magnitude, cfg.magnitude_std, ops=ops, fill=fill, interpolation=interpolation
        )
    if cfg.policy == "autoaugment":
        scale = cfg.magnitude / AUTOAUGMENT_REFERENCE_MAGNITUDE
        return AutoAugment(
            cfg.autoaugment_policy,
            magnitude_scale=scale,
            magnitude_std=cfg.magnitude_std,
            fill=fill,
            interpolation=interpolation,
        )
    # "trivialaugment": the config admits no other name (AugmentConfig.policy is a Literal)
    return TrivialAugment(fill=fill, interpolation=interpolation)


def build_augment(cfg: AugmentConfig, height: int, width: int) -> AugmentPipeline:
    """The train-time augmentation of ``cfg`` for ``height x width`` images."""
    return AugmentPipeline(
        build_policy(cfg),
        height,
        width,
        crop_padding=cfg.crop_padding,
        flip=cfg.flip,
        cutout=cfg.cutout,
        fill=cfg.fill,
        interpolation=cfg.interpolation,
    )
