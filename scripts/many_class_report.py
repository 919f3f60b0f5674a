"""The many-class study's verdicts (docs/results.md, "Many classes"): tables and a plot from its runs.

Reads the sweeps `make study-many` writes under one folder (``methods``, ``topk_k``, ``k_schedule``,
``lambda``: each sweep's ``results.csv``), the teacher's ``summary.json`` and the teacher's outlier
statistics (``outliers/policy_stats.csv`` of ``kdforaa outliers``), and prints Markdown:

- every method's final test accuracy per RandAugment level (mean ± std over seeds);
- C2, top-K against full-distribution KD (K = 100 keeps every class) per level: the paper's K = 5, the
  best K below 100 of the level and Hinton KD, each paired by seed with the full distribution, and
  whether the difference is larger than the seed spread (the larger standard deviation of the two arms);
- C3, the weight λ at the lambda sweep's K;
- the teacher's outlier rate and top-K coverage per level.

With ``--plot`` it also draws accuracy against K, one panel per level, CE / Hinton KD / merged tail as
bands. The best K of a level is picked on the same runs it is reported from, so its gain over K = 5 is an
optimistic estimate; the K = 5 comparison is the pre-registered one.

    python scripts/many_class_report.py runs/study-many --plot docs/many_class_accuracy_vs_k.png
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import yaml

from kdforaa.analysis.report import error_bar_lines, figure, markdown_table, mean_std, save_figure

FULL_K = 100  # every class of the pairs data set: full-distribution KD at the same lambda and T
PAPER_K = 5
METHOD_LABELS = {"ce": "CE", "kd": "Hinton KD (T 4)", "topk5_merge": "top-5, tail merged"}

#: arm name -> level -> seed -> final test accuracy (%)
Arms = dict[str, dict[int, dict[int, float]]]


def read_sweep(folder: Path, column: str, name: str) -> Arms:
    """The finished runs of one sweep, as arms named ``name.format(value of column)``."""
    arms: Arms = defaultdict(lambda: defaultdict(dict))
    path = folder / "results.csv"
    if not path.exists():
        return arms
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["status"] == "finished" and row["final_test_acc"]:
                arm = name.format(row[column]) if column else name
                arms[arm][int(float(row["augment.magnitude"]))][int(row["seed"])] = float(
                    row["final_test_acc"]
                )
    return arms


def cell(values: Iterable[float]) -> str:
    """``mean ± std`` of a group of seeds (``mean`` alone for one, ``—`` for none)."""
    values = list(values)
    if not values:
        return "—"
    mean, std = mean_std(values)
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def spread(values: Iterable[float]) -> float:
    """The standard deviation of a group of seeds; 0 for one seed or none."""
    values = list(values)
    std = mean_std(values)[1] if values else None
    return 0.0 if std is None else std


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """``a - b`` per seed both have."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def comparison(name: str, level: int, a: dict[int, float], b: dict[int, float]) -> dict[str, str]:
    """One row of a C2 table: both arms, their paired difference and whether it exceeds the seed spread."""
    diff = paired(a, b)
    seed_spread = max(spread(a.values()), spread(b.values()))
    mean = mean_std(diff)[0] if diff else float("nan")
    verdict = "larger than the seed spread" if abs(mean) > seed_spread else "within the seed spread"
    return {
        "level": str(level),
        "comparison": name,
        "a": cell(a.values()),
        "b": cell(b.values()),
        "diff": cell(diff),
        "spread": f"{seed_spread:.2f}",
        "verdict": verdict,
    }


def read_outliers(path: Path) -> dict[int, dict[str, float]]:
    """level -> the whole policy's outlier rate and top-K coverage (the clean 'none' row left out)."""
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {
            int(float(row["level"])): {
                k: float(row[k]) for k in ("outlier_rate", "topk_coverage", "teacher_acc")
            }
            for row in csv.DictReader(fh)
            if row["policy"] != "none"
        }


