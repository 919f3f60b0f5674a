"""Applying :class:`~kdforaa.augment.params.AugParams` to a batch, on the backend that runs it best.

Order (a fused resample cannot interleave with colour ops): first the colour ops in their sampled
order; then every geometric op of a sample (and the pipeline's crop and flip) composed into one
inverse affine map, applied with a single warp per batch; then Cutout. Pixels with no source take
``fill``. Every op fact (kind, level rule, kernel, inverse map, native code) comes from the op table.

Backends (``backend=``), all giving the same bytes (bilinear warps: within one grey level on ``triton``):

- ``native``: CPU batches with nearest warps. ``native_kernels.c`` runs each sample's colour ops and
  its warp in one pass over cache-resident memory, threads splitting the batch (:mod:`.native`).
- ``triton``: CUDA batches, either interpolation (CPU batches too under ``TRITON_INTERPRET=1``, slowly).
  One kernel launch runs every sample's colour ops, warp and Cutout (:mod:`.triton_kernels`); Triton is
  the optional extra ``kdforaa[gpu]`` and is imported only when this backend runs.
- ``torch``: any device, either interpolation. Each colour op runs batched over the samples that
  drew it in a slot (:mod:`.kernels`), then one warp per batch (:mod:`.geometry`).
- ``auto`` (the default): on the CPU ``native`` where it can run, else ``torch``; on CUDA ``triton``
  when it is installed, else ``torch``.

The two fused backends get the same op codes and arguments per slot (:func:`colour_codes`) and Cutout
boxes. The native kernels get every row's and column's fixed-point part of the warp (:func:`sample_plan`);
the Triton kernel gets each sample's few warp coefficients (``geometry.sample_coefficients``) and
expands them itself, so its host work per batch does not grow with the image.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

from kdforaa.augment import geometry, native
from kdforaa.augment.op_table import BY_NAME, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.errors import BadInput

BACKENDS = ("auto", "torch", "native", "triton")


def choose_backend(backend: str, device: torch.device, interpolation: str) -> str:
    """The backend that runs a batch on ``device`` (see the module docstring); an explicit choice that
    cannot run there is BadInput, one line naming what to install or change."""
    if backend not in BACKENDS:
        raise BadInput(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cpu":
            return "torch" if _native_unusable(device, interpolation) else "native"
        return "triton" if device.type == "cuda" and triton_installed() else "torch"
    why = None
    if backend == "native":
        why = _native_unusable(device, interpolation)
    elif backend == "triton":
        why = _triton_unusable(device)
    if why:
        raise BadInput(f"backend={backend!r} cannot run this batch: {why}; use backend='auto' or 'torch'")
    return backend


def describe_backend(backend: str, device: torch.device, interpolation: str) -> str:
    """What ``backend`` runs batches on ``device`` with, as a run records it: ``native (prebuilt:avx2)``,
    ``native (built:native)``, ..., ``triton`` or ``torch``."""
    chosen = choose_backend(backend, device, interpolation)
    return f"native ({native.describe()})" if chosen == "native" else chosen


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


@functools.cache
def triton_installed() -> bool:
    """Whether Triton can be imported (without importing it: ``import kdforaa`` never loads Triton)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """Whether ``TRITON_INTERPRET`` asks Triton to interpret kernels on the CPU (read as Triton reads it)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def triton_fallback() -> str | None:
    """Why the ``triton`` backend has been running the torch path in this process (its kernels failed to
    compile here, warned once), or None while it runs its own kernels. Benchmarks label rows with it."""
    module = sys.modules.get("kdforaa.augment.triton_kernels")  # never imports Triton itself
    return None if module is None else module.failure()


def _triton_unusable(device: torch.device) -> str | None:
    """Why the Triton kernels cannot take a batch on ``device`` (they take either interpolation), or None."""
    if not triton_installed():
        return "Triton is not installed: pip install 'kdforaa[gpu]'"
    if device.type == "cuda" or (device.type == "cpu" and triton_interpreted()):
        return None
    if device.type == "cpu":
        return "the Triton kernels run CUDA batches (set TRITON_INTERPRET=1 to interpret them on the CPU)"
    return f"the Triton kernels run CUDA batches and the batch is on {device}"


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
    chosen = choose_backend(backend, x.device, interpolation)
    if chosen == "triton":
        fused = _triton_pass(x, params, fill, interpolation)
        if fused is not None:
            return fused
        chosen = "torch"  # the kernels failed to compile here (warned once)
    if chosen == "native":
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
        spec, kernel = BY_NAME[name], BY_NAME[name].kernel
        assert kernel is not None  # the groups hold colour ops, which all have one
        arguments = (argument,) if spec.level_rule is not None else ()
        if len(rows) == len(params):
            out = kernel(out, *arguments)
            continue
        changed = kernel(out.index_select(0, index), *arguments)
        out = out.contiguous() if out is not x else x.clone(memory_format=torch.contiguous_format)
        geometry.write_rows(out, index, changed)
    return out


def colour_codes(params: AugParams, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B,S)`` int32 native op codes (0 where the slot is skipped or not a colour op) and float32
    arguments: what the fused backends run per sample and slot."""
    return _colour_codes(params, _slot_numbers(params, height, width)[0])


