"""Tables and figures shared by ``kdforaa outliers`` and ``kdforaa sweep``.

CSV and Markdown tables from lists of row dicts, an annotated heatmap, accuracy-vs-setting lines with
error bars, and a captioned image gallery. Figures use matplotlib's object API (``Figure``) rather than
pyplot, so nothing here touches global plotting state or needs a display.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdforaa import atomic
from kdforaa.errors import BadInput

if TYPE_CHECKING:  # matplotlib is the optional plots extra: imported where a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Row = Mapping[str, Any]


def csv_cell(value: Any) -> str:
    """A value as written to CSV: None and NaN become empty cells, floats keep full precision."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_csv(rows: Sequence[Row], columns: Sequence[str], path: str | Path) -> Path:
    """Write ``rows`` (missing keys -> empty cells) with a header of ``columns``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    atomic.write_text(path, text.getvalue())
    return path


def markdown_table(rows: Sequence[Row], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of already formatted cells (``str(value)``; None -> empty)."""
    head = list(headers or columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = ["" if row.get(c) is None else str(row.get(c)).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); the deviation is None for a single value."""
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


PLOTS_EXTRA = "pip install 'kdforaa[plots]'"


def check_plotting(what: str) -> None:
    """BadInput naming the ``plots`` extra when matplotlib is missing: commands call it before the work
    whose figures they will draw, so nothing is computed for nothing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BadInput(
            f"{what}: drawing figures needs matplotlib, which is not installed: {PLOTS_EXTRA}"
        ) from None


def figure(width: float, height: float) -> Figure:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches (no pyplot state); BadInput without
    matplotlib."""
    check_plotting("kdforaa")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (folders made as needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, private=False) as partial:  # the name's extension picks the format
        fig.savefig(partial, dpi=dpi, format=path.suffix.removeprefix(".") or "png")
    return path


def heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | Path,
    *,
    title: str,
    colorbar_label: str,
    cell_format: str = "{:.1f}",
    x_label: str = "",
) -> Path:
    """An annotated ``(R, C)`` heatmap (NaN cells left blank); darker means larger."""
    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    fig = figure(1.4 + 0.75 * cols, max(2.4, 1.2 + 0.38 * rows))  # room for title and labels over few rows
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Reds", aspect="auto", vmin=0.0, vmax=max(np.nanmax(values), 1e-9))
    ax.set_xticks(range(cols), labels=list(column_labels))
    ax.set_yticks(range(rows), labels=list(row_labels))
    ax.set_xlabel(x_label)
    ax.set_title(title)
    threshold = 0.6 * np.nanmax(values) if np.isfinite(values).any() else 0.0
    for r in range(rows):
        for c in range(cols):
            if np.isfinite(values[r, c]):
                colour = "white" if values[r, c] > threshold else "black"
                ax.text(
                    c, r, cell_format.format(values[r, c]), ha="center", va="center", color=colour, size=8
                )
    fig.colorbar(image, ax=ax, label=colorbar_label)
    fig.tight_layout()
    return save_figure(fig, path)


def _finish_chart(
    fig: Figure, ax: Axes, path: str | Path, x_label: str, y_label: str, title: str, legend: bool
) -> Path:
    """Axis labels, title and (for several series) a legend, then lay out and save."""
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def error_bar_lines(
    series: Mapping[str, Sequence[tuple[float, float, float | None]]],
    path: str | Path,
    *,
    x_label: str,
    y_label: str,
    title: str,
) -> Path:
    """One line per series of ``(x, mean, std or None)`` points, with the std as error bars; the x ticks
    are at the points' x values (a sweep's grid values)."""
    fig = figure(6.4, 4.2)
    ax = fig.subplots()
    for label, points in series.items():
        points = sorted(points)
        xs = [p[0] for p in points]
        means = [p[1] for p in points]
        stds = [0.0 if p[2] is None else p[2] for p in points]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
    ticks = sorted({p[0] for points in series.values() for p in points})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.grid(True, alpha=0.3)
    return _finish_chart(fig, ax, path, x_label, y_label, title, legend=len(series) > 1)


def error_bar_groups(
    series: Mapping[str, Sequence[tuple[str, float, float | None]]],
    path: str | Path,
    *,
    x_label: str,
    y_label: str,
    title: str,
) -> Path:
    """Bars for categories: one group per category, one bar per series, the std as error bars."""
    categories = list(dict.fromkeys(c for points in series.values() for c, _, _ in points))
    width = 0.8 / max(1, len(series))
    fig = figure(max(6.4, 0.6 * len(categories) * max(1, len(series)) + 1.5), 4.2)
    ax = fig.subplots()
    lowest = min((m for points in series.values() for _, m, _ in points), default=0.0)
    for k, (label, points) in enumerate(series.items()):
        by_category = {c: (m, 0.0 if s is None else s) for c, m, s in points}
        xs = [i + (k - (len(series) - 1) / 2) * width for i, c in enumerate(categories) if c in by_category]
        values = [by_category[c] for c in categories if c in by_category]
        ax.bar(xs, [v[0] for v in values], width, yerr=[v[1] for v in values], capsize=3, label=label)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylim(bottom=max(0.0, lowest - 10))
    ax.grid(True, axis="y", alpha=0.3)
    return _finish_chart(fig, ax, path, x_label, y_label, title, legend=len(series) > 1)


def image_gallery(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | Path,
    *,
    title: str,
    columns: int = 8,
) -> Path:
    """Images ``(H,W)`` grey or ``(H,W,3)`` RGB uint8 in a grid, each with its caption underneath.

    With no images the figure says so, so the file always exists.
    """
    count = len(images)
    cols = max(1, min(columns, count))
    rows = max(1, math.ceil(count / cols))
    caption_lines = max((c.count("\n") + 1 for c in captions), default=1)
    fig = figure(1.9 * cols, (1.9 + 0.16 * caption_lines) * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, caption in zip(axes, images, captions, strict=False):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.text(
            0.5, -0.04, caption, transform=ax.transAxes, ha="center", va="top", size=7, family="monospace"
        )
    if count == 0:
        axes[0].text(0.5, 0.5, "no outliers found", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
