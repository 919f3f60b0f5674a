"""Tables and figures shared by the outlier analysis and the sweeps."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from kdforaa.analysis.report import (
    error_bar_lines,
    heatmap,
    image_gallery,
    markdown_table,
    mean_std,
    write_csv,
)


def test_csv_keeps_precision_and_blanks_missing_values(tmp_path):
    rows = [{"a": 0.1 + 0.2, "b": None, "c": "x"}, {"a": math.nan, "c": 3}]
    path = write_csv(rows, ["a", "b", "c"], tmp_path / "sub" / "t.csv")
    with path.open(newline="") as fh:
        read = list(csv.reader(fh))
    assert read == [["a", "b", "c"], [repr(0.1 + 0.2), "", "x"], ["", "", "3"]]
    assert float(read[1][0]) == 0.1 + 0.2


def test_markdown_table():
    table = markdown_table([{"k": "a|b", "v": 1}, {"k": "c"}], ["k", "v"], ["key", "value"])
    assert table.splitlines() == ["| key | value |", "|---|---|", "| a\\|b | 1 |", "| c |  |"]


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_std([5.0]) == (5.0, None)


def _png(path):
    with Image.open(path) as image:
        return image.format, image.size


def test_figures_are_written(tmp_path):
    values = np.array([[0.0, 12.5], [math.nan, 80.0]])
    path = heatmap(
        values, ["rotate", "invert"], ["0", "10"], tmp_path / "h.png", title="t", colorbar_label="%"
    )
    assert _png(path)[0] == "PNG"
    series = {"kd": [(10, 80.0, 1.0), (0, 85.0, None)], "none": [(0, 84.0, 0.5), (10, 70.0, 2.0)]}
    path = error_bar_lines(series, tmp_path / "e.png", x_label="level", y_label="acc", title="t")
    assert _png(path)[0] == "PNG"
    grey, rgb = np.zeros((8, 8), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    wide = _png(
        image_gallery([grey, rgb, grey], ["a", "b\nc", "d"], tmp_path / "g.png", title="t", columns=2)
    )
    empty = _png(image_gallery([], [], tmp_path / "none.png", title="t"))
    assert wide[0] == empty[0] == "PNG" and wide[1][1] > empty[1][1]  # two rows against one
