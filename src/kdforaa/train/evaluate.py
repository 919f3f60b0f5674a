"""Test-set evaluation: accuracy and mean cross-entropy of a model on a data set split; inference speed."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.data.datasets import Dataset
from kdforaa.data.loader import batches, normalize


@torch.inference_mode()
def evaluate(
    model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1000
) -> dict[str, float]:
    """Top-1 accuracy (%) and mean loss over the whole split, in a fixed order."""
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    order = torch.arange(len(dataset))
    for images, labels, _ in batches(dataset, order, batch_size):
        x = normalize(images.to(device, non_blocking=True), dataset.mean, dataset.std)
        logits = model(x).float()
        labels = labels.to(device)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        n += labels.numel()
    model.train(was_training)
    return {"acc": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n)}


def inference_speed(
    model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1000
) -> float:
    """Images per second of an evaluation pass over (at most) the first 2048 images of ``dataset``.

    Everything a deployed model pays for is timed: gather, normalise, any input resize, forward. Each
    batch ends in a host sync (``.item()``), so the time is complete on CUDA as well. Measure a warm
    model (one that has already run), as at the end of training.
    """
    subset = dataset.first(min(2048, len(dataset)))
    start = time.perf_counter()
    evaluate(model, subset, device, batch_size)
    return len(subset) / max(time.perf_counter() - start, 1e-9)
