"""Where RandAugment(2, 9) spends a batch: wall time per call and per stage, and on CUDA the kernel
launches, host syncs and GPU busy time per call (the engine is launch-bound there).

    python benchmarks/profile_augment.py [--device cpu|cuda] [--threads 1] [--repeats 20]

Stages, each timed alone on the same batch (medians): sampling the parameters, the geometry matrices,
the fused backends' per-sample plans (host work; the Triton one does not grow with the image), on the
CPU the native pass (colour ops and warp in C, which ``call`` uses there), on CUDA the Triton pass (one
launch, plan included, which ``call`` uses there when Triton is installed), and the torch path's colour
pass and warp. Random uint8 RGB batches:
32x32 B=256, 224x224 B=256 and B=64.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from kdforaa.augment import RandAugment, apply, native, plan, resample
from kdforaa.augment.random import make_keys
from kdforaa.experiments.benchmarking.cuda_counts import cuda_counts

CASES = ((32, 256), (224, 256), (224, 64))


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def profile_case(side: int, batch: int, device: torch.device, repeats: int) -> str:
    """One line for a random ``(batch,3,side,side)`` uint8 batch: img/s and ms per stage."""
    x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=device)
    policy = RandAugment(2, 9)
    keys = make_keys(0, 0, torch.arange(batch))
    params = policy.sample(keys)
    matrix = plan.inverse_maps(params, side, side)
    stages = {
        "call": lambda: policy(x),
        "sample": lambda: policy.sample(keys),
        "matrices": lambda: plan.inverse_maps(params, side, side),
        "native plan": lambda: native.native_warp(plan.sample_plan(params, side, side), side, side),
        "triton plan": lambda: plan.sample_plan(params, side, side),
    }
    backend = apply.choose_backend("auto", x.device, "nearest")
    if backend == "native":  # the CPU path: colour ops and warp in one native pass
        stages["native pass (matrices included)"] = lambda: apply._native_pass(x, params, 0)
    if backend == "triton":  # the CUDA path: one launch
        stages["triton pass (plan included)"] = lambda: apply._triton_pass(x, params, 0, "nearest")
    stages |= {  # the torch path, which CUDA takes
        "torch colour": lambda: apply._colour_pass(x, params),
        "torch warp": lambda: resample.warp_moved(x, matrix, 0, "nearest", owned=False),  # with a copy
    }
    ms = {name: median_ms(fn, device, repeats) for name, fn in stages.items()}
    line = f"{side}x{side} B={batch}: {batch / ms['call'] * 1e3:,.0f} img/s; " + ", ".join(
        f"{name} {value:.2f}" for name, value in ms.items()
    )
    return line + (f"; {cuda_counts(lambda: policy.apply(x, params))}" if device.type == "cuda" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, ms per call")
    for side, batch in CASES:
        print(profile_case(side, batch, device, args.repeats))


if __name__ == "__main__":
    main()
