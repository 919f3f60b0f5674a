"""Parameters and inference speed of trained checkpoints, side by side (issue 9's speed/accuracy table).

    python scripts/inference_cost.py CKPT [CKPT ...] [--threads 1] [--repeats 5]

Each checkpoint is evaluated as it was trained (a resolution-coupled student at its own resolution) on
the first 2 048 test images of its data set; the median of the repeats is printed with the accuracy on
the whole test split.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from kdforaa.data.datasets import load_dataset
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import couple_resolution
from kdforaa.train.checkpoint import load_checkpoint
from kdforaa.train.config import build_config
from kdforaa.train.evaluate import evaluate, inference_speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print("| checkpoint | model | input | parameters | test acc (%) | inference img/s |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        state = load_checkpoint(path)
        cfg = build_config(state["config"])
        test = load_dataset(cfg.data, "test")
        model = build_model(state["model_name"], state["num_classes"], state["in_channels"])
        model.load_state_dict(state["model"])
        couple_resolution(model, cfg.distill.student_resolution, test.image_size)
        model.eval()
        acc = evaluate(model, test, device)["acc"]
        speed = statistics.median(inference_speed(model, test, device) for _ in range(args.repeats))
        side = cfg.distill.student_resolution or test.image_size[0]
        params = sum(p.numel() for p in model.parameters())
        print(f"| {path} | {state['model_name']} | {side}×{side} | {params:,} | {acc:.2f} | {speed:,.0f} |")


if __name__ == "__main__":
    main()
