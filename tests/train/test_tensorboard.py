"""TensorBoard (``train.tensorboard``): one writer, on rank 0, with per-step ``train/`` scalars and per-epoch
``test/`` and ``epoch/`` ones at the global step; a one-line BadInput naming the extra without it.

TensorBoard itself is an optional extra, so a recording stand-in for ``SummaryWriter`` takes its place:
these tests check what the loop writes, not TensorBoard's file format."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from kdforaa.config import build_config
from kdforaa.errors import BadInput
from kdforaa.train.distributed import World
from kdforaa.train.loop import Trainer

TINY = {
    "data": {"limit": 128, "test_limit": 50},
    "model": {"name": "resnet8"},
    "train": {"epochs": 2, "batch_size": 64, "threads": 2, "tensorboard": True},
}


class RecordingWriter:
    """Stands in for ``torch.utils.tensorboard.SummaryWriter``: records every scalar."""

    made: list[RecordingWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        RecordingWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, float(value), step))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def writers(monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    RecordingWriter.made = []
    return RecordingWriter.made


def test_rank_0_writes_namespaced_scalars_every_step_and_epoch(writers, tmp_path):
    Trainer(build_config(TINY), tmp_path / "run", progress=False).run()
    (writer,) = writers
    assert writer.closed and writer.log_dir == str(tmp_path / "run" / "tensorboard")
    steps = {tag: [s for t, _, s in writer.scalars if t == tag] for tag, _, _ in writer.scalars}
    assert steps["train/loss"] == steps["train/ce"] == steps["train/lr"] == [1, 2, 3, 4]  # 2 steps x 2 epochs
    assert steps["test/acc"] == steps["test/loss"] == steps["epoch/train_acc"] == [2, 4]
    assert "epoch/img_per_s" in steps and all("/" in tag for tag in steps)
    final = [v for t, v, s in writer.scalars if t == "test/acc" and s == 4]
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert f'"final_test_acc": {final[0]}' in summary


def test_other_ranks_make_no_writer(writers, tmp_path):
    """A rank other than 0 (here alone, so that no process group is needed) makes no writer."""
    trainer = Trainer(build_config(TINY), tmp_path / "run", progress=False, world=World(rank=1, size=1))
    assert trainer.writer is None and writers == []
    indices = torch.arange(64)
    data = trainer.parts.train_set
    trainer.train_step(data.images(indices), data.labels[indices], indices)
    assert writers == [] and not (tmp_path / "run" / "tensorboard").exists()


def test_without_tensorboard_one_line_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(BadInput, match=r"pip install 'kdforaa\[tensorboard\]'"):
        Trainer(build_config(TINY), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
