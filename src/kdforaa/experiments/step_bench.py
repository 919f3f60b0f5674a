"""Step-cost benchmark: what distillation costs per training step, measured side by side.

Configurations, all on the same batches of real data and the same augmentation:
(a) CE step, (b) online-teacher KDforAA step, (c) KDforAA step reading a soft-label cache,
(d) the limit for (b): the CE step plus a teacher forward measured alone. Each is timed over the same
steps, repeated with the configurations interleaved so that machine noise hits all of them alike;
medians are reported. Also the share of the CE step spent in augmentation.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdforaa.augment.random import make_keys, permutation
from kdforaa.config import DEFAULT_DATA_SET, RunConfig, build_config
from kdforaa.distill.cache import build_cache
from kdforaa.train.loop import Trainer


def _config(student: str, data: str, limit: int, batch: int, magnitude: float, **extra: Any) -> RunConfig:
    tree: dict[str, Any] = {
        "data": {"name": data, "limit": limit, "test_limit": 100},
        "model": {"name": student},
        "augment": {"policy": "randaugment", "num_ops": 2, "magnitude": magnitude},
        "train": {"epochs": 1, "batch_size": batch},
    }
    for section, values in extra.items():
        tree.setdefault(section, {}).update(values)
    return build_config(tree)


def random_teacher_checkpoint(name: str, cfg: RunConfig, folder: Path) -> str:
    """A teacher of architecture ``name`` (random weights: the cost does not depend on them)."""
    tree = cfg.model_dump(mode="json")
    tree["model"]["name"] = name
    trainer = Trainer(build_config(tree), folder / f"teacher-{name}", progress=False)
    trainer.save()
    trainer.folder.unlock()
    return str(trainer.folder.last)


def _batches(trainer: Trainer, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    ds, bs = trainer.parts.train_set, trainer.cfg.train.batch_size
    order = permutation(trainer.cfg.seed, 0, len(ds))
    out = []
    for i in range(steps):
        idx = order[i * bs : (i + 1) * bs]
        out.append((ds.images(idx).to(trainer.device), ds.labels[idx], idx))
    return out


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds for ``fn``, waiting for queued GPU work so that it is charged to ``fn``, not the next."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _trainers(
    student: str, teacher: str, data: str, batch: int, steps: int, magnitude: float, folder: Path
) -> tuple[Trainer, Trainer, Trainer]:
    """(a) CE, (b) online-teacher and (c) cached-teacher trainers on the same ``batch * steps`` images."""
    limit = batch * steps
    distill = {"method": "topk_kd", "k": 5, "temperature": 4.0, "ce_weight": 0.1, "weight": 0.9}
    ce = Trainer(_config(student, data, limit, batch, magnitude), folder / "ce", progress=False)
    teacher_ckpt = random_teacher_checkpoint(teacher, ce.cfg, folder)
    kd_cfg = _config(
        student, data, limit, batch, magnitude, teacher={"checkpoint": teacher_ckpt}, distill=distill
    )
    kd = Trainer(kd_cfg, folder / "kd", progress=False)
    cache_dir = folder / "cache"
    build_cache(kd_cfg, teacher_ckpt, cache_dir, epochs=1, k=10, progress=False)
    cached_cfg = kd_cfg.model_copy(
        update={"teacher": kd_cfg.teacher.model_copy(update={"cache": str(cache_dir)})}
    )
    return ce, kd, Trainer(cached_cfg, folder / "cached", progress=False)


def _workloads(ce: Trainer, kd: Trainer, cached: Trainer, steps: int) -> dict[str, Callable[[], None]]:
    """The five timed workloads, each over the same batches: three training steps, the teacher's
    forward alone and the augmentation alone."""
    data_batches = _batches(ce, steps)
    views = ce.parts.views
    inputs = [views(images, indices, 0).teacher for images, _, indices in data_batches]
    live = kd.parts.teacher
    assert live is not None  # kd's config names a teacher

    def steps_of(trainer: Trainer) -> Callable[[], None]:
        def run() -> None:
            for batch in data_batches:
                trainer.train_step(*batch)

        return run

    def teacher_alone() -> None:
        for x, (_, _, indices) in zip(inputs, data_batches, strict=True):
            live.logits(x, epoch=0, indices=indices)

    def augment_alone() -> None:
        augment = views.pipeline(0)
        for images, _, indices in data_batches:
            augment.apply(images, augment.sample(make_keys(ce.cfg.seed, 0, indices)))

    return {
        "ce": steps_of(ce),
        "kd_online": steps_of(kd),
        "kd_cached": steps_of(cached),
        "teacher_forward": teacher_alone,
        "augment": augment_alone,
    }


def _interleaved_medians(
    runs: dict[str, Callable[[], None]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of each workload after one warm-up, the workloads taking turns in every repeat
    so that machine noise hits all of them alike."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(_timed(fn, device))
    return {name: statistics.median(v) for name, v in times.items()}


def run_step_bench(
    student: str = "resnet8",
    teacher: str = "resnet20",
    data: str = DEFAULT_DATA_SET,
    batch: int = 128,
    steps: int = 20,
    repeats: int = 5,
    magnitude: float = 15.0,
) -> dict[str, Any]:
    """img/s of (a)-(d) and the ratios the targets are stated in."""
    with tempfile.TemporaryDirectory() as tmp:
        ce, kd, cached = _trainers(student, teacher, data, batch, steps, magnitude, Path(tmp))
        med = _interleaved_medians(_workloads(ce, kd, cached, steps), repeats, ce.device)
        for t in (ce, kd, cached):
            t.folder.unlock()
    images = batch * steps
    limit_time = med["ce"] + med["teacher_forward"]
    return {
        "student": student,
        "teacher": teacher,
        "device": str(ce.device),
        "batch": batch,
        "steps": steps,
        "repeats": repeats,
        "img_per_s": {
            "(a) CE step": images / med["ce"],
            "(b) KDforAA, online teacher": images / med["kd_online"],
            "(c) KDforAA, cached teacher": images / med["kd_cached"],
            "(d) CE step + teacher forward alone": images / limit_time,
        },
        "b_over_d_time": med["kd_online"] / limit_time,
        "c_over_a_time": med["kd_cached"] / med["ce"],
        "augment_share_of_ce_step": med["augment"] / med["ce"],
    }


def format_step_bench(result: dict[str, Any]) -> str:
    lines = [
        f"student {result['student']}, teacher {result['teacher']}, {result['device']}, "
        f"batch {result['batch']}, {result['steps']} steps, median of {result['repeats']}",
        "| configuration | img/s |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.0f} |" for name, value in result["img_per_s"].items()]
    lines.append(f"time (b)/(d) = {result['b_over_d_time']:.3f} (target <= 1.05); ")
    lines[-1] += f"time (c)/(a) = {result['c_over_a_time']:.3f} (target <= 1.10); "
    lines[-1] += (
        f"augmentation share of the CE step = {100 * result['augment_share_of_ce_step']:.1f}% (target <= 10%)"
    )
    return "\n".join(lines)
