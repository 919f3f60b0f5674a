"""The second stage of the many-class study (`make study-many`): the lambda sweep at the best K.

Reads the top-K sweep's results.csv (one row per run), takes the K with the highest mean final test
accuracy over its runs at the lambda sweep's levels (``augment.magnitude`` of its grid; every seed; a tie
goes to the smaller K), and writes the lambda sweep with ``distill.k`` set to that K, every ``from:``
resolved so that the written file runs from where it is written. Refuses (exit 2) until every run it
needs has finished, so a rerun of the study after an interruption picks the same K.

    python scripts/many_class_best_k.py runs/study-many/topk_k configs/sweeps/many_class/lambda.yaml \\
        runs/study-many/lambda_best_k.yaml
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from kdforaa.config import read_yaml_file
from kdforaa.errors import BadInput
from kdforaa.experiments.sweep.spec import load_sweep, resolve_files, value_label


def best_k(results: Path, levels: list[str], runs_per_k: int) -> tuple[int, dict[int, float]]:
    """``(best K, {K: mean final test accuracy})`` over the finished runs at ``levels`` (labels)."""
    accuracies: dict[int, list[float]] = defaultdict(list)
    with results.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["augment.magnitude"] in levels and row["status"] == "finished":
                accuracies[int(row["distill.k"])].append(float(row["final_test_acc"]))
    unfinished = sorted(k for k, values in accuracies.items() if len(values) < runs_per_k)
    if not accuracies or unfinished:
        raise BadInput(
            f"{results}: the top-K sweep has not finished at levels {', '.join(levels)} "
            f"(K {unfinished or 'all'}): run it to the end first"
        )
    means = {k: statistics.fmean(values) for k, values in sorted(accuracies.items())}
    return max(means, key=lambda k: (means[k], -k)), means


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topk_sweep", type=Path, help="output folder of the top-K sweep (holds results.csv)")
    parser.add_argument("lambda_sweep", type=Path, help="the lambda sweep file to instantiate")
    parser.add_argument("out", type=Path, help="the sweep file to write")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.lambda_sweep)
        levels = [choice.label for choice in sweep.grid["augment.magnitude"]]
        k, means = best_k(args.topk_sweep / "results.csv", levels, len(levels) * len(sweep.seeds or [0]))
        spec = resolve_files(read_yaml_file(args.lambda_sweep, "sweep file"), args.lambda_sweep.parent)
    except BadInput as err:
        print(f"many_class_best_k: error: {err}", file=sys.stderr)
        return 2
    spec["base"].setdefault("distill", {})["k"] = k
    spec["name"] = f"k{value_label(k)}-{spec.get('name') or 'lambda{distill.weight}-s{seed}'}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by scripts/many_class_best_k.py from {args.lambda_sweep}: distill.k = {k},\n"
        "# the best mean"
        f" final test accuracy of {args.topk_sweep} at levels {', '.join(levels)}: "
        + ", ".join(f"K {key}: {mean:.2f}" for key, mean in means.items())
        + "\n"
    )
    args.out.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    print(f"best K = {k} ({means[k]:.2f} %); lambda sweep written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
