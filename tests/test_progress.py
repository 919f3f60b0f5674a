"""Progress: a bar that redraws in place only on a terminal; elsewhere plain lines (kdforaa.progress)."""

from __future__ import annotations

import pytest

from kdforaa import progress


@pytest.mark.parametrize("terminal", [True, False])
def test_a_bar_on_a_terminal_and_a_line_elsewhere(terminal, monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: terminal)
    with progress.bar(3, "epoch 1/1", enabled=True) as bar:
        for _ in range(3):
            bar.update(1)
    progress.note("epoch 1/1 done")
    out, err = capsys.readouterr()
    assert out == ""
    if terminal:
        assert "\r" in err and "epoch 1/1" in err and "done" not in err
    else:
        assert err == "epoch 1/1 done\n"


def test_nothing_at_all_when_progress_is_off(monkeypatch, capsys):
    for terminal in (True, False):
        monkeypatch.setattr(progress, "interactive", lambda t=terminal: t)
        with progress.bar(3, "x", enabled=False) as bar:
            bar.update(3)
        progress.note("x done", enabled=False)
    assert capsys.readouterr() == ("", "")


def test_captured_output_is_not_a_terminal():
    assert progress.interactive() is False  # pytest captures stdout and stderr
