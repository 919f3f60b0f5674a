"""Overrides written the Hydra or yacs way get one line showing kdforaa's form; real options still work."""

import pytest

from cli_helpers import one_line_error
from kdforaa.cli import main


@pytest.mark.parametrize(
    ("argv", "shown", "fix"),
    [
        (["train", "cfg.yaml", "train.epochs", "1", "--out", "o"], "'train.epochs 1'", "train.epochs=1"),
        (["train", "train.epochs", "1", "--out", "o"], "'train.epochs 1'", "train.epochs=1"),
        (["train", "cfg.yaml", "--train.epochs=1", "--out", "o"], "'--train.epochs=1'", "train.epochs=1"),
        (["train", "cfg.yaml", "--train.epochs", "1", "--out", "o"], "'--train.epochs 1'", "train.epochs=1"),
        (["train", "--distill.method", "kd", "--out", "o"], "'--distill.method kd'", "distill.method=kd"),
        (["config", "--show", "--train.epochs=1"], "'--train.epochs=1'", "train.epochs=1"),
        (["cache-teacher", "--out", "c", "seed", "1"], "'seed 1'", "seed=1"),
    ],
)
def test_hydra_and_yacs_overrides_show_the_right_form(tmp_path, monkeypatch, capsys, argv, shown, fix):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line == f"kdforaa: error: override {shown} is not kdforaa's form: write {fix}"
    assert not (tmp_path / "o").exists()


def test_a_config_file_named_like_a_key_and_real_options_are_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.epochs").write_text("train: {epochs: 1}\n")
    assert main(["config", "--show", "train.epochs"]) == 0
    assert "epochs: 1" in capsys.readouterr().out
    assert main(["config", "--show", "train.epochs=2"]) == 0
    assert "epochs: 2" in capsys.readouterr().out
