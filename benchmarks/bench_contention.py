"""Training throughput on a CPU that is not ours alone: quiet, next to one and two busy processes.

The run is the one of issue 18: RandAugment(2, 9), resnet8, the first 4 096 Fashion-MNIST images,
`kdforaa train` in its own process. It is timed twice per condition: with torch's own choice of threads
(as many as cores, the default before `train.threads: 0` adapted) and with the default now (0: the cores
the neighbours leave free). Reported: the median img/s of epochs 2.. of each run, the median over
repeats, and each figure as a share of the quiet one. Target: >= 50 % of quiet next to one busy process,
quiet within 5 % of the fixed-thread figure.

    python benchmarks/bench_contention.py [--repeats 3] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics

from neighbours import busy_neighbours, train_img_per_s

WORKLOAD = [
    "model.name=resnet8",
    "augment.policy=randaugment",
    "augment.num_ops=2",
    "augment.magnitude=9",
    "data.limit=4096",
    "train.eval_every=0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--neighbours", default="0,1,2", help="comma-separated numbers of busy processes")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    settings = {
        f"fixed: train.threads={cores} (torch's default)": f"train.threads={cores}",
        "adaptive: train.threads=0 (default)": "train.threads=0",
    }
    rates: dict[tuple[int, str], list[float]] = {}
    counts: dict[tuple[int, str], list[float]] = {}
    neighbours = [int(n) for n in args.neighbours.split(",")]
    for _ in range(args.repeats):  # every condition once per round: the host's drift hits all of them alike
        for count in neighbours:
            for label, setting in settings.items():
                with busy_neighbours(count):
                    rate, threads = train_img_per_s([*WORKLOAD, f"train.epochs={args.epochs}", setting])
                rates.setdefault((count, label), []).append(rate)
                counts[(count, label)] = threads
    print(f"{cores} cores, median of {args.repeats} runs, epochs 2..{args.epochs} of each\n")
    print("| busy neighbours | setting | img/s (each run) | median | share of quiet | threads per epoch |")
    print("|---|---|---|---|---|---|")
    for (count, label), values in sorted(rates.items()):
        quiet = statistics.median(rates[(0, label)]) if (0, label) in rates else float("nan")
        rate = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        threads = ", ".join(f"{t:g}" for t in counts[(count, label)])
        print(f"| {count} | {label} | {runs} | {rate:,.0f} | {100 * rate / quiet:.0f} % | {threads} |")


if __name__ == "__main__":
    main()
