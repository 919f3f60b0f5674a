"""A training step reads nothing back from its tensors (on CUDA every read is a host sync), and the checks
that used to read every step still hold when deferred.

On CUDA ``Trainer.deferred_checks`` is on (``train.on_nan=stop``); these tests switch it on for a CPU
trainer, which runs the same code. A read of a tensor's value (``.item()``, ``float()``, ``bool()``,
``.tolist()``) goes through aten's ``_local_scalar_dense`` or a copy to the host, which a dispatch mode
sees. The GPU check counts the real syncs with torch's sync debug mode (scripts/gpu_check.py).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from kdforaa.config import build_config
from kdforaa.data.loader import batches
from kdforaa.errors import TrainingError
from kdforaa.train.loop import Trainer

TINY = {
    "data": {"name": "fashion-mnist"},
    "model": {"name": "resnet8"},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "threads": 2},
}


class ValueReads(TorchDispatchMode):
    """Counts the aten calls that hand a tensor's value to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


def trainer(tmp_path, data) -> Trainer:
    """A CPU trainer of resnet8 on 64 fake Fashion-MNIST images (2 steps of 32), checks deferred."""
    tree = json.loads(json.dumps(TINY))
    tree["data"]["root"] = str(data.root)
    tree["augment"] = {"policy": "randaugment", "magnitude": 9}
    t = Trainer(build_config(tree), tmp_path / "run", progress=False)
    t.deferred_checks = True  # as on CUDA
    return t


def first_batch(t: Trainer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    order = torch.arange(t.cfg.train.batch_size).numpy()
    return next(iter(batches(t.parts.train_set, order, t.cfg.train.batch_size, 0)))


def test_a_step_reads_no_tensor_value_and_its_statistics_wait_for_the_read(tmp_path, tiny_fashion_mnist):
    t = trainer(tmp_path, tiny_fashion_mnist)
    images, labels, indices = first_batch(t)
    with ValueReads() as views_alone:  # the augmentation's own host work, on host tensors (also on CUDA)
        t.parts.views(images, indices, t.epoch)
    with ValueReads() as step:
        t.train_step(images, labels, indices)
        t.train_step(images, labels, indices)
    assert len(step.reads) == 2 * len(views_alone.reads), step.reads
    assert t.stats == {"n": 64.0} and set(t.sums) >= {"loss", "correct"}
    t.read_statistics()
    assert t.sums == {} and 0 <= t.stats["correct"] <= 64 and t.stats["loss"] > 0


def test_the_deferred_check_stops_at_the_read_naming_the_first_bad_step_and_writes_nothing(
    tmp_path, tiny_fashion_mnist
):
    t = trainer(tmp_path, tiny_fashion_mnist)

    class NanAfterOne(torch.nn.Module):
        needs_features = False
        calls = 0

        def forward(self, logits, labels, **_):  # noqa: ANN001, ANN003, ANN202
            NanAfterOne.calls += 1
            loss = logits.float().logsumexp(1).mean() * (float("nan") if NanAfterOne.calls > 1 else 1.0)
            return loss, {"ce": loss.detach()}

    t.parts.distiller.criterion = NanAfterOne()
    with pytest.raises(TrainingError, match=r"non-finite loss at global step 2 \(found at step 2;"):
        t.run()
    assert not (tmp_path / "run" / "last.pt").exists()
