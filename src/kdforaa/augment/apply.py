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
  drew it in a slot (:mod:`.kernels`), then one warp per batch (:mod:`.resample`).
- ``auto`` (the default): on the CPU ``native`` where it can run, else ``torch``; on CUDA ``triton``
  when it is installed, else ``torch``.

The two fused backends take the same per-sample plan (:mod:`.plan`: op codes and arguments per slot,
each sample's inverse map, Cutout boxes). The native kernels get every row's and column's fixed-point
part of the warp; the Triton kernel gets each sample's few warp coefficients and expands them itself,
so its host work per batch does not grow with the image.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

import numpy as np
import torch

from kdforaa.augment import native
from kdforaa.augment.checks import check_images
from kdforaa.augment.op_table import BY_NAME, op_argument
from kdforaa.augment.params import AugParams
from kdforaa.augment.pieces import write_rows
from kdforaa.augment.plan import inverse_maps, sample_plan
from kdforaa.augment.resample import warp_moved
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
    check_images(x)
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
            out = warp_moved(out, maps, fill, interpolation, owned=out is not x)
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
        write_rows(out, index, changed)
    return out


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
    return native.apply(x, sample_plan(params, *x.shape[-2:]), fill)


def _triton_pass(x: torch.Tensor, params: AugParams, fill: int, interpolation: str) -> torch.Tensor | None:
    """Colour ops, warp and Cutout in one Triton launch; None when the kernels cannot compile here."""
    from kdforaa.augment import triton_kernels  # imports Triton: only when this backend runs

    if not triton_kernels.compiled_here():
        return None
    plan = sample_plan(params, *x.shape[-2:])
    return triton_kernels.apply(x, plan, fill, bilinear=interpolation == "bilinear")
