"""Throughput of each build of the native kernels: the prebuilt library's baseline and AVX2 entries
against the ``-march=native`` build made at run time. RandAugment(2, 9), RGB, one thread.

    python benchmarks/bench_kernels.py [--quick] [--threads 1]

The prebuilt library is the installed one when there is one (a wheel install), else it is built into a
temporary folder by the same commands as the wheel's (``native_build.build_prebuilt``; needs ``cc``).
Each build runs the same batches with the same sampled parameters (the bytes are equal, see
tests/augment/test_native_builds.py) in turn, round after round, so that a change in the machine's
load hits all of them alike; the median of the rounds is reported, for the kernels alone (one
``native.apply`` call on precomputed op codes and warp parts) and for the whole native backend
(``policy.apply``: op codes and geometry maps in numpy, then the kernels).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kdforaa.augment import RandAugment, native, native_build, native_library
from kdforaa.augment.plan import sample_plan
from kdforaa.augment.random import make_keys
from kdforaa.experiments.benchmarking.workload import real_batch

CASES = ((32, 256), (224, 64))  # (side, batch), as in bench_augment.py


def builds(scratch: Path) -> dict[str, native_library.Kernels]:
    """name -> kernels: prebuilt baseline, prebuilt AVX2 (where the CPU has it), built for this CPU."""
    try:
        native_library.load_prebuilt()
        prebuilt = native_library.PREBUILT
    except native_library.LoadError:
        compiler = shutil.which(os.environ.get("CC", "cc"))
        if compiler is None:
            raise SystemExit("no prebuilt library installed and no C compiler to build one") from None
        prebuilt = scratch / native_build.PREBUILT_NAME
        native_build.build_prebuilt(compiler, prebuilt)
    chosen = native_library.load_prebuilt(prebuilt).level
    found = {"prebuilt baseline": native_library.load_prebuilt(prebuilt, "baseline")}
    if chosen == "avx2":
        found["prebuilt AVX2"] = native_library.load_prebuilt(prebuilt, "avx2")
    found["built here, -march=native"] = native_library.build_here()
    print(f"prebuilt library: {prebuilt} (its dispatcher chooses {chosen} here)")
    return found


def median_rates(runners: dict[str, Callable[[], object]], batch: int, rounds: int) -> dict[str, float]:
    """img/s of each runner: the median over ``rounds`` interleaved rounds, after one warm-up round."""
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(times) for name, times in seconds.items()}


def measure(found: dict[str, native_library.Kernels], side: int, batch: int, rounds: int) -> dict:
    x = real_batch(side, batch, torch.device("cpu")).contiguous()
    policy = RandAugment(2, 9)
    params = policy.sample(make_keys(0, 0, torch.arange(batch)))
    plan = sample_plan(params, side, side)
    warp = native.native_warp(plan, side, side)

    def kernels_alone(kernels: native_library.Kernels) -> Callable[[], object]:
        def run() -> object:
            with native.using(kernels):
                return native.apply(x, plan, policy.fill, warp)

        return run

    def whole_backend(kernels: native_library.Kernels) -> Callable[[], object]:
        def run() -> object:
            with native.using(kernels):
                return policy.apply(x, params, backend="native")

        return run

    runners = {(name, "kernels"): kernels_alone(k) for name, k in found.items()}
    runners |= {(name, "backend"): whole_backend(k) for name, k in found.items()}
    return median_rates(runners, batch, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 15 (shows it works)")
    parser.add_argument("--threads", type=int, default=1, help="kernel threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else 15
    with tempfile.TemporaryDirectory(prefix="kdforaa-bench-kernels-") as scratch:
        found = builds(Path(scratch))
        print(
            f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
            f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; median of {rounds} rounds"
        )
        reference = "built here, -march=native"
        print("\n| images | batch | build | kernels img/s | vs -march=native | whole native backend img/s |")
        print("|---|---|---|---|---|---|")
        for side, batch in CASES:
            rates = measure(found, side, batch, rounds)
            for name in found:
                kernels, backend = rates[(name, "kernels")], rates[(name, "backend")]
                ratio = kernels / rates[(reference, "kernels")]
                cells = f"{kernels:,.0f} | {ratio:.2f}x | {backend:,.0f}"
                print(f"| {side}x{side} RGB | {batch} | {name} | {cells} |")


if __name__ == "__main__":
    main()
