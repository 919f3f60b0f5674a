"""Counter-based per-sample randomness.

Every random number is a pure function of ``(seed, epoch, sample index, stream, draw)``: a sample's
augmentation never depends on batch size, batch order, worker count, world size or resume point.
Keys are ``(B,)`` int64 tensors (the bits of a uint64 hash); streams are short names such as
``"crop"`` so that independent decisions never share numbers.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from kdforaa.errors import BadInput

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective avalanche on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _combine(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix(a + _GOLDEN * (np.asarray(b, dtype=np.uint64) + np.uint64(1)))


def _as_u64(keys: torch.Tensor) -> np.ndarray:
    return keys.detach().cpu().numpy().astype(np.int64, copy=False).view(np.uint64)


def _stream_id(stream: str) -> int:
    return zlib.crc32(stream.encode())


def make_keys(seed: int, epoch: int, indices: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
    """Per-sample keys for ``(seed, epoch, index)``: ``(B,)`` int64 tensor on the CPU."""
    idx = np.asarray(torch.as_tensor(indices).cpu().numpy(), dtype=np.int64).astype(np.uint64)
    base = _combine(_mix(np.full_like(idx, np.uint64(seed & 0xFFFFFFFFFFFFFFFF))), epoch)
    return torch.from_numpy(_combine(base, idx).view(np.int64).copy())


def bits(keys: torch.Tensor, stream: str, n: int = 1) -> np.ndarray:
    """``(B, n)`` uint64 random words for one named stream."""
    k = _combine(_as_u64(keys), _stream_id(stream))
    return _combine(k[:, None], np.arange(n, dtype=np.uint64)[None, :])


def uniform(keys: torch.Tensor, stream: str, n: int = 1) -> torch.Tensor:
    """``(B, n)`` float64 uniform numbers in ``[0, 1)``."""
    b = bits(keys, stream, n) >> np.uint64(11)
    return torch.from_numpy(b.astype(np.float64) * (1.0 / (1 << 53)))


def integers(keys: torch.Tensor, stream: str, high: int, n: int = 1) -> torch.Tensor:
    """``(B, n)`` int64 numbers uniform in ``[0, high)``."""
    return (uniform(keys, stream, n) * high).floor().long().clamp_(max=high - 1)


def normal(keys: torch.Tensor, stream: str, n: int = 1) -> torch.Tensor:
    """``(B, n)`` float64 standard normal numbers (Box-Muller on two uniform streams)."""
    u = uniform(keys, stream, 2 * n)
    u1, u2 = u[:, :n].clamp_min(1e-300), u[:, n:]
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)


def permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The epoch's sample order: a permutation of ``range(n)`` fixed by ``(seed, epoch)``."""
    keys = make_keys(seed, epoch, np.arange(n))
    return torch.from_numpy(np.argsort(bits(keys, "order")[:, 0], kind="stable"))


def check_keys(keys: torch.Tensor) -> torch.Tensor:
    """``keys`` itself when it is a ``(B,)`` int64 tensor; BadInput otherwise."""
    if not isinstance(keys, torch.Tensor) or keys.dtype != torch.int64 or keys.dim() != 1:
        raise BadInput("keys must be a (B,) int64 tensor from kdforaa.augment.random.make_keys")
    return keys


def draw_keys(
    batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(B,)`` int64 keys drawn from a torch generator, for plain use without sample indices.

    The keys are drawn on ``generator``'s own device (a CUDA generator draws on its GPU), or, without
    one, from torch's default generator of ``device`` (the CPU's when None). Where they are drawn does
    not matter afterwards: policies read keys on the host.
    """
    where = generator.device if generator is not None else torch.device(device or "cpu")
    return torch.randint(
        -(2**63), 2**63 - 1, (batch_size,), dtype=torch.int64, generator=generator, device=where
    )
