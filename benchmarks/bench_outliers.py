"""``kdforaa outliers`` now against an earlier commit's: seconds per run, interleaved, and the CSV rows.

The earlier version is read with ``git show COMMIT:src/kdforaa/analysis/outliers.py`` and run on the
same teacher, images and levels as the current one, alternating within each round so that both see
the same contention. Then every ``outliers.csv`` row the current version writes is compared with the
earlier one's row of the same op and level (one level for an op without an argument), and
``policy_stats.csv`` row by row: equal means equal as written (full float precision).

    python benchmarks/bench_outliers.py --teacher runs/fmnist-teacher/best.pt --old-commit b7f3d48 \\
        --limit 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from kdforaa.analysis import outliers as current
from kdforaa.config import DataConfig
from kdforaa.data.datasets import load_dataset
from kdforaa.distill.teacher import load_teacher

OUTLIERS_PATH = "src/kdforaa/analysis/outliers.py"


def old_module(commit: str) -> ModuleType:
    """The outliers module as it was at ``commit`` (importing today's kdforaa for everything else)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{OUTLIERS_PATH}"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "outliers_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("outliers_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def compare(old_dir: Path, new_dir: Path) -> tuple[int, list[str]]:
    """How many current rows were compared, and the ones that differ from the earlier version's."""
    old = {(r["op"], r["level"]): r for r in read_rows(old_dir / "outliers.csv")}
    differ, compared = [], 0
    for row in read_rows(new_dir / "outliers.csv"):
        level = row["level"] or next(key[1] for key in old if key[0] == row["op"])  # any: the first
        compared += 1
        if {k: v for k, v in row.items() if k != "level"} != {
            k: v for k, v in old[(row["op"], level)].items() if k != "level"
        }:
            differ.append(f"{row['op']} L={row['level']}")
    for old_row, new_row in zip(
        read_rows(old_dir / "policy_stats.csv"), read_rows(new_dir / "policy_stats.csv"), strict=True
    ):
        compared += 1
        if old_row != new_row:
            differ.append(f"policy L={new_row['level']}")
    return compared, differ


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--old-commit", required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--levels", default="0,5,10,15,20,30")
    parser.add_argument("--policy", default="randaugment")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--first", choices=["old", "new"], default="old", help="which runs first in odd rounds (default old)"
    )
    args = parser.parse_args()
    old = old_module(args.old_commit)
    dataset = load_dataset(DataConfig(name=args.data, test_limit=args.limit), "test")
    teacher = load_teacher(args.teacher, dataset.num_classes, dataset.in_channels, "cpu")
    levels = current.parse_levels(args.levels)
    work = Path(tempfile.mkdtemp(prefix="bench-outliers-"))
    seconds: dict[str, list[float]] = {"old": [], "new": []}
    pair = (("old", old), ("new", current)) if args.first == "old" else (("new", current), ("old", old))
    for round_ in range(args.rounds):
        for name, module in pair if round_ % 2 == 0 else pair[::-1]:
            op_set = module.resolve_op_set(args.policy)
            start = time.perf_counter()
            module.analyse_outliers(
                teacher, dataset, work / name, op_set=op_set, levels=levels, device="cpu", progress=False
            )
            seconds[name].append(time.perf_counter() - start)
            print(f"round {round_ + 1} {name}: {seconds[name][-1]:.1f} s", file=sys.stderr, flush=True)
    compared, differ = compare(work / "old", work / "new")
    old_s, new_s = statistics.median(seconds["old"]), statistics.median(seconds["new"])
    print(
        f"{len(dataset)} images, levels {args.levels}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds: "
        f"median old {old_s:.1f} s, new {new_s:.1f} s, speed-up {old_s / new_s:.2f}x "
        f"(old {[round(s, 1) for s in seconds['old']]}, new {[round(s, 1) for s in seconds['new']]})"
    )
    print(f"{compared} CSV rows compared, {len(differ)} differ: {', '.join(differ) or 'none'}")


if __name__ == "__main__":
    main()