def _colour_codes(params: AugParams, arguments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`colour_codes` from the slots' ``(B,S)`` arguments (:func:`_slot_numbers`)."""
    facts = _op_facts(tuple(params.op_names))
    ops, applied = params.ops.numpy(), params.applied.numpy()
    codes = np.where(applied, facts.colour_codes[ops], 0).astype(np.int32)
    arguments = np.where(applied & facts.colour_arguments[ops], arguments, np.float32(0.0))
    return codes, arguments.astype(np.float32, copy=False)


@dataclass(frozen=True)
class _OpFacts:
    """Per op id of an ``op_names`` tuple: its native code if it is a colour op (else 0), whether it is
    a colour op that takes an argument, and whether it is geometric."""

    colour_codes: np.ndarray
    colour_arguments: np.ndarray
    geometric: np.ndarray


@functools.cache
def _op_facts(op_names: tuple[str, ...]) -> _OpFacts:
    specs = [BY_NAME[name] for name in op_names]
    return _OpFacts(
        np.array([spec.native_code if spec.kind == "colour" else 0 for spec in specs], dtype=np.int32),
        np.array([spec.kind == "colour" and spec.level_rule is not None for spec in specs], dtype=bool),
        np.array([spec.inverse_map is not None for spec in specs], dtype=bool),
    )


@dataclass
class _KnownSlots:
    """What the level rules and inverse maps gave at one image size for one ``op_names``: ``keys``
    ``(K,)`` int64 sorted (op id << 33 | the sign << 32 | the float32 level's bits; or ``_SKIPPED``),
    ``arguments`` ``(K,)`` float32 and ``maps`` ``(K,3,3)`` float64 (the identity for ops that are not
    geometric)."""

    keys: np.ndarray
    arguments: np.ndarray
    maps: np.ndarray


# A policy draws few distinct (op, level, sign) triples, so a batch's numbers are mostly a lookup; the
# triples never seen are computed, one op_argument (and inverse map) call per op, by the very functions
# that define them.
_KNOWN_SLOTS: dict[tuple[tuple[str, ...], int, int], _KnownSlots] = {}
_KNOWN_SLOTS_LIMIT = 1 << 16  # triples per image size; beyond, the memory starts afresh


_SKIPPED = -1  # the key of a skipped slot: argument 0, the identity map


def _nothing_known() -> _KnownSlots:
    """What is known before any batch: the skipped slot."""
    return _KnownSlots(np.array([_SKIPPED]), np.zeros(1, np.float32), np.eye(3)[None])


def _learn(known: _KnownSlots, keys: np.ndarray, names: tuple[str, ...], h: int, w: int) -> _KnownSlots:
    """``known`` and the arguments and maps of ``keys`` (unique, not in ``known``), sorted by key."""
    arguments, maps = np.zeros(len(keys), np.float32), np.tile(np.eye(3), (len(keys), 1, 1))
    op_ids = keys >> 33
    for op in np.unique(op_ids[keys != _SKIPPED]).tolist():
        chosen = op_ids == op
        level = torch.from_numpy((keys[chosen] & 0xFFFFFFFF).astype(np.uint32).view(np.float32))
        sign = torch.from_numpy(np.where((keys[chosen] >> 32) & 1, -1.0, 1.0).astype(np.float32))
        arguments[chosen] = op_argument(names[op], level, sign, height=h, width=w).numpy()
        inverse_map = BY_NAME[names[op]].inverse_map
        if inverse_map is not None:
            maps[chosen] = inverse_map(arguments[chosen].astype(np.float64), h, w)
    order = np.argsort(np.concatenate([known.keys, keys]), kind="stable")
    return _KnownSlots(
        np.concatenate([known.keys, keys])[order],
        np.concatenate([known.arguments, arguments])[order],
        np.concatenate([known.maps, maps])[order],
    )


def _slot_numbers(params: AugParams, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Every applied slot's op argument (``op_argument``; zero for skipped slots and ops without one),
    ``(B,S)`` float32, and inverse map ``(B,S,3,3)`` float64 (the identity where the slot is not
    geometric; None when no slot is): the whole batch in a few array operations."""
    names = tuple(params.op_names)
    ops, applied = params.ops.numpy(), params.applied.numpy()
    levels = params.levels.numpy().astype(np.float32)  # as op_argument reads them
    keys = (ops.astype(np.int64) << 33) | ((params.signs.numpy() < 0).astype(np.int64) << 32)
    keys = np.where(applied, keys | levels.view(np.uint32), _SKIPPED).reshape(-1)
    known = _KNOWN_SLOTS.get((names, h, w)) or _nothing_known()
    where = np.searchsorted(known.keys, keys)
    found = known.keys[np.minimum(where, len(known.keys) - 1)] == keys
    if not found.all():
        missing = np.unique(keys[~found])
        if len(known.keys) + len(missing) > _KNOWN_SLOTS_LIMIT:  # start afresh with this batch's triples
            known, missing = _nothing_known(), np.unique(keys)
        known = _KNOWN_SLOTS[(names, h, w)] = _learn(known, missing, names, h, w)
        where = np.searchsorted(known.keys, keys)
    arguments = known.arguments[where].reshape(ops.shape)
    if not (applied & _op_facts(names).geometric[ops]).any():
        return arguments, None
    return arguments, known.maps[where].reshape(*ops.shape, 3, 3)


def inverse_maps(params: AugParams, h: int, w: int) -> np.ndarray | None:
    """``(B,3,3)`` float64 inverse map of crop, flip, then each slot's geometric op; None if there are
    none (see :mod:`kdforaa.augment.geometry` for the convention)."""
    return _inverse_maps(params, w, _slot_numbers(params, h, w)[1])


def _inverse_maps(params: AugParams, w: int, slot_maps: np.ndarray | None) -> np.ndarray | None:
    """:func:`inverse_maps` from the slots' ``(B,S,3,3)`` maps (:func:`_slot_numbers`)."""
    steps = []
    if params.crop is not None:
        top, left = params.crop.numpy().T
        steps.append(geometry.translate_map(left, top))
    if params.flip is not None:
        steps.append(geometry.flip_map(params.flip.numpy(), w))
    if slot_maps is not None:
        steps.extend(slot_maps.transpose(1, 0, 2, 3))
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


# -------------------------------------------------------------------------------- fused backends
@dataclass(frozen=True)
class SamplePlan:
    """What the native kernels run for each sample of a batch of ``B`` images.

    ``codes``/``arguments``: ``(B,S)`` int32 native op codes and float32 arguments (:func:`colour_codes`);
    ``moving``: ``(B,)`` bool, the samples whose warp is not the identity; ``rows`` ``(B,2,H)`` and
    ``cols`` ``(B,2,W)``: int32 16.16 fixed-point parts of each moving sample's sample points
    (``geometry.sample_parts``; zeros elsewhere), None when nothing moves; ``cutout``: ``(B,4)`` int32
    boxes, None without Cutout.
    """

    codes: np.ndarray
    arguments: np.ndarray
    moving: np.ndarray
    rows: np.ndarray | None
    cols: np.ndarray | None
    cutout: np.ndarray | None


def sample_plan(params: AugParams, height: int, width: int) -> SamplePlan:
    """The per-sample plan of ``params`` for ``height x width`` images, worked out on the host."""
    batch = len(params)
    arguments, slot_maps = _slot_numbers(params, height, width)
    codes, arguments = _colour_codes(params, arguments)
    maps = _inverse_maps(params, width, slot_maps)
    moving, rows, cols = np.zeros(batch, dtype=bool), None, None
    if maps is not None:
        m = np.broadcast_to(maps, (batch, 3, 3))
        moving = geometry.moving_samples(m)
        if moving.any():
            rows, cols = np.zeros((batch, 2, height), np.int32), np.zeros((batch, 2, width), np.int32)
            rows[moving], cols[moving] = geometry.sample_parts(m[moving], height, width)
    cutout = None if params.cutout is None else params.cutout.numpy().astype(np.int32)
    return SamplePlan(codes, arguments, moving, rows, cols, cutout)


def _native_pass(x: torch.Tensor, params: AugParams, fill: int) -> torch.Tensor:
    """Colour ops and the nearest warp in the native kernels (CPU): the same bytes as the torch path."""
    return native.apply(x, *native_plan(params, *x.shape[-2:]), fill)


def native_plan(
    params: AugParams, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The arguments of :func:`kdforaa.augment.native.apply` after the images: ``(codes, arguments,
    warps, rows, cols)``, with each moving sample's warp kind (row runs or point gathers)."""
    plan = sample_plan(params, height, width)
    warps = np.full(len(params), native.WARP_NONE, dtype=np.uint8)
    if plan.rows is not None and plan.cols is not None:
        runs, backward = geometry.row_runs(plan.rows[plan.moving], plan.cols[plan.moving])
        kinds = np.where(
            runs, np.where(backward, native.WARP_RUNS_BACKWARD, native.WARP_RUNS), native.WARP_GATHER
        )
        warps[plan.moving] = kinds
    return plan.codes, plan.arguments, warps, plan.rows, plan.cols


def triton_plan(
    params: AugParams, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, geometry.SampleCoefficients | None, np.ndarray | None]:
    """The Triton kernel's host work for a batch: ``(codes, arguments, moving, warp, cutout)`` as
    :func:`kdforaa.augment.triton_kernels.apply` takes them; a few numbers per sample, whatever the image
    size (the kernel expands each sample's warp coefficients itself)."""
    arguments, slot_maps = _slot_numbers(params, height, width)
    codes, arguments = _colour_codes(params, arguments)
    maps = _inverse_maps(params, width, slot_maps)
    moving, warp = np.zeros(len(params), dtype=bool), None
    if maps is not None:
        m = np.broadcast_to(maps, (len(params), 3, 3))
        moving, warp = geometry.moving_samples(m), geometry.sample_coefficients(m)
    cutout = None if params.cutout is None else params.cutout.numpy().astype(np.int32)
    return codes, arguments, moving, warp, cutout


def _triton_pass(x: torch.Tensor, params: AugParams, fill: int, interpolation: str) -> torch.Tensor | None:
    """Colour ops, warp and Cutout in one Triton launch; None when the kernels cannot compile here."""
    from kdforaa.augment import triton_kernels  # imports Triton: only when this backend runs

    if not triton_kernels.compiled_here():
        return None
    height, width = x.shape[-2:]
    return triton_kernels.apply(
        x,
        *triton_plan(params, height, width),
        fill,
        bilinear=interpolation == "bilinear",
        margin=geometry.bilinear_margin(height, width),
    )
