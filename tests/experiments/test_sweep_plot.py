"""A sweep's plot says how many runs each point is (no ± for one) and ticks the grid values."""

from pathlib import Path

import pytest

from kdforaa.analysis import report
from kdforaa.experiments.sweep.results import seeds_phrase

pytest.importorskip("matplotlib", reason="the plots extra draws the figures (make test installs it)")


@pytest.mark.parametrize(
    ("counts", "phrase"),
    [
        ([1, 1], "n=1"),
        ([3, 3], "mean ± std over seeds, n=3"),
        ([2, 3, 0], "mean ± std over seeds, n=2–3"),
        ([1, 2], "mean ± std over seeds, n=1–2"),
        ([0], "no finished runs"),
    ],
)
def test_the_phrase_counts_the_finished_runs(counts, phrase):
    assert seeds_phrase([{"n": n} for n in counts]) == phrase


def test_error_bar_lines_tick_the_x_values(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(report, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    series = {"kd": [(0.0, 80.0, None), (7.5, 81.0, None)], "ce": [(15.0, 79.0, 0.5), (0.0, 78.0, 0.2)]}
    report.error_bar_lines(series, tmp_path / "p.png", x_label="m", y_label="acc", title="t (n=1)")
    (axes,) = figures[0].axes
    assert list(axes.get_xticks()) == [0.0, 7.5, 15.0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["0", "7.5", "15"]
    assert axes.get_title() == "t (n=1)"
