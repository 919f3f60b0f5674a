"""Working on a large batch in parts: cache-sized pieces through a kernel, rows written back in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def by_pieces(
    kernel: Callable[..., torch.Tensor], values: int, x: torch.Tensor, *per_sample: Any
) -> torch.Tensor:
    """``kernel(x, *per_sample)`` computed on consecutive pieces of at most ``values`` input values.

    Elementwise passes and gathers over a large batch run at the speed of memory; on a piece that stays
    in a core's cache they run faster (docs/results.md, "Cache-sized pieces on the CPU"). Each of
    ``per_sample`` has one row per sample, or a single row that goes whole to every piece; the kernel
    returns one row per sample. Off the CPU the batch goes whole: there pieces only multiply the kernel
    launches.
    """
    step = max(1, values // max(1, x[0].numel())) if len(x) else 1
    if len(x) <= step or x.device.type != "cpu":
        return kernel(x, *per_sample)
    out: torch.Tensor | None = None
    for start in range(0, len(x), step):
        piece = slice(start, start + step)
        part = kernel(x[piece], *(a if len(a) == 1 else a[piece] for a in per_sample))
        if out is None:
            out = torch.empty((len(x), *part.shape[1:]), dtype=part.dtype, device=part.device)
        out[piece] = part  # while the piece is still in cache
    assert out is not None  # len(x) > step: the loop ran
    return out


def write_rows(out: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``out[rows] = values`` in place, for contiguous ``(B,C,H,W)`` uint8 ``out`` and ``values``.

    ``index_copy_`` moves one element at a time, so each row is viewed as the widest integers its
    byte count (and alignment) allows: up to 8x fewer elements to move than as bytes.
    """
    values = values.contiguous()
    width = out[0].numel()
    offsets = (width, out.storage_offset(), values.storage_offset())
    dtype = next(
        t
        for t, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2), (torch.uint8, 1))
        if all(n % size == 0 for n in offsets)
    )
    target = out.view(len(out), width).view(dtype)
    target.index_copy_(0, rows.to(out.device), values.view(len(values), width).view(dtype))
