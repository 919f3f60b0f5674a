"""The exact conversion between float images in ``[0, 1]`` and the uint8 images the engine works on.

The augmentation engine computes on uint8 pixels (what Pillow computes on). A float batch is
converted in, augmented, and converted back:

- float -> uint8: ``round(255 · x)``, rounding to the nearest integer with ties to even
  (``torch.round``), computed in float32 (float64 for float64 input);
- uint8 -> float: ``u / 255`` computed in float32 (float64 for float64), then cast to the input's dtype.

``to_uint8(to_float(u, dtype)) == u`` for every byte ``u`` and every float dtype torch has (float16,
bfloat16, float32, float64; a test checks all 256 values), so a float batch's augmentation is the uint8
augmentation of its bytes, exactly.
"""

from __future__ import annotations

import torch

from kdforaa.errors import BadInput


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 for float64 input: the precision of the conversion's arithmetic."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """A float ``(B,C,H,W)`` batch with values in ``[0, 1]`` as uint8 bytes ``round(255 · x)``.

    Values outside ``[0, 1]`` (or NaN) are BadInput: they are usually normalised images, which must be
    augmented before normalisation.
    """
    if x.numel():
        low, high = (float(v) for v in torch.aminmax(x))
        if not (0.0 <= low and high <= 1.0):  # NaN fails both comparisons
            raise BadInput(
                f"float images must hold values in [0, 1], got {low:.4g}..{high:.4g}: augment before "
                "normalising (or pass uint8 images)"
            )
    return x.to(_working_dtype(x.dtype)).mul(255).round_().to(torch.uint8)


def to_float(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 bytes as floats ``u / 255`` in ``dtype``: the inverse of :func:`to_uint8`."""
    if not dtype.is_floating_point:
        raise BadInput(f"dtype must be a floating-point dtype, got {dtype}")
    return x.to(_working_dtype(dtype)).div_(255).to(dtype)
