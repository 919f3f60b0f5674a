"""Training-loop overhead: img/s of kdforaa's Trainer vs a bare PyTorch loop, side by side.

The bare loop trains the same model (channels-last, as the Trainer's default) at the same batch size on
precomputed, already-normalised tensors: no data loading, no augmentation, no metrics, no checkpoints.
Our loop runs the real Trainer on Fashion-MNIST with its default crop + flip, metrics and an
end-of-epoch checkpoint (test evaluation excluded: it is not part of the training throughput).
Target: ours within 10% of the bare loop.

    python benchmarks/bench_train.py [--steps 60] [--repeats 3] [--models resnet8,resnet20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdforaa.config import build_config
from kdforaa.models.registry import build_model
from kdforaa.train.loop import Trainer


def bare_loop(model_name: str, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model = build_model(model_name, 10, 1).to(memory_format=torch.channels_last)  # as the Trainer
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = [torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last) for _ in range(steps)]
    y = torch.randint(0, 10, (steps, batch))
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def our_loop(model_name: str, steps: int, batch: int) -> float:
    tree = {
        "data": {"limit": steps * batch, "test_limit": 100},
        "model": {"name": model_name},
        "train": {"epochs": 1, "batch_size": batch},
    }
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(build_config(tree), Path(tmp) / "run", progress=False)
        trainer.run()
        record = trainer.folder.read_metrics()[-1]
    ckpt = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer.folder.path = Path(tmp)
        trainer.save()
    save_seconds = time.perf_counter() - ckpt
    # training time as a user pays it: the steps plus the end-of-epoch checkpoint, without test evaluation
    return steps * batch / (record["epoch_seconds"] + save_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="resnet8,resnet20")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.steps} steps, "
        f"median of {args.repeats}"
    )
    print("| model | bare loop (img/s) | kdforaa Trainer (img/s) | ours / bare |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        bare_loop(name, 5, args.batch)  # warm-up
        bare, ours = [], []
        for _ in range(args.repeats):  # interleaved so that machine noise hits both alike
            bare.append(bare_loop(name, args.steps, args.batch))
            ours.append(our_loop(name, args.steps, args.batch))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"| {name} | {b:.0f} | {o:.0f} | {o / b:.3f} |")


if __name__ == "__main__":
    main()
