"""Batches of ``(images uint8, labels int64, sample indices int64)`` in exactly the order asked for.

The loader knows nothing about epochs, shuffling, sharding or resuming: the training loop decides the
order (e.g. :func:`kdforaa.augment.random.permutation`) and the loader only cuts it into batches.
In-memory data sets are batched by index gather in this process; image folders are decoded by a
torch DataLoader whose workers run Pillow.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from kdforaa.data.datasets import Dataset, InMemoryDataset
from kdforaa.data.folder import ImageFolder
from kdforaa.errors import BadInput

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class _DecodeByIndex(torch.utils.data.Dataset):
    """Map-style view of an image folder for DataLoader workers: ``i -> (image, label, i)``.

    Label and index travel as Python ints (collated into int64 tensors), not as views of the labels
    tensor, whose whole storage would otherwise be moved to shared memory.
    """

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return self.folder.load(index), int(self.folder.labels[index]), index


def _check_order(order: torch.Tensor, size: int) -> torch.Tensor:
    order = torch.as_tensor(order)
    if order.ndim != 1 or order.dtype.is_floating_point or order.dtype == torch.bool:
        raise BadInput(
            f"order must be a 1-D integer tensor of sample indices, got {order.dtype} {tuple(order.shape)}"
        )
    if order.numel() and (int(order.min()) < 0 or int(order.max()) >= size):
        raise BadInput(f"order holds indices outside 0..{size - 1}")
    return order.long()


def _gather(dataset: Dataset, order: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield dataset.images(chunk), dataset.labels[chunk], chunk


def _decoded(loader: DataLoader) -> Iterator[Batch]:
    """Yield from ``loader``; a worker's BadInput comes back with torch's traceback prepended, so
    keep only its own last line (the CLI prints BadInput as one line).

    The worker error's frames are cleared first: they hold the DataLoader iterator in a reference
    cycle, which would leave its worker processes to a later garbage collection (that then waits
    seconds per worker) instead of shutting them down now.
    """
    try:
        yield from loader
    except BadInput as err:
        traceback.clear_frames(err.__traceback__)
        last = str(err).rstrip().splitlines()[-1]
        raise BadInput(last.removeprefix(f"{BadInput.__module__}.{BadInput.__name__}: ")) from None


def batches(dataset: Dataset, order: torch.Tensor, batch_size: int, num_workers: int = 0) -> Iterator[Batch]:
    """Iterate ``(images (B,C,H,W) uint8, labels (B,) int64, indices (B,) int64)`` following ``order``.

    ``order`` is a ``(N,)`` integer tensor of sample indices (any subset, any order, repeats allowed);
    batches follow it exactly and only the last may be shorter. ``num_workers`` matters only for image
    folders (Pillow decoding processes, started when iteration begins); in-memory data sets are
    gathered in this process.
    """
    if batch_size <= 0:
        raise BadInput(f"batch_size must be positive, got {batch_size}")
    order = _check_order(order, len(dataset))
    if isinstance(dataset, InMemoryDataset):
        return _gather(dataset, order, batch_size)
    sampler: Sequence[int] = order.tolist()
    loader = DataLoader(
        _DecodeByIndex(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        shuffle=False,
    )
    return _decoded(loader)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel: ``(B,C,H,W) uint8 -> float32`` on ``x``'s device."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return (x.float() / 255 - mean_t) / std_t
