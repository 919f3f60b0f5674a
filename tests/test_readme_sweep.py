"""README's sweep file example is a valid sweep: planned (dry run) next to the repository's configs."""

from pathlib import Path

import yaml

from kdforaa.experiments.sweep import run_sweep
from readme_blocks import yaml_block

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_sweep_example_plans_its_runs(tmp_path, capsys):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    text = yaml_block("Sweep files")
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    assert run_sweep(path, tmp_path / "out", dry_run=True) == 0
    out = capsys.readouterr().out
    assert "dry run: 12 runs + 1 teacher run planned" in out
    assert "k3-m20-s1" in out
    assert yaml.safe_load(text)["plot"] == {"x": "augment.magnitude", "hue": "distill.k"}
