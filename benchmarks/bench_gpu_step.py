"""The GPU distillation step with per-sample augmentation on the GPU, against the usual loop.

    python benchmarks/bench_gpu_step.py [--device cuda] [--workers 8] [--steps 20] [--repeats 5] [--quick]

Two cases: 32x32, B=256, student resnet8x4 distilled from resnet32x4 (100 classes); 224x224, B=128,
timm's resnet18 from resnet50 (1000 classes) when timm is installed, else the zoo pair at 224x224
(``--pair224`` picks another). Every loop runs the same step: the teacher's forward under no_grad, the
student's forward and backward, CE + top-5 KD at T = 4, SGD; bf16 autocast and channels-last models and
batches. The augmentation is RandAugment(2, 9) after a padded random crop (side/8) and a flip.

- **ours**: uint8 batches already on the device; ``TrainingViews`` (the training loop's own path)
  augments them there on the ``auto`` backend (Triton on CUDA), normalises and makes them channels-last;
  the teacher reads the student's tensor itself, no copy.
- **ours, pre-augmented**: the same steps on views computed beforehand: the step without augmentation.
  ``augmentation share = 1 - its time / ours``.
- **the usual loop**, written plainly below: a ``torch.utils.data.DataLoader`` whose workers (``--workers``)
  crop, flip and run a timm-style Pillow RandAugment(2, 9) (``PillowRandAugment``) image
  by image; in the loop the batch is copied to the device, normalised, made channels-last, and the
  teacher's forward runs. ``waiting on data`` is the share of its time spent in the loader's ``next``.

A timed round runs ``--steps`` steps back to back and then waits for the device; rounds of the three
loops alternate, and medians are reported. ``--quick`` on the CPU shrinks everything (32x32 B=8 and
64x64 B=4, the zoo pair, 2 steps) so that the code can be shown to run; with ``TRITON_INTERPRET=1`` and
``--backend triton`` the Triton backend runs through Triton's interpreter there. Its figures say nothing
about a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from kdforaa.augment.apply import choose_backend
from kdforaa.config import build_config
from kdforaa.distill.losses import topk_kd
from kdforaa.distill.views import StepViews, TrainingViews, model_input
from kdforaa.experiments.benchmarking.backends import code_that_ran
from kdforaa.experiments.benchmarking.pillow_randaugment import PillowRandAugment
from kdforaa.experiments.benchmarking.workload import MAGNITUDE, NUM_OPS, real_batch
from kdforaa.models.registry import build_model

MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.25, 0.25)
K, TEMPERATURE, CE_WEIGHT, KD_WEIGHT = 5, 4.0, 0.1, 0.9
TARGET_SHARE, TARGET_VS_USUAL_32 = 0.03, 3.0


@dataclass(frozen=True)
class Case:
    side: int
    batch: int
    student: str
    teacher: str
    classes: int


def cases(quick: bool, pair224: str | None) -> list[Case]:
    """The two cases (shrunk by ``--quick``); the 224 pair from ``--pair224`` "teacher,student"."""
    if quick:
        return [Case(32, 8, "resnet8x4", "resnet32x4", 100), Case(64, 4, "resnet8x4", "resnet32x4", 100)]
    if pair224 is None:
        timm = importlib.util.find_spec("timm") is not None
        pair224 = "timm:resnet50,timm:resnet18" if timm else "resnet32x4,resnet8x4"
        if not timm:
            print("timm is not installed: the 224x224 case uses the zoo pair resnet8x4 <- resnet32x4")
    teacher, student = pair224.split(",")
    return [Case(32, 256, "resnet8x4", "resnet32x4", 100), Case(224, 128, student, teacher, 1000)]


# --------------------------------------------------------------------------------- the shared step
class Step:
    """One distillation step of ``student`` from ``teacher`` (both channels-last; bf16 autocast)."""

    def __init__(self, case: Case, device: torch.device) -> None:
        self.device = device
        self.student = build_model(case.student, case.classes, 3).to(
            device, memory_format=torch.channels_last
        )
        self.teacher = build_model(case.teacher, case.classes, 3).to(
            device, memory_format=torch.channels_last
        )
        self.teacher.eval().requires_grad_(False)
        self.optimizer = torch.optim.SGD(self.student.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(
        self, student_input: torch.Tensor, teacher_input: torch.Tensor, labels: torch.Tensor
    ) -> None:
        with torch.no_grad(), self.autocast():
            teacher_logits = self.teacher(teacher_input)
        with self.autocast():
            logits = self.student(student_input)
        logits, teacher_logits = logits.float(), teacher_logits.float()
        loss = CE_WEIGHT * F.cross_entropy(logits, labels)
        loss = loss + KD_WEIGHT * topk_kd(logits, teacher_logits, K, TEMPERATURE)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


# -------------------------------------------------------------------------------------------- ours
def training_views(case: Case, device: torch.device, backend: str) -> TrainingViews:
    """The training loop's views for this case: RandAugment(2, 9), padded crop, flip, on ``backend``."""
    cfg = build_config(
        {
            "augment": {
                "policy": "randaugment",
                "num_ops": NUM_OPS,
                "magnitude": MAGNITUDE,
                "crop_padding": case.side // 8,
                "flip": True,
                "backend": backend,
            },
            "train": {"channels_last": True},
        }
    )
    return TrainingViews(cfg, (case.side, case.side), MEAN, STD, device=device)


