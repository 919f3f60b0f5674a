"""The checks of what users hand the augmentation engine: image batches, per-sample arguments, fill."""

from __future__ import annotations

import numbers

import torch

from kdforaa.errors import BadInput


def check_images(x: torch.Tensor) -> None:
    """Raise :class:`BadInput` unless ``x`` is a ``(B,C,H,W)`` uint8 batch with ``C`` in {1, 3}."""
    if not isinstance(x, torch.Tensor):
        raise BadInput(f"x must be a uint8 torch.Tensor of shape (B,C,H,W); got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise BadInput(
            f"x must be a uint8 image batch (values 0..255); got dtype {x.dtype}: "
            "convert float images in [0, 1] with (x * 255).round().to(torch.uint8)"
        )
    if x.ndim != 4:
        raise BadInput(f"x must have shape (B,C,H,W); got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise BadInput(f"x must have 1 (grey) or 3 (RGB) channels; got C={x.shape[1]}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise BadInput(f"x must have a height and width of at least 1 pixel; got {tuple(x.shape)}")


def per_sample(value: torch.Tensor | float, name: str) -> torch.Tensor:
    """A per-sample argument as a ``(B,)`` float64 tensor (``(1,)`` for a number), on its own device."""
    if isinstance(value, bool) or not isinstance(value, torch.Tensor | numbers.Real):
        raise BadInput(f"{name} must be a number or a (B,) tensor; got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and (value.dtype == torch.bool or value.is_complex()):
        raise BadInput(f"{name} must be a real-valued tensor; got dtype {value.dtype}")
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except OverflowError:  # a Python int beyond float64
        assert isinstance(value, int)  # the one argument that overflows float64
        size = f"an integer of {value.bit_length()} bits"
        raise BadInput(f"{name} must be a finite number; got {size}") from None
    if t.ndim > 1:
        raise BadInput(f"{name} must be a number or a (B,) tensor; got shape {tuple(t.shape)}")
    return t.reshape(-1)


def check_fill(fill: int) -> None:
    """Raise :class:`BadInput` unless ``fill`` is a whole grey level 0..255."""
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
        raise BadInput(f"fill must be an integer grey level 0..255; got {fill!r}")
