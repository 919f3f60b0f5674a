"""A sweep's results: results.csv (one row per run), summary.csv and summary.md (mean ± std over seeds
per grid point: accuracies, the whole time per run (set-up and evaluations included), the training time
per epoch, inference img/s of the trained model) and accuracy plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdforaa import atomic
from kdforaa.analysis.report import error_bar_groups, error_bar_lines, markdown_table, mean_std, write_csv
from kdforaa.experiments.sweep.plan import Run, read_summary, safe_name
from kdforaa.experiments.sweep.scheduler import Outcome
from kdforaa.experiments.sweep.spec import ACCURACIES, TEACHER_KEY, Sweep, numeric

RUN_NUMBERS = ("wall_time_s", "epochs", "params", "inference_img_per_s")  # copied from summary.json
STATISTICS = (*ACCURACIES, "wall_time_s", "epoch_s", "inference_img_per_s")  # mean / std over seeds


def _result_rows(
    sweep: Sweep, runs: Sequence[Run], outcomes: dict[str, Outcome] | None
) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        summary = read_summary(run.folder)
        if outcomes is not None and run.folder.as_posix() in outcomes:
            status = "failed" if outcomes[run.folder.as_posix()].status == "failed" else "finished"
        else:
            status = "finished" if summary else "unfinished"
        row: dict[str, Any] = {"run": run.name, **run.labels, "status": status}
        if sweep.teachers and TEACHER_KEY not in sweep.grid:
            row[TEACHER_KEY] = run.teacher or "none"
        if summary:
            row.update({key: summary.get(key) for key in (*ACCURACIES, *RUN_NUMBERS)})
            row["epoch_s"] = _epoch_seconds(summary)
        rows.append(row)
    return rows


def _epoch_seconds(summary: dict[str, Any]) -> float | None:
    """Training time per epoch (evaluation and set-up excluded): the training steps' seconds over the
    epochs (``wall_time_s`` of a run from before ``train_time_s`` was recorded: it was that time)."""
    wall, epochs = summary.get("train_time_s", summary.get("wall_time_s")), summary.get("epochs")
    if not isinstance(wall, int | float) or not isinstance(epochs, int) or epochs <= 0:
        return None
    return wall / epochs


def summarise(keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per grid point (``keys`` labels, seeds pooled): n and mean / std of the finished runs' numbers."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), [])
        if row["status"] == "finished":
            groups[tuple(row[k] for k in keys)].append(row)
    out = []
    for point, members in groups.items():
        entry: dict[str, Any] = dict(zip(keys, point, strict=True))
        entry["n"] = len(members)
        for metric in STATISTICS:
            values = [m[metric] for m in members if isinstance(m.get(metric), int | float)]
            mean, std = mean_std(values) if values else (None, None)
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean, std
        out.append(entry)
    return out


def _pm(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f} ± {std:.2f} (n={n})" if std is not None else f"{mean:.2f} (n={n})"


def seeds_phrase(summary: Sequence[dict[str, Any]]) -> str:
    """What a grid point's number is: ``"n=1"`` when every point has one run, else ``"mean ± std over
    seeds, n=3"`` (``n=2–3`` where points differ); the runs that did not finish are not counted."""
    counts = sorted({s["n"] for s in summary if s["n"]})
    if not counts:
        return "no finished runs"
    n = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}–{counts[-1]}"
    return n if counts[-1] == 1 else f"mean ± std over seeds, {n}"


def _rounded(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _markdown(
    sweep: Sweep, keys: list[str], summary: list[dict[str, Any]], rows: list[dict], teachers: list[Run]
) -> str:
    parts = ["# Sweep results", ""]
    if teachers:
        teacher_rows = []
        for run in teachers:
            s = read_summary(run.folder) or {}
            acc = s.get("final_test_acc")
            teacher_rows.append(
                {"teacher": run.name, "acc": "—" if acc is None else f"{acc:.2f}", "folder": str(run.folder)}
            )
        parts += [
            markdown_table(teacher_rows, ["teacher", "acc", "folder"], ["teacher", "test acc (%)", "folder"]),
            "",
        ]
    cells = [
        {
            **{k: s[k] for k in keys},
            "final": _pm(s["final_test_acc_mean"], s["final_test_acc_std"], s["n"]),
            "best": _pm(s["best_test_acc_mean"], s["best_test_acc_std"], s["n"]),
            "time": _rounded(s["wall_time_s_mean"], 0),
            "epoch": _rounded(s["epoch_s_mean"], 1),
            "speed": _rounded(s["inference_img_per_s_mean"], 0),
        }
        for s in summary
    ]
    headers = [
        *keys,
        "final test acc (%)",
        "best test acc (%)",
        "time per run (s)",
        "time per epoch (s)",
        "inference (img/s)",
    ]
    parts += [
        f"Per grid point: {seeds_phrase(summary)} (times and speeds: means).",
        "",
        markdown_table(cells, [*keys, "final", "best", "time", "epoch", "speed"], headers),
    ]
    missing = [r for r in rows if r["status"] != "finished"]
    if missing:
        parts += ["", "Not included: " + ", ".join(f"{r['run']} ({r['status']})" for r in missing)]
    return "\n".join(parts) + "\n"


def _plot(
    sweep: Sweep, spec: dict[str, Any], runs: Sequence[Run], summary: list[dict[str, Any]], out: Path
) -> Path:
    x, y = spec["x"], spec["y"]
    hue = spec["hue"] or [k for k in sweep.grid if k != x]
    others = [k for k in sweep.grid if k not in (x, *hue)]
    is_numeric = numeric(sweep.grid[x])
    value = {run.labels[x]: run.values[x] for run in runs}
    series: dict[str, list[tuple[Any, float, float | None]]] = {}
    for s in summary:
        if s[f"{y}_mean"] is None:
            continue
        label = ", ".join(f"{k}={s[k]}" for k in (*hue, *others)) or y
        where = float(value[s[x]]) if is_numeric else s[x]
        series.setdefault(label, []).append((where, s[f"{y}_mean"], s[f"{y}_std"]))
    suffix = f"_by_{'+'.join(spec['hue'])}" if spec["hue"] else ""
    draw = error_bar_lines if is_numeric else error_bar_groups
    return draw(
        series,
        out / safe_name(f"{y}_vs_{x}{suffix}.png"),
        x_label=x,
        y_label=f"{y.replace('_', ' ')} (%)",
        title=f"{y.replace('_', ' ')} vs {x} ({seeds_phrase(summary)})",
    )


def write_report(
    sweep: Sweep, teachers: list[Run], runs: list[Run], out: Path, outcomes: dict[str, Outcome] | None = None
) -> dict[str, Path]:
    """results.csv, summary.csv, summary.md and the plots, from the runs' summary.json files."""
    keys = list(sweep.grid)
    rows = _result_rows(sweep, runs, outcomes)
    extra = [TEACHER_KEY] if sweep.teachers and TEACHER_KEY not in keys else []
    columns = ["run", *keys, *extra, "seed", "status", *ACCURACIES, *RUN_NUMBERS, "epoch_s"]
    summary = summarise(keys, rows)
    stats = [f"{m}_{s}" for m in STATISTICS for s in ("mean", "std")]
    files = {
        "results": write_csv(rows, columns, out / "results.csv"),
        "summary": write_csv(summary, [*keys, "n", *stats], out / "summary.csv"),
    }
    files["markdown"] = out / "summary.md"
    atomic.write_text(files["markdown"], _markdown(sweep, keys, summary, rows, teachers))
    for spec in sweep.plots:
        path = _plot(sweep, spec, runs, summary, out)
        files[path.stem] = path
    return files
