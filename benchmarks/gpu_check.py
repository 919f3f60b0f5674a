"""GPU check: one table from a CUDA machine (run through benchmarks/gpu_check.sh).

(1) RandAugment(2, 9) on 224x224 RGB uint8, B=256, on the GPU (backend auto: Triton when it is
installed), with its kernel launches and host syncs per batch; (2) one AMP (bf16)
channels-last training step of resnet20 and wrn_16_4 at batch 256; (3) a 2-epoch KDforAA distillation
run on Fashion-MNIST (resnet20 teacher trained for 1 epoch first). Nothing else in kdforaa needs a GPU.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cuda_counts import cuda_counts
from kdforaa.augment import RandAugment
from kdforaa.augment.apply import choose_backend
from kdforaa.config import build_config
from kdforaa.models.registry import build_model
from kdforaa.train.loop import Trainer


def _median_seconds(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def augment_row() -> tuple[str, str]:
    x = torch.randint(0, 256, (256, 3, 224, 224), dtype=torch.uint8, device="cuda")
    policy = RandAugment(2, 9)
    seconds = _median_seconds(lambda: policy(x))
    counts = cuda_counts(lambda: policy(x))
    return (
        f"RandAugment(2, 9), 224x224 RGB, B=256, backend {choose_backend('auto', x.device, 'nearest')}",
        f"{256 / seconds:,.0f} img/s; {counts} per batch",
    )


def step_row(name: str) -> tuple[str, str]:
    model = build_model(name, 1000, 3).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(256, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (256,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = _median_seconds(step)
    return f"AMP channels-last step, {name}, 224x224, B=256", f"{256 / seconds:,.0f} img/s"


def distill_row() -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        base = {"data": {"limit": 10000}, "train": {"batch_size": 256, "device": "cuda"}}
        teacher = {**base, "model": {"name": "resnet20"}, "train": {**base["train"], "epochs": 1}}
        Trainer(build_config(teacher), Path(tmp) / "t", progress=False).run()
        student = {
            **base,
            "model": {"name": "resnet8"},
            "augment": {"policy": "randaugment", "magnitude": 15},
            "train": {**base["train"], "epochs": 2},
            "teacher": {"checkpoint": str(Path(tmp) / "t" / "best.pt")},
            "distill": {"method": "topk_kd", "k": 5},
        }
        Trainer(build_config(student), Path(tmp) / "s", progress=False).run()
        records = [json.loads(line) for line in (Path(tmp) / "s" / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    return (
        "2-epoch KDforAA run (resnet8 <- resnet20, Fashion-MNIST 10k, level 15)",
        f"{last['img_per_s']:,.0f} img/s, test acc {last['test_acc']:.2f}%",
    )


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run it on a machine with a GPU")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    rows = [augment_row(), step_row("resnet20"), step_row("wrn_16_4"), distill_row()]
    print("| check | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
