"""Per-sample augmentation policies: AutoAugment, RandAugment, TrivialAugment and a single fixed op.

Every policy splits augmentation in two so that it can be replayed, cached and inspected:
``sample(keys)`` draws all random decisions of each sample from its counter-based key
(:mod:`kdforaa.augment.random`) into an :class:`AugParams`, and ``apply(x, params)`` is a pure function
of the images and those parameters. Ops are chosen independently per sample.

Order inside ``apply`` (a fused resample cannot interleave with colour ops): first the colour ops in
their sampled order, each op applied batched to the samples that drew it in that slot; then every
geometric op of a sample (and the pipeline's crop and flip) composed into one affine matrix, applied
with a single warp per batch; then cutout. Pixels with no source take the policy's ``fill``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from kdforaa.augment import geometry, native, ops
from kdforaa.augment import random as rnd
from kdforaa.augment.levels import (
    ARGUMENT_FREE_OPS,
    GEOMETRIC_OPS,
    LEVEL_TO_ARGUMENT,
    MAX_LEVEL,
    OP_NAMES,
    SIGNED_OPS,
    check_op_name,
    op_argument,
)
from kdforaa.errors import BadInput

# The 14 ops of the RandAugment paper (Cubuk et al. 2020); TrivialAugment uses the same set.
RANDAUGMENT_OPS: tuple[str, ...] = (
    "identity",
    "autocontrast",
    "equalize",
    "rotate",
    "solarize",
    "color",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
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
}


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
                raise ValueError(f"AugParams: {name} must be a {' or '.join(kinds)} tensor, got {got}")
        shape = self.ops.shape
        if self.ops.dim() != 2 or any(t.shape != shape for t in (self.levels, self.signs, self.applied)):
            raise ValueError("AugParams: ops, levels, signs and applied must all have the same (B,S) shape")
        extras = {"crop": (2,), "flip": (), "cutout": (4,)}
        for name, tail in extras.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (shape[0], *tail):
                raise ValueError(
                    f"AugParams: {name} must have shape {(shape[0], *tail)}, got {tuple(value.shape)}"
                )
        if not isinstance(self.op_names, tuple | list) or not all(n in OP_NAMES for n in self.op_names):
            raise ValueError(f"AugParams: op_names must all be known ops ({', '.join(OP_NAMES)})")
        if self.ops.numel() and not (0 <= int(self.ops.min()) and int(self.ops.max()) < len(self.op_names)):
            raise ValueError(f"AugParams: ops must index op_names (0..{len(self.op_names) - 1})")
        if not ((self.signs == 1) | (self.signs == -1)).all():
            raise ValueError("AugParams: signs must be +1 or -1")
        if not (torch.isfinite(self.levels) & (self.levels >= 0)).all():
            raise ValueError("AugParams: levels must be finite numbers >= 0")

    def __len__(self) -> int:
        return self.ops.shape[0]

    def ops_in_use(self) -> Iterator[tuple[str, np.ndarray]]:
        """Each op that some applied slot holds, with the ``(B,S)`` bool mask of those slots."""
        chosen, on = self.ops.numpy(), self.applied.numpy()
        for index in np.unique(chosen[on]).tolist():
            yield self.op_names[index], on & (chosen == index)

    @property
    def level(self) -> torch.Tensor:
        """``(B,)`` float32: the strongest level each sample was augmented with (0 if none applied)."""
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
            raise ValueError(f"AugParams.from_dict needs a dict from to_dict, got {type(data).__name__}")
        missing = sorted({"op_names", "ops", "levels", "signs", "applied"} - set(data))
        if missing:
            raise ValueError(f"AugParams.from_dict: the dict lacks {', '.join(missing)}")
        if not isinstance(data["op_names"], list | tuple):
            raise ValueError("AugParams.from_dict: op_names must be a list of op names")
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


# ----------------------------------------------------------------------------------------- checks
def _dtype_kind(t: torch.Tensor) -> str:
    """``"bool"``, ``"integer"``, ``"floating"`` or ``"complex"``: what a tensor's dtype holds."""
    if t.dtype == torch.bool:
        return "bool"
    if t.is_complex():
        return "complex"
    return "floating" if t.is_floating_point() else "integer"


