"""matplotlib is the ``plots`` extra: without it, every command that draws says so in one line naming
``pip install 'kdforaa[plots]'`` (exit 2) before it trains or writes anything."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from cli_helpers import one_line_error
from kdforaa.analysis.report import heatmap
from kdforaa.cli import main
from kdforaa.errors import BadInput

EXTRA = "pip install 'kdforaa[plots]'"


@pytest.fixture
def no_matplotlib(monkeypatch):
    """``import matplotlib`` fails as it does where the extra is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_a_figure_names_the_extra(no_matplotlib, tmp_path):
    with pytest.raises(BadInput, match=r"matplotlib, which is not installed: pip install 'kdforaa\[plots\]'"):
        heatmap(np.zeros((2, 2)), ["a", "b"], ["0", "1"], tmp_path / "h.png", title="t", colorbar_label="%")
    assert not (tmp_path / "h.png").exists()


def test_demo_outliers_and_sweep_refuse_before_any_work(no_matplotlib, tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"grid": {"augment.magnitude": [0, 10]}}))  # a plot by default
    commands = {
        "demo": ["demo", "--out", str(tmp_path / "demo")],
        "outliers": ["outliers", "--teacher", str(tmp_path / "t.pt"), "--out", str(tmp_path / "outliers")],
        "sweep": ["sweep", str(sweep), "--out", str(tmp_path / "sweep")],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        line = one_line_error(capsys.readouterr().err)
        assert line.endswith(EXTRA) and "matplotlib" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]  # nothing written
