"""``AugParams``: everything ``apply`` needs to reproduce a batch's augmentation, one row per sample.

A policy's ``sample(keys)`` draws every random decision of each sample into an AugParams; applying
them (:mod:`kdforaa.augment.apply`) is a pure function of the images and these parameters, so a
batch's augmentation can be replayed, cached (``to_dict``/``from_dict``, loadable with
``weights_only=True``) and inspected (``describe``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from kdforaa.augment.op_table import ARGUMENT_FREE_OPS, OP_NAMES, SIGNED_OPS
from kdforaa.errors import BadInput

# The dtype kinds each AugParams tensor may have; the optional ones may be None.
_NUMBER = ("integer", "floating")
_FIELD_KINDS = {
    "ops": ("integer",),
    "levels": _NUMBER,
    "signs": _NUMBER,
    "applied": ("bool",),
    "crop": ("integer",),
    "flip": ("bool",),
    "cutout": ("integer",),
}
_OPTIONAL_FIELDS = ("crop", "flip", "cutout")


@dataclass(frozen=True, eq=False)
class AugParams:
    """Everything ``apply`` needs to reproduce a batch's augmentation; CPU tensors, one row per sample.

    ``S`` is the number of op slots of the policy (2 for AutoAugment, ``num_ops`` for RandAugment).
    """

    ops: torch.Tensor  # (B,S) int64: index into op_names
    levels: torch.Tensor  # (B,S) float32: level of each slot (0 for ops without an argument)
    signs: torch.Tensor  # (B,S) int8: +1 or -1 (always +1 for unsigned ops)
    applied: torch.Tensor  # (B,S) bool: False where the slot's probability said "skip"
    op_names: tuple[str, ...] = OP_NAMES
    crop: torch.Tensor | None = None  # (B,2) int64: (top, left) input pixel at the padded crop's corner
    flip: torch.Tensor | None = None  # (B,) bool: horizontal flip
    cutout: torch.Tensor | None = None  # (B,4) int64: (top, left, bottom, right) of the erased box

    def __post_init__(self) -> None:
        # Params may come from a cache file: refuse what apply would crash on or silently ignore.
        for name, kinds in _FIELD_KINDS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_FIELDS:
                continue
            if not isinstance(value, torch.Tensor) or _dtype_kind(value) not in kinds:
                got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
                raise BadInput(f"AugParams: {name} must be a {' or '.join(kinds)} tensor, got {got}")
        shape = self.ops.shape
        if self.ops.dim() != 2 or any(t.shape != shape for t in (self.levels, self.signs, self.applied)):
            raise BadInput("AugParams: ops, levels, signs and applied must all have the same (B,S) shape")
        extras = {"crop": (2,), "flip": (), "cutout": (4,)}
        for name, tail in extras.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (shape[0], *tail):
                raise BadInput(
                    f"AugParams: {name} must have shape {(shape[0], *tail)}, got {tuple(value.shape)}"
                )
        if not isinstance(self.op_names, tuple | list) or not all(n in OP_NAMES for n in self.op_names):
            raise BadInput(f"AugParams: op_names must all be known ops ({', '.join(OP_NAMES)})")
        if self.ops.numel() and not (0 <= int(self.ops.min()) and int(self.ops.max()) < len(self.op_names)):
            raise BadInput(f"AugParams: ops must index op_names (0..{len(self.op_names) - 1})")
        if not ((self.signs == 1) | (self.signs == -1)).all():
            raise BadInput("AugParams: signs must be +1 or -1")
        if not (torch.isfinite(self.levels) & (self.levels >= 0)).all():
            raise BadInput("AugParams: levels must be finite numbers >= 0")

    def __len__(self) -> int:
        return self.ops.shape[0]

    @classmethod
    def no_ops(cls, batch_size: int) -> AugParams:
        """Parameters with no op slot (S = 0): the pipeline without a policy (crop, flip, cutout only)."""
        return cls(
            ops=torch.zeros(batch_size, 0, dtype=torch.int64),
            levels=torch.zeros(batch_size, 0),
            signs=torch.zeros(batch_size, 0, dtype=torch.int8),
            applied=torch.zeros(batch_size, 0, dtype=torch.bool),
        )

    def ops_in_use(self) -> Iterator[tuple[str, np.ndarray]]:
        """Each op that some applied slot holds, with the ``(B,S)`` bool mask of those slots."""
        chosen, on = self.ops.numpy(), self.applied.numpy()
        for index in np.unique(chosen[on]).tolist():
            yield self.op_names[index], on & (chosen == index)

    @property
    def strongest_level(self) -> torch.Tensor:
        """``(B,)`` float32: the strongest level each sample was augmented with (0 if none applied); one
        number per sample, where ``levels`` has one per slot."""
        strength = torch.where(self.applied, self.levels, torch.zeros_like(self.levels))
        return torch.cat([torch.zeros(len(self), 1), strength], dim=1).amax(dim=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors, lists and strings: saveable with ``torch.save`` and loadable with weights_only."""
        out: dict[str, Any] = {"op_names": list(self.op_names)}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugParams:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise BadInput(f"AugParams.from_dict needs a dict from to_dict, got {type(data).__name__}")
        missing = sorted({"op_names", "ops", "levels", "signs", "applied"} - set(data))
        if missing:
            raise BadInput(f"AugParams.from_dict: the dict lacks {', '.join(missing)}")
        if not isinstance(data["op_names"], list | tuple):
            raise BadInput("AugParams.from_dict: op_names must be a list of op names")
        tensors = {f.name: data[f.name] for f in fields(cls) if f.name != "op_names" and f.name in data}
        return cls(op_names=tuple(data["op_names"]), **tensors)

    def describe(self, i: int) -> str:
        """Sample ``i`` in words, e.g. ``"rotate L=15 -, solarize L=15, flip"``."""
        parts = []
        for slot in range(self.ops.shape[1]):
            if not self.applied[i, slot]:
                continue
            name = self.op_names[int(self.ops[i, slot])]
            text = name if name in ARGUMENT_FREE_OPS else f"{name} L={float(self.levels[i, slot]):.3g}"
            if name in SIGNED_OPS:
                text += " -" if int(self.signs[i, slot]) < 0 else " +"
            parts.append(text)
        if self.crop is not None and bool(self.crop[i].any()):
            parts.append(f"crop top={int(self.crop[i, 0]):+d} left={int(self.crop[i, 1]):+d}")
        if self.flip is not None and bool(self.flip[i]):
            parts.append("flip")
        if self.cutout is not None:
            top, left, bottom, right = (int(v) for v in self.cutout[i])
            if bottom > top and right > left:
                parts.append(f"cutout y={top}:{bottom} x={left}:{right}")
        return ", ".join(parts) or "identity"


def _dtype_kind(t: torch.Tensor) -> str:
    """``"bool"``, ``"integer"``, ``"floating"`` or ``"complex"``: what a tensor's dtype holds."""
    if t.dtype == torch.bool:
        return "bool"
    if t.is_complex():
        return "complex"
    return "floating" if t.is_floating_point() else "integer"
