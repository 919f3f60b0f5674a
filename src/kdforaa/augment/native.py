"""The native CPU kernels (``native_kernels.c``): which library runs them, and calling it.

On the CPU the torch path pays a fixed cost per op and group (about 16 groups per RandAugment batch),
which dominates small images, and several memory passes per op on large ones. ``native_kernels.c`` does a
sample's colour ops and its nearest warp in one pass over cache-resident memory, threads splitting the
batch. The library comes from :mod:`.native_library`: the wheel's prebuilt one (AVX2 or baseline entry,
chosen for the CPU), else a build for this CPU with the system's C compiler, else none and the torch path
runs; all give the same bytes (tested). ``KDFORAA_NATIVE`` chooses: ``1`` (default, that order), ``0``
(torch), ``prebuilt`` or ``build`` (that source only). Which library runs is logged once (logger
``kdforaa.augment.native``, level INFO) and recorded in each run's ``summary.json``; a fall-back to the
torch path is a warning. What to run per sample (op codes, arguments, inverse maps) is the batch's
:class:`~kdforaa.augment.plan.SamplePlan`; here each moving sample's map becomes the fixed-point parts
and the warp kind the C kernels read. The op codes are the ``OP_*`` enum of the C file.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from kdforaa.augment.affine import sample_parts
from kdforaa.augment.native_library import FLOAT_P, INT32_P, UINT8_P, Kernels, find_kernels
from kdforaa.augment.plan import SamplePlan
from kdforaa.augment.resample import row_runs

logger = logging.getLogger(__name__)
_chosen: list[Kernels] = []  # what ``using`` put in place, innermost last


def enabled() -> bool:
    """False when ``$KDFORAA_NATIVE`` is 0 (force the torch path, e.g. to compare the two)."""
    return os.environ.get("KDFORAA_NATIVE", "1") != "0"


@functools.cache
def _resolve(choice: str) -> Kernels | None:
    """The kernels for ``$KDFORAA_NATIVE=choice``, looked for once per process; logs which."""
    kernels, skipped = find_kernels(choice)
    for reason in skipped:
        logger.info("augmentation kernels: skipped: %s", reason)
    if kernels is not None:
        logger.info("augmentation kernels: %s (%s)", kernels.name, kernels.path)
    elif choice != "0":
        warnings.warn(
            f"kdforaa: no native augmentation kernels, using the slower torch path ({'; '.join(skipped)}): "
            "install the kdforaa wheel for your platform, or a C compiler (e.g. gcc)",
            stacklevel=3,
        )
    return kernels


def library() -> Kernels | None:
    """The kernels CPU batches run on (see the module's order), or None: the torch path runs."""
    if _chosen:
        return _chosen[-1]
    return _resolve(os.environ.get("KDFORAA_NATIVE", "1"))


def reset() -> None:
    """Forget the kernels found so far: the next call looks again (after changing ``$CC``, the cache
    folder or the installed library)."""
    _resolve.cache_clear()


def describe() -> str:
    """Which kernels run, for a run's record: ``prebuilt:avx2``, ``built:native``, ... or ``none``."""
    kernels = library() if enabled() else None
    return kernels.name if kernels is not None else "none"


@contextlib.contextmanager
def using(kernels: Kernels) -> Iterator[Kernels]:
    """Run the native backend on ``kernels`` inside the block (e.g. one level of the prebuilt library,
    from :func:`kdforaa.augment.native_library.load_prebuilt`), to compare builds."""
    _chosen.append(kernels)
    try:
        yield kernels
    finally:
        _chosen.remove(kernels)


@functools.cache
def _pool(pid: int) -> ThreadPoolExecutor:
    """Threads for the batch's parts, one pool per process (a forked child cannot use its parent's)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=f"kdforaa-native-{pid}")


def _pointer(array: np.ndarray | torch.Tensor, kind: type) -> ctypes._Pointer:
    address = array.data_ptr() if isinstance(array, torch.Tensor) else array.ctypes.data
    return ctypes.cast(address, kind)


# How a sample is resampled: not at all, pixel by pixel, or row runs (forward or mirrored): WARP_* in C.
WARP_NONE, WARP_GATHER, WARP_RUNS, WARP_RUNS_BACKWARD = 0, 1, 2, 3


@dataclass(frozen=True)
class NativeWarp:
    """How the C kernels resample each sample of a plan: ``kinds`` ``(B,)`` uint8, one of ``WARP_*``;
    ``rows`` ``(B,2,H)`` and ``cols`` ``(B,2,W)``: int32 16.16 fixed-point parts of each moving sample's
    sample points (``affine.sample_parts``; zeros elsewhere), None when nothing moves."""

    kinds: np.ndarray
    rows: np.ndarray | None
    cols: np.ndarray | None


def native_warp(plan: SamplePlan, height: int, width: int) -> NativeWarp:
    """The warp of every sample of ``plan`` for ``height x width`` images, as the C kernels read it."""
    kinds = np.full(len(plan.moving), WARP_NONE, dtype=np.uint8)
    if plan.maps is None or not plan.moving.any():
        return NativeWarp(kinds, None, None)
    moving = plan.moving
    rows, cols = np.zeros((len(kinds), 2, height), np.int32), np.zeros((len(kinds), 2, width), np.int32)
    rows[moving], cols[moving] = sample_parts(plan.maps[moving], height, width)
    runs, backward = row_runs(rows[moving], cols[moving])
    kinds[moving] = np.where(runs, np.where(backward, WARP_RUNS_BACKWARD, WARP_RUNS), WARP_GATHER)
    return NativeWarp(kinds, rows, cols)


def apply(x: torch.Tensor, plan: SamplePlan, fill: int, warp: NativeWarp | None = None) -> torch.Tensor:
    """``plan``'s colour ops, then each sample's nearest warp, on ``x`` ``(B,C,H,W)`` uint8 (CPU).

    ``warp``: :func:`native_warp` of the plan, worked out here when None (given, the call times the
    kernels alone). Cutout is not applied here. Returns a new contiguous batch.
    """
    kernels = library()
    if kernels is None:
        raise RuntimeError("native.apply needs the native kernels: check apply.choose_backend first")
    x = x.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    batch, channels, height, width = x.shape
    warp = native_warp(plan, height, width) if warp is None else warp
    codes = np.ascontiguousarray(plan.codes, np.int32)
    arguments = np.ascontiguousarray(plan.arguments, np.float32)
    warps = np.ascontiguousarray(warp.kinds, np.uint8)
    rows, cols = warp.rows, warp.cols
    if rows is None or cols is None:
        rows = cols = np.zeros(1, np.int32)
    rows, cols = np.ascontiguousarray(rows, np.int32), np.ascontiguousarray(cols, np.int32)
    pointers = (
        _pointer(codes, INT32_P), _pointer(arguments, FLOAT_P), _pointer(warps, UINT8_P),
        _pointer(rows, INT32_P), _pointer(cols, INT32_P),
    )  # fmt: skip
    source, target = _pointer(x, UINT8_P), _pointer(out, UINT8_P)

    shape = (channels, height, width, codes.shape[1])

    def run(start: int, end: int) -> int:
        return kernels.apply(source, target, start, end, *shape, *pointers, fill)

    threads = max(1, min(torch.get_num_threads(), batch))
    bounds = np.linspace(0, batch, threads + 1).astype(int).tolist()
    if threads == 1:
        results = [run(0, batch)]
    else:
        results = list(_pool(os.getpid()).map(run, bounds[:-1], bounds[1:]))
    if any(results):
        raise MemoryError("native augmentation kernels: out of memory for one image's scratch space")
    return out
