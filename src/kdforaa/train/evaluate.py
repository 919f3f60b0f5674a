"""Test-set evaluation: accuracy and mean cross-entropy of a model on a data set split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.data.loader import batches, normalize


@torch.inference_mode()
def evaluate(model: nn.Module, dataset, device: torch.device, batch_size: int = 1000) -> dict[str, float]:
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
