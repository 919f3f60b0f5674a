"""The many-class study (`make study-many`): its sweeps plan, and its second stage picks the best K."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from kdforaa.experiments.sweep import load_sweep, plan
from kdforaa.experiments.sweep.plan import _config_key

ROOT = Path(__file__).resolve().parents[2]
MANY = ROOT / "configs" / "sweeps" / "many_class"


def load_script(name: str = "many_class_best_k"):
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("file", "runs", "levels"),
    [
        ("topk_k.yaml", 84, {0, 5, 10, 15}),
        ("methods.yaml", 36, {0, 5, 10, 15}),
        ("k_schedule.yaml", 6, {10, 15}),
        ("lambda.yaml", 24, {5, 10}),
        ("pilot.yaml", 4, {0, 10}),
    ],
)
def test_the_many_class_sweeps_plan(tmp_path, file, runs, levels):
    """Every run validates; students are resnet8 on 28x56 pairs without a flip; one shared teacher."""
    teachers, planned = plan(load_sweep(MANY / file), tmp_path / "study-many" / "sweep")
    assert len(planned) == runs and [t.name for t in teachers] == ["teacher"]
    teacher = teachers[0]
    assert teacher.tree["model"]["name"] == "resnet20" and teacher.tree["augment"]["policy"] == "none"
    if file != "pilot.yaml":
        assert teacher.folder == (tmp_path / "study-many" / "teachers" / "resnet20_pairs").resolve()
        assert teacher.tree["data"].get("limit") is None  # the teacher sees all 30 000 training pairs
    assert {r.tree["augment"]["magnitude"] for r in planned} == levels
    assert len({r.seed for r in planned}) == (1 if file == "pilot.yaml" else 3)
    for run in planned:
        assert run.tree["data"]["name"] == "fashion-mnist-pairs" and run.tree["model"]["name"] == "resnet8"
        assert run.tree["augment"]["flip"] is False and run.tree["augment"]["policy"] == "randaugment"
        assert run.tree["data"]["limit"] == 4000 and run.tree["train"]["batch_size"] == 32
        assert run.tree["train"]["threads"] == 1  # two runs share the 2 cores


COLUMNS = ["run", "augment.magnitude", "distill.k", "seed", "status", "final_test_acc"]


def write_results(
    folder: Path, levels: list[int], ks: list[int], best: int, missing: int | None = None
) -> None:
    """A top-K sweep's results.csv: ``best`` 5 points above the other K; seed 2 of ``missing`` unfinished."""
    folder.mkdir(parents=True)
    with (folder / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        for level in levels:
            for k in ks:
                for seed in range(3):
                    finished = not (k == missing and seed == 2)
                    accuracy = 60.0 + (5.0 if k == best else 0.0) + seed
                    writer.writerow(
                        {
                            "run": f"k{k}-m{level}-s{seed}",
                            "augment.magnitude": level,
                            "distill.k": k,
                            "seed": seed,
                            "status": "finished" if finished else "unfinished",
                            "final_test_acc": accuracy if finished else "",
                        }
                    )


def test_the_lambda_stage_runs_at_the_best_k_and_shares_its_lambda_half_runs(tmp_path, capsys):
    script = load_script()
    topk = tmp_path / "study-many" / "topk_k"
    write_results(topk, [0, 5, 10, 15], [1, 3, 5, 10, 20, 50, 100], best=20)
    written = tmp_path / "study-many" / "lambda_best_k.yaml"
    assert script.main([str(topk), str(MANY / "lambda.yaml"), str(written)]) == 0
    assert "best K = 20" in capsys.readouterr().out
    lambda_teachers, lambda_runs = plan(load_sweep(written), tmp_path / "study-many" / "lambda")
    assert [t.folder for t in lambda_teachers] == [
        (tmp_path / "study-many" / "teachers" / "resnet20_pairs").resolve()
    ]
    assert {r.tree["distill"]["k"] for r in lambda_runs} == {20} and len(lambda_runs) == 24
    assert all(r.name.startswith("k20-lambda") for r in lambda_runs)
    # its lambda = 0.5 runs are the top-K sweep's K = 20 runs: --reuse-from copies them, not retrains
    _, topk_runs = plan(load_sweep(MANY / "topk_k.yaml"), topk)
    shared = {_config_key(r.tree) for r in topk_runs} & {_config_key(r.tree) for r in lambda_runs}
    assert len(shared) == 6
    assert {json.loads(key)["distill"]["weight"] for key in shared} == {0.5}


def test_the_lambda_stage_waits_for_the_top_k_sweep(tmp_path, capsys):
    script = load_script()
    topk = tmp_path / "topk_k"
    write_results(topk, [5, 10], [5, 20], best=5, missing=20)
    assert script.main([str(topk), str(MANY / "lambda.yaml"), str(tmp_path / "out.yaml")]) == 2
    assert "has not finished at levels 5, 10 (K [20])" in capsys.readouterr().err
    assert not (tmp_path / "out.yaml").exists()


def write_sweep(folder: Path, column: str, values: list[str], levels: list[int], accuracy) -> None:
    """A sweep's results.csv: ``accuracy(value, level, seed)`` for every value x level x 3 seeds."""
    folder.mkdir(parents=True)
    with (folder / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["run", "augment.magnitude", column, "seed", "status", "final_test_acc"])
        writer.writeheader()
        for value in values:
            for level in levels:
                for seed in range(3):
                    row = {"run": f"{value}-m{level}-s{seed}", "augment.magnitude": level, column: value}
                    row.update(seed=seed, status="finished", final_test_acc=accuracy(value, level, seed))
                    writer.writerow(row)


def test_the_report_pairs_by_seed_and_weighs_differences_against_the_seed_spread(tmp_path, capsys):
    """Top-5 is 3 points above the full distribution at level 10 (larger than a 1-point seed spread) and
    0.1 above at level 0 (within it); the table, verdicts, lambda table and plot all come out."""
    study = tmp_path / "study-many"
    ks = ["1", "3", "5", "10", "20", "50", "100"]

    def topk(k, level, seed):
        return 50.0 + seed + (3.0 if (k == "5" and level == 10) else 0.1 if k == "5" else 0.0)

    write_sweep(study / "topk_k", "distill.k", ks, [0, 10], topk)
    write_sweep(study / "methods", "distill", ["ce", "kd", "topk5_merge"], [0, 10], lambda v, lv, s: 40.0 + s)
    write_sweep(study / "k_schedule", "distill.k", ["x"], [10], lambda v, lv, s: 45.0)
    write_sweep(study / "lambda", "distill.weight", ["0.25", "2.0"], [10], lambda v, lv, s: 48.0 + s)
    (study / "lambda_best_k.yaml").write_text("base: {distill: {k: 5}}\n")
    teacher = study / "teachers" / "resnet20_pairs"
    teacher.mkdir(parents=True)
    (teacher / "summary.json").write_text(json.dumps({"final_test_acc": 70.5}))
    (study / "outliers").mkdir()
    (study / "outliers" / "policy_stats.csv").write_text(
        "policy,level,teacher_acc,outlier_rate,topk_coverage\nnone,0,70.5,0.3,0.9\n"
        "randaugment,0,70.5,0.3,0.9\nrandaugment,10,20.0,0.8,0.4\n"
    )
    script = load_script("many_class_report")
    png = tmp_path / "k.png"
    script.main([str(study), "--plot", str(png)])
    out = capsys.readouterr().out
    assert "Teacher (resnet20, all 30 000 training pairs): 70.50 %" in out
    assert "| K 5 | 51.10 ± 1.00 | 54.00 ± 1.00 |" in out
    assert (
        "| 10 | K 5 − full | 54.00 ± 1.00 | 51.00 ± 1.00 | 3.00 ± 0.00 | 1.00 | larger than the seed spread |"
        in out
    )
    assert (
        "| 0 | K 5 − full | 51.10 ± 1.00 | 51.00 ± 1.00 | 0.10 ± 0.00 | 1.00 | within the seed spread |"
        in out
    )
    assert "| teacher's outlier rate % | 30.0 | 80.0 |" in out
    assert "| λ 0.25 | 49.00 ± 1.00 |" in out and "K = 5" in out
    assert png.stat().st_size > 10_000