def check_keys(keys: torch.Tensor) -> torch.Tensor:
    if not isinstance(keys, torch.Tensor) or keys.dtype != torch.int64 or keys.dim() != 1:
        raise ValueError("keys must be a (B,) int64 tensor from kdforaa.augment.random.make_keys")
    return keys


def _check_level(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_LEVEL:
        raise BadInput(f"{name}={value!r} must be a number in 0..{MAX_LEVEL:g}")
    return float(value)


def _check_choice(value: str, name: str, accepted: Sequence[str]) -> str:
    if value not in accepted:
        raise BadInput(f"{name}={value!r} is not accepted; use one of: {', '.join(accepted)}")
    return value


def draw_keys(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B,)`` int64 keys drawn from a torch generator, for plain use without sample indices."""
    return torch.randint(-(2**63), 2**63 - 1, (batch_size,), dtype=torch.int64, generator=generator)


# ------------------------------------------------------------------------------------------ apply
COLOUR_OPS = frozenset(OP_NAMES) - GEOMETRIC_OPS - {"identity"}


def _slot_groups(params: AugParams, slot: int) -> list[tuple[str | None, np.ndarray]]:
    """``(op name, rows)`` for every op in ``slot`` (name None: the slot was skipped), rows ascending."""
    chosen = np.where(params.applied[:, slot].numpy(), params.ops[:, slot].numpy(), -1)
    order = np.argsort(chosen, kind="stable")
    ids, starts = np.unique(chosen[order], return_index=True)
    rows = np.split(order, starts[1:]) if len(order) else []
    return [(params.op_names[i] if i >= 0 else None, r) for i, r in zip(ids.tolist(), rows, strict=True)]


def _writable(x: torch.Tensor, owned: bool) -> torch.Tensor:
    """A contiguous tensor equal to ``x`` that may be written in place (``x`` itself when owned)."""
    return x.contiguous() if owned else x.clone(memory_format=torch.contiguous_format)


def _colour_groups(params: AugParams, height: int, width: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(op name, rows, arguments)`` of every colour op, slot by slot, in the order they apply.

    ``arguments`` holds the op's ``(N,)`` float32 argument for ``rows`` (NaN for ops that take none).
    """
    tables: dict[str, np.ndarray] = {}
    groups = []
    for slot in range(params.ops.shape[1]):
        for name, rows in _slot_groups(params, slot):
            if name not in COLOUR_OPS:
                continue
            if name not in LEVEL_TO_ARGUMENT:
                groups.append((name, rows, np.full(len(rows), np.nan, dtype=np.float32)))
                continue
            if name not in tables:
                argument = op_argument(name, params.levels, params.signs, height=height, width=width)
                tables[name] = argument.numpy().astype(np.float32, copy=False)
            groups.append((name, rows, tables[name][rows, slot]))
    return groups


def _colour_pass(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    """Colour ops slot by slot, each op batched over the samples that drew it in that slot.

    Every group's rows and arguments reach the device in one copy each (a copy from pageable host memory
    waits for the GPU, so one per group would stall it once per group). Returns ``x`` itself when no
    colour op applies, else a new tensor.
    """
    groups = _colour_groups(params, *x.shape[-2:])
    if not groups:
        return x
    all_rows = torch.from_numpy(np.concatenate([rows for _, rows, _ in groups])).to(x.device)
    all_arguments = torch.from_numpy(np.concatenate([a for _, _, a in groups])).to(x.device)
    out, start = x, 0
    for name, rows, _ in groups:
        index, argument = all_rows[start : start + len(rows)], all_arguments[start : start + len(rows)]
        start += len(rows)
        argument = argument if name in LEVEL_TO_ARGUMENT else None
        if len(rows) == len(params):
            out = ops.run_checked(name, out, argument)
            continue
        changed = ops.run_checked(name, out.index_select(0, index), argument)
        out = _writable(out, owned=out is not x)
        geometry.write_rows(out, index, changed)
    return out


# geometric op -> its (N,3,3) inverse maps from (N,) float64 arguments, for (h, w) images
_GEOMETRIC_MAP = {
    "rotate": geometry.rotate_map,
    "shear_x": lambda arg, h, w: geometry.shear_x_map(arg),
    "shear_y": lambda arg, h, w: geometry.shear_y_map(arg),
    "translate_x": lambda arg, h, w: geometry.translate_map(arg, 0.0),
    "translate_y": lambda arg, h, w: geometry.translate_map(0.0, arg),
}


def _slot_maps(params: AugParams, h: int, w: int) -> list[np.ndarray]:
    """One ``(B,3,3)`` inverse map per slot (identity where the slot is not geometric); [] if none is."""
    maps = None
    for name, uses in params.ops_in_use():
        if name not in _GEOMETRIC_MAP:
            continue
        argument = op_argument(name, params.levels, params.signs, height=h, width=w).numpy()[uses]
        if maps is None:
            maps = np.tile(np.eye(3), (*uses.shape, 1, 1))
        # A slot holds one op: each sample's slot map is that op's.
        maps[uses] = _GEOMETRIC_MAP[name](argument.astype(np.float64), h, w)
    return [] if maps is None else list(maps.transpose(1, 0, 2, 3))


def _geometry(params: AugParams, h: int, w: int) -> np.ndarray | None:
    """``(B,3,3)`` inverse map of crop, flip, then each slot's geometric op; None if there are none."""
    steps = []
    if params.crop is not None:
        top, left = params.crop.numpy().T
        steps.append(geometry.translate_map(left, top))
    if params.flip is not None:
        steps.append(geometry.flip_map(params.flip.numpy(), w))
    steps.extend(_slot_maps(params, h, w))
    return geometry.compose_maps(*steps) if steps else None


def _cut_out(x: torch.Tensor, boxes: torch.Tensor, fill: int) -> torch.Tensor:
    """Erase the ``(top, left, bottom, right)`` box of each sample to ``fill``."""
    h, w = x.shape[-2:]
    boxes = boxes.to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left, bottom, right = (b.view(-1, 1, 1) for b in boxes.unbind(1))
    inside = (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)
    return x.masked_fill(inside.unsqueeze(1), fill)


def _native_pass(x: torch.Tensor, params: AugParams, fill: int) -> torch.Tensor:
    """Colour ops and the nearest warp in the native kernels (CPU): the same bytes as the torch path."""
    batch, _, h, w = x.shape
    codes, arguments = native.colour_codes(params, h, w)
    matrix = _geometry(params, h, w)
    warps, rows, cols = np.full(batch, native.WARP_NONE, dtype=np.uint8), None, None
    if matrix is not None:
        m = np.broadcast_to(matrix, (batch, 3, 3))
        moving = geometry.moving_samples(m)
        if moving.any():
            rows, cols = np.zeros((batch, 2, h), np.int32), np.zeros((batch, 2, w), np.int32)
            rows[moving], cols[moving] = geometry.sample_parts(m[moving], h, w)
            runs, backward = geometry.row_runs(rows[moving], cols[moving])
            kinds = np.where(
                runs, np.where(backward, native.WARP_RUNS_BACKWARD, native.WARP_RUNS), native.WARP_GATHER
            )
            warps[moving] = kinds
    return native.apply(x, codes, arguments, warps, rows, cols, fill)


def apply_params(
    x: torch.Tensor, params: AugParams, *, fill: int = 0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Augment ``x`` ``(B,C,H,W) uint8`` (any device) exactly as ``params`` say; returns a new uint8 batch."""
    geometry.check_images(x)
    if len(params) != x.shape[0]:
        raise ValueError(f"params describe {len(params)} samples but x has {x.shape[0]}")
    h, w = x.shape[-2:]
    if native.usable(x, interpolation):
        out = _native_pass(x, params, fill)
    else:
        out = _colour_pass(x, params)
        matrix = _geometry(params, h, w)
        if matrix is not None:
            out = geometry.warp_moved(out, matrix, fill, interpolation, owned=out is not x)
    if params.cutout is not None:
        out = _cut_out(out, params.cutout, fill)
    return out if out is not x else x.clone()


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


def _jitter(levels: torch.Tensor, keys: torch.Tensor, std: float) -> torch.Tensor:
    """Per-sample, per-slot level drawn from N(level, std), floored at 0 (std = 0: unchanged)."""
    if std == 0:
        return levels
    noise = rnd.normal(keys, "level", levels.shape[1]).to(torch.float32)
    return (levels + std * noise).clamp(min=0.0)


class Policy:
    """Shared part of every policy: subclasses only say how ops, levels and applied flags are drawn."""

    def __init__(self, *, fill: int = 0, interpolation: str = "nearest") -> None:
        geometry.check_fill(fill)
        self.fill = fill
        self.interpolation = _check_choice(interpolation, "interpolation", geometry.INTERPOLATIONS)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ops, levels, applied)``, each ``(B,S)``."""
        raise NotImplementedError

    def sample(self, keys: torch.Tensor) -> AugParams:
        """Per-sample parameters for ``keys`` ``(B,)`` int64; the same key always gives the same draw."""
        op_ids, levels, applied = self._draw(check_keys(keys))
        signs = torch.where(rnd.uniform(keys, "sign", op_ids.shape[1]) < 0.5, -1, 1).to(torch.int8)
        signs = torch.where(_UNSIGNED[op_ids], torch.ones_like(signs), signs)
        levels = torch.where(_ARGUMENT_FREE[op_ids], torch.zeros_like(levels), levels.to(torch.float32))
        return AugParams(ops=op_ids, levels=levels, signs=signs, applied=applied)

    def apply(self, x: torch.Tensor, params: AugParams) -> torch.Tensor:
        """``x`` ``(B,C,H,W) uint8`` augmented as ``params`` say (deterministic)."""
        return apply_params(x, params, fill=self.fill, interpolation=self.interpolation)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch with fresh randomness from ``generator`` (torch's default one if None)."""
        geometry.check_images(x)
        return self.apply(x, self.sample(draw_keys(x.shape[0], generator)))


class RandAugment(Policy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops drawn uniformly per sample, all at ``magnitude``.

    ``magnitude_std > 0`` draws each op's level from N(magnitude, std) floored at 0; ``prob`` < 1
    applies each drawn op with that probability (timm uses 0.5); ``ops`` replaces the paper's 14 ops.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        magnitude_std: float = 0.0,
        *,
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
        self.prob = prob
        self.ops = _op_set(ops)
        self._ids = _op_ids(self.ops)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        op_ids = self._ids[rnd.integers(keys, "op", len(self._ids), self.num_ops)]
        levels = _jitter(torch.full(op_ids.shape, self.magnitude), keys, self.magnitude_std)
        applied = rnd.uniform(keys, "apply", self.num_ops) < self.prob
        return op_ids, levels, applied


class AutoAugment(Policy):
    """AutoAugment (Cubuk et al. 2019): one of the published sub-policies drawn per sample.

    The published magnitudes (levels 0..9 on the 0..10 scale) go through our level table, in the
    increasing convention (as torchvision reads them). ``magnitude_scale`` multiplies every level, so
    2.0 pushes a published level 9 to 18; ``magnitude_std`` adds per-sample Gaussian noise to levels.
    """

    def __init__(
        self,
        policy: str = "imagenet",
        *,
        magnitude_scale: float = 1.0,
        magnitude_std: float = 0.0,
        fill: int = 0,
        interpolation: str = "nearest",
    ) -> None:
        super().__init__(fill=fill, interpolation=interpolation)
        self.policy = _check_choice(policy, "policy", tuple(AUTOAUGMENT_POLICIES))
        self.magnitude_scale = _check_level(magnitude_scale, "magnitude_scale")
        self.magnitude_std = _check_level(magnitude_std, "magnitude_std")
        table = AUTOAUGMENT_POLICIES[policy]
        self._ids = torch.stack([_op_ids([op for op, _, _ in sub]) for sub in table])
        self._probs = torch.tensor([[p for _, p, _ in sub] for sub in table], dtype=torch.float64)
        self._levels = torch.tensor([[lv or 0 for _, _, lv in sub] for sub in table], dtype=torch.float32)

    def _draw(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        chosen = rnd.integers(keys, "subpolicy", len(self._ids))[:, 0]
        levels = _jitter(self._levels[chosen] * self.magnitude_scale, keys, self.magnitude_std)
        applied = rnd.uniform(keys, "apply", 2) < self._probs[chosen]
        return self._ids[chosen], levels, applied


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