# -------------------------------------------------------------------------------- the usual loop
class PillowAugmentedImages(torch.utils.data.Dataset):
    """The usual data path, image by image in the loader's workers: padded random crop, flip, Pillow
    RandAugment(2, 9), then a ``(3,H,W)`` uint8 tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, length: int, pad: int) -> None:
        self.images, self.labels, self.length, self.pad = images, labels, length, pad
        self.augment = PillowRandAugment(NUM_OPS, MAGNITUDE)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index % len(self.images)])
        width, height = image.size
        left, top = random.randint(0, 2 * self.pad), random.randint(0, 2 * self.pad)
        image = ImageOps.expand(image, border=self.pad, fill=0).crop((left, top, left + width, top + height))
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = self.augment.augment_one(image)
        array = np.asarray(image).transpose(2, 0, 1).copy()
        return torch.from_numpy(array), int(self.labels[index % len(self.labels)])


def seed_worker(worker: int) -> None:
    """Each worker its own random stream (they would otherwise repeat each other's draws)."""
    random.seed(torch.initial_seed() % 2**32)
    info = torch.utils.data.get_worker_info()
    info.dataset.augment.rng.seed(torch.initial_seed() % 2**32)


def usual_batches(
    images: torch.Tensor, labels: torch.Tensor, case: Case, workers: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless stream of the usual loader's batches (uint8 on the host, pinned for CUDA)."""
    dataset = PillowAugmentedImages(
        images.permute(0, 2, 3, 1).numpy(), labels.numpy(), length=10**9, pad=case.side // 8
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=case.batch,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
    )
    return iter(loader)


# ------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], float], device: torch.device) -> tuple[float, float]:
    """Seconds for ``fn`` (which returns seconds spent waiting on data), waiting for the device at the end."""
    sync(device)
    start = time.perf_counter()
    waited = fn()
    sync(device)
    return time.perf_counter() - start, waited


def measure(
    case: Case, device: torch.device, steps: int, repeats: int, workers: int, backend: str
) -> dict[str, dict]:
    """img/s of ours, ours pre-augmented and the usual loop; the augmentation share; the wait on data."""
    pool_size = max(1, min(8, steps)) * case.batch
    host_images = real_batch(case.side, min(pool_size, 10_000), torch.device("cpu"))
    host_images = host_images.repeat(-(-pool_size // len(host_images)), 1, 1, 1)[:pool_size]
    images = host_images.to(device)
    labels = torch.randint(0, case.classes, (pool_size,), generator=torch.Generator().manual_seed(0))
    batches = [
        (images[i : i + case.batch], labels[i : i + case.batch].to(device), torch.arange(i, i + case.batch))
        for i in range(0, pool_size, case.batch)
    ]
    views = training_views(case, device, backend)
    step = Step(case, device)
    pre = [views(x, indices, epoch=0) for x, _, indices in batches]
    assert all(v.teacher is v.student for v in pre)  # the teacher reads the student's batch, no copy
    stream = usual_batches(host_images, labels, case, workers, device)

    def ours() -> float:
        for s in range(steps):
            x, y, indices = batches[s % len(batches)]
            v: StepViews = views(x, indices, epoch=1)
            step(v.student, v.teacher, y)
        return 0.0

    def ours_pre_augmented() -> float:
        for s in range(steps):
            v, (_, y, _) = pre[s % len(pre)], batches[s % len(batches)]
            step(v.student, v.teacher, y)
        return 0.0

    def usual() -> float:
        waited = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            x, y = next(stream)
            waited += time.perf_counter() - start
            x = model_input(x.to(device, non_blocking=True), MEAN, STD, channels_last=True)
            step(x, x, y.to(device, non_blocking=True))
        return waited

    loops = {"ours": ours, "ours, pre-augmented": ours_pre_augmented, "usual": usual}
    for fn in loops.values():  # warm-up: compiles the kernels, starts the workers, tunes cuDNN
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    waits: list[float] = []
    for _ in range(repeats):
        for name, fn in loops.items():
            elapsed, waited = timed(fn, device)
            seconds[name].append(elapsed)
            if name == "usual":
                waits.append(waited / elapsed)
    med = {name: statistics.median(times) for name, times in seconds.items()}
    return {
        "img_per_s": {name: steps * case.batch / t for name, t in med.items()},
        "step_ms": {name: 1e3 * t / steps for name, t in med.items()},
        "share": max(0.0, 1.0 - med["ours, pre-augmented"] / med["ours"]),
        "waiting": statistics.median(waits),
        "backend": code_that_ran(choose_backend(backend, images.device, "nearest")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per loop (median)")
    parser.add_argument("--backend", default="auto", help="augment.backend of ours (default auto)")
    parser.add_argument(
        "--pair224", help='"teacher,student" for the 224x224 case, e.g. "timm:resnet50,timm:resnet18"'
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, 2 steps, 1 round: shows the code runs"
    )
    parser.add_argument("--json", help="also write the rows of ours to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "bench_gpu_step: no CUDA device here (use --device cpu --quick to check the code runs)"
        )
    steps, repeats = (2, 1) if args.quick else (args.steps, args.repeats)
    workers = min(args.workers, 2) if args.quick else args.workers
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"torch {torch.__version__}, {name}; {steps} steps per round, median of {repeats} rounds")
    print(
        "| images | batch | student <- teacher | loop | img/s | ms per step | augmentation | vs usual", end=""
    )
    print(" | target |\n" + "|---" * 9 + "|")
    summary: list[dict[str, object]] = []
    for case in cases(args.quick, args.pair224):
        r = measure(case, device, steps, repeats, workers, args.backend)
        summary.append(
            {"images": f"{case.side}x{case.side}", "batch": case.batch,
             "pair": f"{case.student} <- {case.teacher}",
             "ran": r["backend"], "img_per_s": r["img_per_s"]["ours"], "share": r["share"],
             "usual_img_per_s": r["img_per_s"]["usual"]}
        )  # fmt: skip
        if args.json:  # after each case: a stage stopped by its time limit keeps the finished cases
            with open(args.json, "w") as file:
                json.dump({"device": name, "rows": summary}, file, indent=1)
        rates, ms = r["img_per_s"], r["step_ms"]
        label = f"{case.side}x{case.side} | {case.batch} | {case.student} <- {case.teacher}"
        judged = device.type == "cuda" and not args.quick
        share_ok = "met" if r["share"] <= TARGET_SHARE else "MISSED"
        ratio = rates["ours"] / rates["usual"]
        ratio_ok = "met" if ratio >= TARGET_VS_USUAL_32 else "MISSED"
        share_target = f"{share_ok}: share <= {TARGET_SHARE:.0%}" if judged else "—"
        if judged and case.side == 32:
            share_target += f"; {ratio_ok}: >= {TARGET_VS_USUAL_32:g}x the usual loop"
        rows = [
            (
                f"ours ({r['backend']})",
                "ours",
                f"{r['share']:.1%} of the step",
                f"{ratio:.2f}x",
                share_target,
            ),
            ("ours, pre-augmented", "ours, pre-augmented", "none", "", ""),
            (f"usual ({workers} workers)", "usual", f"waiting on data {r['waiting']:.0%}", "1x", ""),
        ]
        for loop, key, augmentation, versus, target in rows:
            cells = f"{rates[key]:,.0f} | {ms[key]:.1f} | {augmentation} | {versus} | {target}"
            print(f"| {label} | {loop} | {cells} |")
    if any(str(row["ran"]).startswith("torch path") for row in summary):
        raise SystemExit("bench_gpu_step: the Triton kernels failed to compile, so ours ran the torch path")


if __name__ == "__main__":
    main()
