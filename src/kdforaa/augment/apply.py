"""Applying :class:`~kdforaa.augment.params.AugParams` to a batch, on the backend that runs it best.

Order (a fused resample cannot interleave with colour ops): first the colour ops in their sampled
order; then every geometric op of a sample (and the pipeline's crop and flip) composed into one
inverse affine map, applied with a single warp per batch; then Cutout. Pixels with no source take
``fill``. Every op fact (kind, level rule, kernel, inverse map, native code) comes from the op table.

Backends (``backend=``), all giving the same bytes:

- ``native``: CPU batches with nearest warps. ``native_kernels.c`` runs each sample's colour ops and
  its warp in one pass over cache-resident memory, threads splitting the batch (:mod:`.native`).
- ``torch``: any device, either interpolation. Each colour op runs batched over the samples that
  drew it in a slot (:mod:`.kernels`), then one warp per batch (:mod:`.geometry`).
- ``auto`` (the default): ``native`` where it can run, else ``torch``.
"""

from __future__ import annotations

import numpy as np
import torch

from kdforaa.augment import geometry, native
from kdforaa.augment.op_table import BY_NAME, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.errors import BadInput

BACKENDS = ("auto", "torch", "native")


def resolve_backend(backend: str, x: torch.Tensor, interpolation: str) -> str:
    """The backend that runs ``x``: ``auto`` chooses; an explicit choice that cannot run is BadInput."""
    if backend not in BACKENDS:
        raise BadInput(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    native_reason = _native_unusable(x.device, interpolation)
    if backend == "auto":
        return "torch" if native_reason else "native"
    if backend == "native" and native_reason:
        raise BadInput(
            f"backend='native' cannot run this batch: {native_reason}; use backend='auto' or 'torch'"
        )
    return backend


def describe_backend(device: torch.device, interpolation: str) -> str:
    """What ``auto`` runs batches on ``device`` with, as a run records it: ``native (prebuilt:avx2)``,
    ``native (built:native)``, ... or ``torch``."""
    if _native_unusable(device, interpolation):
        return "torch"
    return f"native ({native.describe()})"


def _native_unusable(device: torch.device, interpolation: str) -> str | None:
    """Why the native kernels cannot take a batch on ``device``, or None when they can."""
    if device.type != "cpu":
        return f"the native kernels run on the CPU and the batch is on {device}"
    if interpolation != "nearest":
        return "the native kernels warp with nearest interpolation only"
    if not native.enabled():
        return "they are switched off (KDFORAA_NATIVE=0)"
    if native.library() is None:
        return "none could be loaded or built here (install the kdforaa wheel, or a C compiler such as gcc)"
    return None


def apply_params(
    x: torch.Tensor,
    params: AugParams,
    *,
    fill: int = 0,
    interpolation: str = "nearest",
    backend: str = "auto",
) -> torch.Tensor:
    """Augment ``x`` ``(B,C,H,W) uint8`` (any device) exactly as ``params`` say; returns a new uint8 batch."""
    geometry.check_images(x)
    if len(params) != x.shape[0]:
        raise BadInput(f"params describe {len(params)} samples but x has {x.shape[0]}")
    h, w = x.shape[-2:]
    if resolve_backend(backend, x, interpolation) == "native":
        out = _native_pass(x, params, fill)
    else:
        out = _colour_pass(x, params)
        maps = inverse_maps(params, h, w)
        if maps is not None:
            out = geometry.warp_moved(out, maps, fill, interpolation, owned=out is not x)
    if params.cutout is not None:
        out = _cut_out(out, params.cutout, fill)
    return out if out is not x else x.clone()


# ----------------------------------------------------------------------------------- colour ops
def _slot_groups(params: AugParams, slot: int) -> list[tuple[str | None, np.ndarray]]:
    """``(op name, rows)`` for every op in ``slot`` (name None: the slot was skipped), rows ascending."""
    chosen = np.where(params.applied[:, slot].numpy(), params.ops[:, slot].numpy(), -1)
    order = np.argsort(chosen, kind="stable")
    ids, starts = np.unique(chosen[order], return_index=True)
    rows = np.split(order, starts[1:]) if len(order) else []
    return [(params.op_names[i] if i >= 0 else None, r) for i, r in zip(ids.tolist(), rows, strict=True)]


def _colour_groups(params: AugParams, height: int, width: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(op name, rows, arguments)`` of every colour op, slot by slot, in the order they apply.

    ``arguments`` holds the op's ``(N,)`` float32 argument for ``rows`` (NaN for ops that take none).
    """
    tables: dict[str, np.ndarray] = {}
    groups = []
    for slot in range(params.ops.shape[1]):
        for name, rows in _slot_groups(params, slot):
            if name is None or BY_NAME[name].kind != "colour":
                continue
            if BY_NAME[name].level_rule is None:
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
        spec = BY_NAME[name]
        arguments = (argument,) if spec.level_rule is not None else ()
        if len(rows) == len(params):
            out = spec.kernel(out, *arguments)
            continue
        changed = spec.kernel(out.index_select(0, index), *arguments)
        out = out.contiguous() if out is not x else x.clone(memory_format=torch.contiguous_format)
        geometry.write_rows(out, index, changed)
    return out


def colour_codes(params: AugParams, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B,S)`` int32 native op codes (0 where the slot is skipped or not a colour op) and float32
    arguments: what the fused backends run per sample and slot."""
    codes = np.zeros(params.ops.shape, dtype=np.int32)
    arguments = np.zeros(params.ops.shape, dtype=np.float32)
    for name, uses in params.ops_in_use():
        spec = BY_NAME[name]
        if spec.kind != "colour":
            continue
        codes[uses] = spec.native_code
        if spec.level_rule is not None:
            argument = op_argument(name, params.levels, params.signs, height=height, width=width)
            arguments[uses] = argument.numpy()[uses]
    return codes, arguments


# ------------------------------------------------------------------------------------ geometry
def _slot_maps(params: AugParams, h: int, w: int) -> list[np.ndarray]:
    """One ``(B,3,3)`` inverse map per slot (identity where the slot is not geometric); [] if none is."""
    maps = None
    for name, uses in params.ops_in_use():
        spec = BY_NAME[name]
        if spec.inverse_map is None:
            continue
        argument = op_argument(name, params.levels, params.signs, height=h, width=w).numpy()[uses]
        if maps is None:
            maps = np.tile(np.eye(3), (*uses.shape, 1, 1))
        # A slot holds one op: each sample's slot map is that op's.
        maps[uses] = spec.inverse_map(argument.astype(np.float64), h, w)
    return [] if maps is None else list(maps.transpose(1, 0, 2, 3))


def inverse_maps(params: AugParams, h: int, w: int) -> np.ndarray | None:
    """``(B,3,3)`` float64 inverse map of crop, flip, then each slot's geometric op; None if there are
    none (see :mod:`kdforaa.augment.geometry` for the convention)."""
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


# -------------------------------------------------------------------------------------- native
def native_plan(params: AugParams, batch: int, h: int, w: int) -> tuple[np.ndarray, ...]:
    """What the native kernels run on a ``(batch,C,h,w)`` batch: ``(codes, arguments, warps, rows,
    cols)``, the arguments of :func:`kdforaa.augment.native.apply` after the images."""
    codes, arguments = colour_codes(params, h, w)
    maps = inverse_maps(params, h, w)
    warps, rows, cols = np.full(batch, native.WARP_NONE, dtype=np.uint8), None, None
    if maps is not None:
        m = np.broadcast_to(maps, (batch, 3, 3))
        moving = geometry.moving_samples(m)
        if moving.any():
            rows, cols = np.zeros((batch, 2, h), np.int32), np.zeros((batch, 2, w), np.int32)
            rows[moving], cols[moving] = geometry.sample_parts(m[moving], h, w)
            runs, backward = geometry.row_runs(rows[moving], cols[moving])
            kinds = np.where(
                runs, np.where(backward, native.WARP_RUNS_BACKWARD, native.WARP_RUNS), native.WARP_GATHER
            )
            warps[moving] = kinds
    return codes, arguments, warps, rows, cols


def _native_pass(x: torch.Tensor, params: AugParams, fill: int) -> torch.Tensor:
    """Colour ops and the nearest warp in the native kernels (CPU): the same bytes as the torch path."""
    batch, _, h, w = x.shape
    return native.apply(x, *native_plan(params, batch, h, w), fill)