def plot(arms: Arms, ks: list[int], levels: list[int], path: Path) -> Path:
    """Accuracy against K (log axis) per level; CE, Hinton KD and the merged tail as mean ± std bands."""
    fig = figure(3.2 * len(levels), 3.2)
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, level in zip(axes, levels, strict=True):
        points = [(k, list(arms[f"K {k}"][level].values())) for k in ks if arms[f"K {k}"][level]]
        stats = [(k, *mean_std(v)) for k, v in points]
        ax.errorbar(
            [k for k, _, _ in stats],
            [m for _, m, _ in stats],
            yerr=[s or 0.0 for _, _, s in stats],
            marker="o",
            capsize=3,
            color="black",
            label="top-K (K 100 = full)",
        )
        for arm, colour in (("ce", "tab:red"), ("kd", "tab:blue"), ("topk5_merge", "tab:green")):
            values = list(arms[arm][level].values())
            if values:
                mean, std = mean_std(values)
                ax.axhline(mean, color=colour, label=METHOD_LABELS[arm])
                ax.axhspan(mean - (std or 0.0), mean + (std or 0.0), color=colour, alpha=0.15)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("K (teacher's top-K classes kept)")
        ax.set_title(f"RandAugment level {level}")
    axes[0].set_ylabel("test accuracy (%), 3 seeds")
    axes[-1].legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study's folder (runs/study-many)")
    parser.add_argument("--plot", type=Path, help="also draw accuracy against K per level into this PNG")
    parser.add_argument(
        "--lambda-plot", type=Path, help="also draw accuracy against λ per level into this PNG"
    )
    args = parser.parse_args(argv)
    study: Path = args.study
    arms: Arms = defaultdict(lambda: defaultdict(dict))
    arms.update(read_sweep(study / "methods", "distill", "{}"))
    arms.update(read_sweep(study / "topk_k", "distill.k", "K {}"))
    arms.update(read_sweep(study / "k_schedule", "", "k_schedule"))
    lambda_k = yaml.safe_load((study / "lambda_best_k.yaml").read_text())["base"]["distill"]["k"]
    lambdas = read_sweep(study / "lambda", "distill.weight", "λ {}")
    levels = sorted({level for arm in arms.values() for level in arm})
    ks = sorted({int(name.split()[1]) for name in arms if name.startswith("K ")})

    teacher = json.loads((study / "teachers" / "resnet20_pairs" / "summary.json").read_text())
    print(f"Teacher (resnet20, all 30 000 training pairs): {teacher['final_test_acc']:.2f} %\n")

    names = ["ce", "kd", "topk5_merge", *(f"K {k}" for k in ks), "k_schedule"]
    rows = []
    for name in names:
        label = METHOD_LABELS.get(name, name)
        if name == f"K {FULL_K}":
            label = f"K {FULL_K} (full distribution)"
        rows.append({"method": label, **{str(lv): cell(arms[name][lv].values()) for lv in levels}})
    outliers = read_outliers(study / "outliers" / "policy_stats.csv")
    if outliers:
        rows.append(
            {
                "method": "teacher's outlier rate %",
                **{str(lv): f"{100 * outliers[lv]['outlier_rate']:.1f}" for lv in levels if lv in outliers},
            }
        )
        rows.append(
            {
                "method": f"true class in teacher's top-{PAPER_K} %",
                **{str(lv): f"{100 * outliers[lv]['topk_coverage']:.1f}" for lv in levels if lv in outliers},
            }
        )
    print(markdown_table(rows, ["method", *map(str, levels)], ["method", *(f"level {lv}" for lv in levels)]))

    print("\nC2, top-K against the full distribution (same λ 0.5, T 1), paired by seed:\n")
    c2 = []
    full = arms[f"K {FULL_K}"]
    for level in levels:
        c2.append(comparison(f"K {PAPER_K} − full", level, arms[f"K {PAPER_K}"][level], full[level]))
        candidates = [k for k in ks if k != FULL_K and arms[f"K {k}"][level]]
        best = max(candidates, key=lambda k: mean_std(list(arms[f"K {k}"][level].values()))[0])
        c2.append(
            comparison(f"best K below {FULL_K} ({best}) − full", level, arms[f"K {best}"][level], full[level])
        )
        c2.append(comparison("Hinton KD − full", level, arms["kd"][level], full[level]))
    print(
        markdown_table(
            c2,
            ["level", "comparison", "a", "b", "diff", "spread", "verdict"],
            ["level", "comparison", "first", "second", "difference", "seed spread", "verdict"],
        )
    )

    lambda_levels = sorted({level for arm in lambdas.values() for level in arm})
    weights = sorted(lambdas, key=lambda name: float(name.split()[1]))
    print(f"\nC3, the weight λ at K = {lambda_k} (T 1, CE weight 1):\n")
    c3 = [{"lambda": w, **{str(lv): cell(lambdas[w][lv].values()) for lv in lambda_levels}} for w in weights]
    print(
        markdown_table(
            c3, ["lambda", *map(str, lambda_levels)], ["λ", *(f"level {lv}" for lv in lambda_levels)]
        )
    )

    if args.plot:
        print(f"\nplot: {plot(arms, ks, levels, args.plot)}")
    if args.lambda_plot:
        series = {
            f"level {lv}": [(float(w.split()[1]), *mean_std(list(lambdas[w][lv].values()))) for w in weights]
            for lv in lambda_levels
        }
        path = error_bar_lines(
            series,
            args.lambda_plot,
            x_label="λ, the weight of the distillation term",
            y_label="final test accuracy (%)",
            title=f"100 classes: λ at K = {lambda_k} (T 1), mean ± std of 3 seeds",
        )
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
