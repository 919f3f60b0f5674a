"""One distillation epoch through `kdforaa train` against the loop most KD code is written as.

Both train a resnet8 student from a resnet20 teacher (random weights: the cost does not depend on them)
on the same Fashion-MNIST images, batch 128, SGD, with the paper's loss (CE + 0.5 · top-3 KD at T = 1)
under RandAugment(2, 9) plus a padded random crop and a flip:

- ours: `kdforaa train` in its own process (per-sample augmentation in the training process, native
  kernels, default settings: threads chosen from the free cores);
- the usual loop, written plainly below: a torch `DataLoader` with 2 worker processes, each applying a
  per-image Pillow RandAugment, crop and flip to every sample; the teacher's forward in the loop.

Reported: training img/s of the epoch (data loading included, test evaluation excluded), the median of
the repeats, quiet and next to one busy process. Target: ours >= 1.5x the usual loop in both.

    python benchmarks/bench_epoch.py [--images 10000] [--repeats 3]   # --images 60000: the full set
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from kdforaa.checkpoint import save_checkpoint
from kdforaa.config import DataConfig, build_config, config_to_dict
from kdforaa.data.datasets import load_dataset
from kdforaa.distill.losses import topk_kd
from kdforaa.experiments.benchmarking.neighbours import busy_neighbours, train_img_per_s
from kdforaa.experiments.benchmarking.pillow_randaugment import PillowRandAugment
from kdforaa.experiments.benchmarking.workload import MAGNITUDE, NUM_OPS
from kdforaa.models.registry import build_model

BATCH, K = 128, 3


def teacher_checkpoint(folder: Path) -> str:
    """A resnet20 teacher with random weights, saved as a kdforaa run checkpoint."""
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 1)
    path = folder / "teacher.pt"
    config = config_to_dict(build_config({"model": {"name": "resnet20"}}))
    state = {"model": model.state_dict(), "config": config, "num_classes": 10, "in_channels": 1}
    save_checkpoint(state, path)
    return str(path)


# ---------------------------------------------------------------------------------- the usual loop
class PillowAugmentedImages(torch.utils.data.Dataset):
    """Grey images as a map-style data set: RandAugment(2, 9), crop after 4-pixel padding, flip, one
    image at a time with Pillow, then normalised to a float tensor (what a torchvision pipeline does)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std
        self.augment = PillowRandAugment(NUM_OPS, MAGNITUDE)
        self.rng = self.augment.rng  # one stream: the ops, then the crop and the flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.augment.augment_one(Image.fromarray(self.images[index]))
        side = img.width
        left, top = self.rng.randint(0, 8), self.rng.randint(0, 8)
        img = ImageOps.expand(img, border=4, fill=0).crop((left, top, left + side, top + side))
        if self.rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)
        return (x - self.mean) / self.std, int(self.labels[index])


def seed_worker(worker_id: int) -> None:
    """Each worker its own random stream (they would otherwise repeat each other's draws)."""
    torch.utils.data.get_worker_info().dataset.rng.seed(worker_id)


def usual_loop_img_per_s(images: int, teacher_path: str) -> float:
    """One epoch of the plain loop; img/s of its training (the DataLoader's start included)."""
    data = load_dataset(DataConfig(name="fashion-mnist", limit=images), "train")
    dataset = PillowAugmentedImages(data.data[:, 0].numpy(), data.labels.numpy(), data.mean[0], data.std[0])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True, worker_init_fn=seed_worker
    )
    torch.manual_seed(0)
    student = build_model("resnet8", 10, 1)
    teacher = build_model("resnet20", 10, 1)
    teacher.load_state_dict(torch.load(teacher_path, weights_only=True)["model"])
    teacher.eval()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    student.train()
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        with torch.no_grad():
            teacher_logits = teacher(x)
        logits = student(x)
        loss = F.cross_entropy(logits, y) + 0.5 * topk_kd(logits, teacher_logits, K, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------------- ours
def ours_img_per_s(images: int, teacher_path: str) -> tuple[float, list[float]]:
    overrides = [
        "model.name=resnet8",
        f"data.limit={images}",
        "augment.policy=randaugment",
        f"augment.num_ops={NUM_OPS}",
        f"augment.magnitude={MAGNITUDE}",
        f"train.batch_size={BATCH}",
        "train.epochs=1",
        f"teacher.checkpoint={teacher_path}",
        "distill.method=topk_kd",
        f"distill.k={K}",
    ]
    run = train_img_per_s(overrides, skip_first=False)
    return run.img_per_s, run.threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images (60000: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--neighbours", default="0,1", help="comma-separated numbers of busy processes")
    args = parser.parse_args()
    print(f"{args.images} images, batch {BATCH}, median of {args.repeats}; python {sys.version.split()[0]}")
    print("| busy neighbours | ours (img/s) | usual loop (img/s) | ours / usual | our threads |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = teacher_checkpoint(Path(tmp))
        for count in (int(n) for n in args.neighbours.split(",")):
            ours, usual, threads = [], [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                with busy_neighbours(count):
                    rate, counts = ours_img_per_s(args.images, teacher_path)
                    ours.append(rate)
                    threads += counts
                    usual.append(usual_loop_img_per_s(args.images, teacher_path))
            a, b = statistics.median(ours), statistics.median(usual)
            print(f"| {count} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x | {statistics.mean(threads):.2f} |")


if __name__ == "__main__":
    main()
