"""Training throughput on a CPU that is not ours alone, and the bits it gives: quiet, next to busy processes.

The run: RandAugment(2, 9), resnet8, the first 4 096 Fashion-MNIST images (``--images``), `kdforaa
train` in its own process. Settings compared (every one once per round, rounds interleaved, so the
host's drift hits all alike):

- ``before``: all cores (``train.threads`` = the core count) with libgomp's own spin count (300 000,
  about 10 ms on the AMD EPYC measured) — the quiet default before the OpenMP setting;
- ``one thread``: what the adaptive count chose next to a busy neighbour on 2 cores;
- ``default``: nothing set: ``train.threads: 0`` and the ``GOMP_SPINCOUNT`` kdforaa sets;
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once);
- ``spin=N`` for each N of ``--spins``: ``GOMP_SPINCOUNT=N``, to choose the default from.

Reported: the median img/s of epochs 2.. of each run, the median over rounds, each as a share of the
setting's own quiet median and of ``before``'s; and a SHA-256 of each run's final weights: the runs of
one thread count must all agree, whatever the load and the wait policy. Targets: next to one busy
process >= 50 % of quiet; quiet >= 95 % of ``before``.

    python benchmarks/bench_contention.py [--repeats 3] [--epochs 3] [--neighbours 0,1] [--spins 300,3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from kdforaa.experiments.benchmarking.neighbours import TimedRun, busy_neighbours, train_img_per_s

WORKLOAD = [
    "model.name=resnet8",
    "augment.policy=randaugment",
    "augment.num_ops=2",
    "augment.magnitude=9",
    "train.eval_every=0",
]
LIBGOMP_DEFAULT_SPIN = "300000"


def settings(cores: int, spins: list[int]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Label -> (extra overrides, OpenMP environment) of each setting compared."""
    compared = {
        "before": ([f"train.threads={cores}"], {"GOMP_SPINCOUNT": LIBGOMP_DEFAULT_SPIN}),
        "one thread": (["train.threads=1"], {"GOMP_SPINCOUNT": LIBGOMP_DEFAULT_SPIN}),
        "default": ([], {}),
        "passive": ([], {"OMP_WAIT_POLICY": "PASSIVE"}),
    }
    for spin in spins:
        compared[f"spin={spin}"] = ([], {"GOMP_SPINCOUNT": str(spin)})
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=4096, help="training images (the first N)")
    parser.add_argument("--neighbours", default="0,1", help="comma-separated numbers of busy processes")
    parser.add_argument("--spins", default="", help="comma-separated GOMP_SPINCOUNT values to compare too")
    parser.add_argument("--only", default="", help="comma-separated setting labels to run (default: all)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    compared = settings(cores, [int(s) for s in args.spins.split(",") if s])
    if args.only:
        compared = {label: compared[label] for label in args.only.split(",")}
    neighbours = [int(n) for n in args.neighbours.split(",")]
    size = [f"data.limit={args.images}", f"train.epochs={args.epochs}"]
    runs: dict[tuple[int, str], list[TimedRun]] = {}
    for _ in range(args.repeats):
        for count in neighbours:
            for label, (overrides, env) in compared.items():
                with busy_neighbours(count):
                    run = train_img_per_s([*WORKLOAD, *size, *overrides], env=env)
                runs.setdefault((count, label), []).append(run)
                print(f"{count} busy, {label}: {run.img_per_s:,.0f} img/s", file=sys.stderr, flush=True)
    print(f"{cores} cores, {args.images} images, median of {args.repeats} rounds, epochs 2..{args.epochs}\n")
    columns = "busy neighbours | setting | img/s (each run) | median | share of its quiet | share of before's"
    print(f"| {columns} | threads | weights |")
    print("|---|---|---|---|---|---|---|---|")
    median = {key: statistics.median(r.img_per_s for r in values) for key, values in runs.items()}
    for (count, label), values in sorted(runs.items()):
        quiet, before = median.get((0, label), float("nan")), median.get((0, "before"), float("nan"))
        each = ", ".join(f"{r.img_per_s:,.0f}" for r in values)
        threads = sorted({t for r in values for t in r.threads})
        weights = ", ".join(sorted({r.weights[:10] for r in values}))
        print(
            f"| {count} | {label} | {each} | {median[(count, label)]:,.0f} | "
            f"{100 * median[(count, label)] / quiet:.0f} % | {100 * median[(count, label)] / before:.0f} % | "
            f"{', '.join(f'{t:g}' for t in threads)} | {weights} |"
        )
    by_threads: dict[tuple[float, ...], set[str]] = {}
    for values in runs.values():
        for run in values:
            by_threads.setdefault(tuple(run.threads), set()).add(run.weights)
    for threads, digests in sorted(by_threads.items()):
        verdict = "identical" if len(digests) == 1 else f"{len(digests)} DIFFERENT results"
        print(f"\nweights of every run at {threads[0]:g} threads, any load and wait policy: {verdict}")


if __name__ == "__main__":
    main()
