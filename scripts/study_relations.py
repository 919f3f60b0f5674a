"""The study's accuracy-vs-magnitude curve next to the teacher's outlier statistics (docs/results.md).

Reads the per-run tables of the magnitude sweeps (results.csv of C1 and C6/C7) and the teacher's
``policy_stats.csv`` from ``kdforaa outliers``, and prints one Markdown table per level: accuracy of each
method (mean ± std over seeds), the gain of each distillation method over CE (paired by seed), the
teacher's outlier rate, top-K coverage and Wang et al.'s T-stddev; then the correlation between the
outlier rate and the gains, and the best level of each method.

    python scripts/study_relations.py runs/study/c1_magnitude runs/study/c6_c7_large_magnitude \\
        --outliers runs/outliers-study/policy_stats.csv --plot docs/study_accuracy_vs_magnitude.png
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

BASELINE = "none"


def read_runs(folders: list[Path]) -> dict[float, dict[str, dict[int, float]]]:
    """level -> method -> seed -> final test accuracy, from the sweeps' results.csv."""
    table: dict[float, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for folder in folders:
        with (folder / "results.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["status"] == "finished" and row["final_test_acc"]:
                    level = float(row["augment.magnitude"])
                    table[level][row["distill"]][int(row["seed"])] = float(row["final_test_acc"])
    return table


def read_policy_stats(path: Path) -> dict[float, dict[str, float]]:
    """level -> the whole policy's statistics (the rows that are not the clean 'none' baseline)."""
    with path.open(newline="") as fh:
        return {
            float(row["level"]): {
                k: float(row[k]) for k in ("outlier_rate", "topk_coverage", "t_stddev", "k")
            }
            for row in csv.DictReader(fh)
            if row["policy"] != "none"
        }


def mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


def paired_gains(runs: dict[str, dict[int, float]], method: str) -> list[float]:
    seeds = sorted(set(runs[method]) & set(runs[BASELINE]))
    return [runs[method][s] - runs[BASELINE][s] for s in seeds]


def plot(runs: dict[float, dict[str, dict[int, float]]], methods: list[str], path: Path) -> None:
    """Accuracy vs level per method, mean with a bar of one standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        levels = [level for level in sorted(runs) if runs[level][m]]
        values = [list(runs[level][m].values()) for level in levels]
        means = [statistics.fmean(v) for v in values]
        spreads = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(levels, means, yerr=spreads, marker="o", capsize=3, label=m)
    ax.set_xlabel("RandAugment magnitude (level)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep output folders (with results.csv)")
    parser.add_argument("--outliers", type=Path, required=True, help="policy_stats.csv of kdforaa outliers")
    parser.add_argument("--plot", type=Path, help="also write accuracy vs level per method to this PNG")
    args = parser.parse_args()
    runs, stats = read_runs(args.sweeps), read_policy_stats(args.outliers)
    levels = sorted(runs)
    methods = sorted({m for level in levels for m in runs[level]}, key=lambda m: (m != BASELINE, m))
    distillers = [m for m in methods if m != BASELINE]
    header = ["level", *methods, *(f"gain {m}" for m in distillers)]
    header += ["outlier rate %", "top-K coverage %", "T-stddev ×1e-3"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    gains: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for level in levels:
        cells = [f"{level:g}"] + [mean_std(list(runs[level][m].values())) for m in methods]
        for m in distillers:
            g = paired_gains(runs[level], m)
            cells.append(mean_std(g))
            if g and level in stats:
                gains[m].append((stats[level]["outlier_rate"], statistics.fmean(g)))
        s = stats.get(level)
        cells += (
            [
                f"{100 * s['outlier_rate']:.1f}",
                f"{100 * s['topk_coverage']:.1f}",
                f"{1000 * s['t_stddev']:.2f}",
            ]
            if s
            else ["—"] * 3
        )
        print("| " + " | ".join(cells) + " |")
    print()
    if args.plot:
        plot(runs, methods, args.plot)
    for m in distillers:
        pairs = gains[m]
        if len(pairs) > 2:
            r = statistics.correlation([p[0] for p in pairs], [p[1] for p in pairs])
            print(
                f"- correlation of the policy's outlier rate with the gain of {m} over CE: r = {r:+.2f} "
                f"over {len(pairs)} levels"
            )
    for m in methods:
        means = {level: statistics.fmean(runs[level][m].values()) for level in levels if runs[level][m]}
        best = max(means, key=means.get)
        print(f"- best level for {m}: {best:g} ({means[best]:.2f} %)")
    with_stats = [level for level in levels if level in stats]
    if with_stats:
        low = min(with_stats, key=lambda level: stats[level]["t_stddev"])
        high = max(with_stats, key=lambda level: stats[level]["t_stddev"])
        print(f"- T-stddev is lowest at level {low:g} and highest at level {high:g}")


if __name__ == "__main__":
    main()
