"""The Distiller in a loop of one's own: the same weights as ``kdforaa train``, bit for bit on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdforaa.augment.random import draw_keys, permutation
from kdforaa.checkpoint import load_checkpoint
from kdforaa.config import DistillConfig, build_config
from kdforaa.data.datasets import load_dataset
from kdforaa.data.loader import batches
from kdforaa.distill import kd, topk_kd
from kdforaa.distill.distiller import DataFacts, Distiller
from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model
from kdforaa.train.loop import Trainer
from kdforaa.train.schedule import lr_factor


@pytest.fixture(scope="module")
def foreign_teacher(tmp_path_factory) -> str:
    """A resnet8 state dict with no metadata, as RepDistiller writes them (random weights suffice)."""
    path = tmp_path_factory.mktemp("teacher") / "ckpt_epoch_2.pth"
    torch.manual_seed(7)
    torch.save({"model": build_model("resnet8", 10, 1).state_dict()}, path)
    return str(path)


def config(teacher: str, **distill):
    return build_config(
        {
            "seed": 3,
            "data": {"limit": 64, "test_limit": 32},
            "model": {"name": "resnet8"},
            "augment": {"policy": "randaugment", "magnitude": 12, "magnitude_std": 2.0},
            "train": {"epochs": 2, "batch_size": 32, "threads": 1, "eval_every": 0},
            "teacher": {"checkpoint": teacher, "model": "resnet8", "format": "repdistiller"},
            "distill": {"method": "topk_kd", "k_schedule": {0: 2, 11: 4}, **distill},
        }
    )


def own_loop(cfg) -> tuple[nn.Module, Distiller]:
    """What a user writes: their model and optimizer, the batches in the run's order, one call per step."""
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.data, "train")
    student = build_model(cfg.model.name, data.num_classes, data.in_channels)
    student = student.to(memory_format=torch.channels_last)
    distiller = Distiller.from_config(cfg, student, data)
    t = cfg.train
    optimizer = torch.optim.SGD(
        distiller.parameters(), lr=t.lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay
    )
    steps = len(data) // t.batch_size
    for epoch in range(t.epochs):
        student.train()
        order = permutation(cfg.seed, epoch, len(data))[: steps * t.batch_size]
        for step, (images, labels, indices) in enumerate(batches(data, order, t.batch_size)):
            for group in optimizer.param_groups:
                group["lr"] = t.lr * lr_factor(t, epoch * steps + step, t.epochs * steps, steps)
            out = distiller(images, labels, indices=indices, epoch=epoch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
    return student, distiller


def test_an_own_loop_ends_with_the_weights_of_kdforaa_train(tmp_path, foreign_teacher):
    cfg = config(foreign_teacher, hints={"stage2": 1.0}, sp=10.0)  # feature terms too
    threads = torch.get_num_threads()
    try:
        Trainer(cfg, tmp_path / "run", progress=False).run()
        student, distiller = own_loop(cfg)
    finally:
        torch.set_num_threads(threads)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    mine = student.state_dict()
    assert state["model"].keys() == mine.keys()
    assert all(torch.equal(state["model"][key], mine[key]) for key in mine)
    adapters = distiller.criterion.state_dict()
    assert all(torch.equal(state["criterion"][key], adapters[key]) for key in adapters)


def test_a_model_of_yours_as_teacher_with_keys_from_a_generator(foreign_teacher):
    cfg = config(foreign_teacher)
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 10, 1), build_model("resnet8", 10, 1)
    facts = DataFacts(num_classes=10, in_channels=1, image_size=(28, 28), mean=(0.29,), std=(0.35,))
    distiller = Distiller.from_config(cfg, student, facts, teacher=teacher)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert [id(p) for p in distiller.parameters()] == [id(p) for p in student.parameters()]
    images = torch.rand(6, 1, 28, 28)  # float in [0, 1] is taken as its bytes
    labels = torch.randint(0, 10, (6,))
    out = distiller(images, labels, keys=draw_keys(6, torch.Generator().manual_seed(1)))
    assert out.logits.shape == out.teacher_logits.shape == (6, 10)
    assert set(out.terms) == {"ce", "distill"} and out.params.strongest_level.shape == (6,)
    out.loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    with pytest.raises(BadInput, match="indices .* or their keys"):
        distiller(images, labels)


def test_a_cache_needs_indices_not_keys(foreign_teacher, tmp_path):
    from kdforaa.distill.cache import build_cache

    cfg = config(foreign_teacher)
    cache = tmp_path / "cache"
    build_cache(cfg, foreign_teacher, cache, epochs=cfg.train.epochs, k=10, progress=False)
    cached = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"cache": str(cache)})})
    data = load_dataset(cfg.data, "train")
    distiller = Distiller.from_config(cached, build_model("resnet8", 10, 1), data)
    images, labels = data.images(torch.arange(4)), data.labels[:4]
    assert distiller(images, labels, indices=torch.arange(4), epoch=0).teacher_logits.shape == (4, 10)
    with pytest.raises(BadInput, match="pass indices and epoch instead of keys"):
        distiller(images, labels, keys=draw_keys(4))


def test_the_loss_functions_default_to_the_configs_values():
    s, t = torch.randn(2, 5, 10, generator=torch.Generator().manual_seed(0)).unbind(0)
    defaults = DistillConfig()
    assert torch.equal(topk_kd(s, t), topk_kd(s, t, defaults.k, defaults.temperature))
    assert torch.equal(kd(s, t), kd(s, t, defaults.temperature))
