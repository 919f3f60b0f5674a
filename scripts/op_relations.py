"""Op by op: the gain of distillation when training with one op, next to that op's outlier rate.

Reads the per-op sweep (``configs/sweeps/c8_single_ops.yaml``: one op per image at one level, CE vs
distillation) and the teacher's ``outliers.csv`` from ``kdforaa outliers``; prints a Markdown table per
op and the correlation between outlier rate and gain.

    python scripts/op_relations.py runs/study/c8_single_ops --outliers runs/outliers-study/outliers.csv \\
        --level 15
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

from study_relations import BASELINE, mean_std, paired_gains


def read_op_runs(folder: Path) -> dict[str, dict[str, dict[int, float]]]:
    """op -> method -> seed -> final test accuracy."""
    table: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with (folder / "results.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["status"] == "finished" and row["final_test_acc"]:
                table[row["augment.ops"]][row["distill"]][int(row["seed"])] = float(row["final_test_acc"])
    return table


def read_outlier_rates(path: Path, level: float) -> dict[str, float]:
    with path.open(newline="") as fh:
        return {r["op"]: float(r["outlier_rate"]) for r in csv.DictReader(fh) if float(r["level"]) == level}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="output folder of the per-op sweep (with results.csv)")
    parser.add_argument("--outliers", type=Path, required=True, help="outliers.csv of kdforaa outliers")
    parser.add_argument("--level", type=float, required=True, help="the level the sweep trained at")
    args = parser.parse_args()
    runs, rates = read_op_runs(args.sweep), read_outlier_rates(args.outliers, args.level)
    ops = sorted(runs, key=lambda op: rates.get(op, -1.0))
    methods = sorted({m for op in ops for m in runs[op]} - {BASELINE})
    header = ["op", "outlier rate %", BASELINE, *methods, *(f"gain {m}" for m in methods)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for op in ops:
        rate = rates.get(op)
        cells = [op, "—" if rate is None else f"{100 * rate:.1f}"]
        cells += [mean_std(list(runs[op][m].values())) for m in (BASELINE, *methods)]
        for m in methods:
            gains = paired_gains(runs[op], m)
            cells.append(mean_std(gains))
            if gains and rate is not None:
                points[m].append((rate, statistics.fmean(gains)))
        print("| " + " | ".join(cells) + " |")
    print()
    for m, pairs in points.items():
        if len(pairs) > 2:
            r = statistics.correlation([p[0] for p in pairs], [p[1] for p in pairs])
            print(f"- outlier rate vs gain of {m}: Pearson r = {r:+.2f} over {len(pairs)} ops")


if __name__ == "__main__":
    main()
