"""The example configs are found from any folder: ``kdforaa config --example`` and the quick start's hint."""

import yaml

from cli_helpers import one_line_error
from kdforaa.cli import main
from kdforaa.examples import example_names, example_path

ROOT_CONFIGS = example_path("fashion_mnist/teacher").parents[1]


def test_every_example_config_is_listed_by_name(capsys):
    assert main(["config", "--example"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == example_names()
    assert {"fashion_mnist/teacher", "fashion_mnist/student", "sweeps/c1_magnitude"} <= set(listed)
    assert len(listed) == len(list(ROOT_CONFIGS.rglob("*.yaml")))


def test_the_quick_start_works_from_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "configs/fashion_mnist/teacher.yaml", "--out", "runs/t"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "kdforaa config --example fashion_mnist/teacher > teacher.yaml" in line
    assert not (tmp_path / "runs").exists()
    assert main(["config", "--example", "configs/fashion_mnist/teacher.yaml"]) == 0
    text = capsys.readouterr().out
    assert text == (ROOT_CONFIGS / "fashion_mnist" / "teacher.yaml").read_text()  # comments and all
    (tmp_path / "teacher.yaml").write_text(text)
    assert main(["config", "--show", "teacher.yaml", "train.epochs=1"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["name"] == "resnet20" and shown["train"]["epochs"] == 1


def test_an_unknown_example_lists_the_names(capsys):
    assert main(["config", "--example", "fashion_mnist/teachr"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "no example config 'fashion_mnist/teachr'" in line and "fashion_mnist/teacher" in line
    assert main(["config", "--example", "fashion_mnist/teacher", "train.epochs=1"]) == 2
    assert "--example takes no overrides" in capsys.readouterr().err
