"""Sweeps: grid expansion and naming, teachers first, skip / resume, failures, summaries, bad files.

Most tests train with the fake ``fake_train`` below (module-level, so "spawn" children can import it);
one trains real tiny runs through the command line.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from kdforaa.errors import BadInput
from kdforaa.experiments.sweep import (
    SAVED_SPEC,
    load_sweep,
    plan,
    run_name,
    run_sweep,
    safe_name,
    summarise,
)

TINY = {
    "data": {"limit": 64, "test_limit": 50},
    "model": {"name": "resnet8"},
    "train": {"epochs": 1, "batch_size": 32},
}


def fake_train(tree: dict, folder: Path) -> dict:
    """Pretend to train: accuracy = 50 + magnitude + seed / 10; lr 0.666 fails; counts calls in calls.txt."""
    with (folder.parent / "calls.txt").open("a") as fh:
        fh.write(folder.name + "\n")
    if tree.get("train", {}).get("lr") == 0.666:
        raise RuntimeError("diverged on purpose")
    (folder / "config.yaml").write_text(yaml.safe_dump(tree))
    acc = 50 + tree.get("augment", {}).get("magnitude", 0) + tree.get("seed", 0) / 10
    summary = {"final_test_acc": acc, "best_test_acc": acc + 1, "wall_time_s": 2.0, "epochs": 1}
    (folder / "summary.json").write_text(json.dumps(summary))
    return summary


def main(argv: list[str]) -> int:
    """The command line, imported late: "spawn" children import this module, and the CLI imports torch."""
    from kdforaa.cli import main as cli_main

    return cli_main(argv)


def write_sweep(folder: Path, spec: dict, name: str = "sweep.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def calls(out: Path) -> list[str]:
    path = out / "calls.txt"
    return path.read_text().split() if path.exists() else []


GRID = {
    "base": TINY,
    "grid": {
        "augment.magnitude": [0, 10],
        "distill": {"ce": {"method": "none"}, "kd": {"method": "kd", "temperature": 4.0}},
    },
    "seeds": [0, 1],
    "teacher": {"model": {"name": "resnet8"}, "data": {"limit": 64, "test_limit": 50}},
}


def test_grid_expansion_naming_and_teacher_injection(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, GRID))
    teachers, runs = plan(sweep, tmp_path / "out")
    assert len(runs) == 2 * 2 * 2 and len(teachers) == 1
    names = [r.name for r in runs]
    assert names[0] == "magnitude-0_distill-ce_seed-0"
    assert len(set(names)) == len(names)
    for run in runs:
        assert run.folder == (tmp_path / "out" / run.name).resolve()
        assert "threads" not in run.tree.get("train", {})  # 0: each job uses every core, as alone
        distils = run.labels["distill"] == "kd"
        assert run.teacher == ("teacher" if distils else None)
        expected = str(teachers[0].folder / "best.pt") if distils else None
        assert run.tree["teacher"]["checkpoint"] == expected
        assert run.tree["augment"]["magnitude"] == run.values["augment.magnitude"]
    assert teachers[0].folder == (tmp_path / "out" / "teachers" / "teacher").resolve()


def test_names_are_stable_and_safe():
    labels = {"augment.magnitude": "15", "distill.method": "topk_kd", "seed": "2"}
    keys = ["augment.magnitude", "distill.method"]
    assert run_name(None, keys, labels) == "magnitude-15_method-topk_kd_seed-2"
    assert run_name("{distill.method}/m{augment.magnitude} s{seed}", keys, labels) == "topk_kd-m15-s2"
    assert safe_name("a b/c:d") == "a-b-c-d"
    # two keys with the same last part keep their whole dotted names
    clash = {"a.k": "1", "b.k": "2", "seed": "0"}
    assert run_name(None, ["a.k", "b.k"], clash) == "a.k-1_b.k-2_seed-0"


def test_runs_that_ignore_the_teacher_choice_are_one_run(tmp_path):
    spec = {
        "base": TINY,
        "teachers": {"big": {"model": {"name": "resnet20"}}, "small": {"model": {"name": "resnet8"}}},
        "grid": {"teacher": ["big", "small"], "distill.method": ["none", "kd"]},
    }
    teachers, runs = plan(load_sweep(write_sweep(tmp_path, spec)), tmp_path / "out")
    assert sorted(r.name for r in runs) == [
        "teacher-big_method-kd_seed-0",
        "teacher-none_method-none_seed-0",
        "teacher-small_method-kd_seed-0",
    ]
    assert {r.teacher for r in runs} == {"big", "small", None}


def test_sweep_runs_skips_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    path = write_sweep(tmp_path, {**GRID, "plot": {"x": "augment.magnitude", "hue": "distill"}})
    assert run_sweep(path, out, jobs=2, train_fn=fake_train) == 0
    assert len(calls(out)) == 8 and calls(out / "teachers") == ["teacher"]
    stdout = capsys.readouterr().out
    assert stdout.strip().splitlines()[-1].startswith(f"sweep results: {(out / 'summary.md').resolve()}")
    results = rows(out / "results.csv")
    assert len(results) == 8 and {r["status"] for r in results} == {"finished"}
    assert list(results[0])[:5] == ["run", "augment.magnitude", "distill", "teacher", "seed"]
    assert {r["teacher"] for r in results} == {"teacher", "none"}
    summary = rows(out / "summary.csv")
    assert len(summary) == 4 and {s["n"] for s in summary} == {"2"}
    point = next(s for s in summary if s["augment.magnitude"] == "10" and s["distill"] == "kd")
    assert float(point["final_test_acc_mean"]) == pytest.approx(60.05)
    assert float(point["final_test_acc_std"]) == pytest.approx(0.0707107, rel=1e-5)
    assert "60.05 ± 0.07 (n=2)" in (out / "summary.md").read_text()
    assert (out / "final_test_acc_vs_augment.magnitude_by_distill.png").stat().st_size > 1000
    # a second time everything is finished: nothing is trained again
    assert run_sweep(path, out, jobs=2, train_fn=fake_train) == 0
    assert len(calls(out) + calls(out / "teachers")) == 9
    assert "(reused)" in capsys.readouterr().out


def test_a_sweep_without_plots_needs_no_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails, as without the extra
    path = write_sweep(tmp_path, {**GRID, "seeds": [0], "plot": []})
    assert run_sweep(path, tmp_path / "out", jobs=1, train_fn=fake_train) == 0
    assert not list((tmp_path / "out").glob("*.png")) and (tmp_path / "out" / "summary.md").exists()


def test_finished_runs_of_another_sweep_are_copied_not_retrained(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    shared = {
        **GRID,
        "teacher": {**GRID["teacher"], "folder": "../teacher"},
        "name": "{distill}-m{augment.magnitude}-s{seed}",
    }
    assert run_sweep(write_sweep(tmp_path, shared), first, train_fn=fake_train) == 0
    wider = {**shared, "grid": {**GRID["grid"], "augment.magnitude": [10, 20]}}
    path = write_sweep(tmp_path, wider, "wider.yaml")
    assert run_sweep(path, second, train_fn=fake_train, reuse_from=[first]) == 0
    assert sorted(calls(second)) == ["ce-m20-s0", "ce-m20-s1", "kd-m20-s0", "kd-m20-s1"]
    copied = [line for line in capsys.readouterr().out.splitlines() if line.endswith("copied")]
    assert len(copied) == 4 and all("-m10-" in line for line in copied)
    assert json.loads((second / "kd-m10-s1" / "summary.json").read_text())["final_test_acc"] == 60.1


def test_a_categorical_x_is_plotted_as_grouped_bars(tmp_path):
    out = tmp_path / "out"
    path = write_sweep(tmp_path, {**GRID, "plot": {"x": "distill", "hue": "augment.magnitude"}})
    assert run_sweep(path, out, train_fn=fake_train) == 0
    assert (out / "final_test_acc_vs_distill_by_augment.magnitude.png").stat().st_size > 1000


def test_failed_run_does_not_stop_the_others(tmp_path, capsys):
    spec = {"base": TINY, "grid": {"train.lr": [0.1, 0.666, 0.2]}}
    out = tmp_path / "out"
    assert run_sweep(write_sweep(tmp_path, spec), out, train_fn=fake_train) == 1
    stdout = capsys.readouterr().out
    assert "FAILED lr-0.666_seed-0: exit 1: RuntimeError: diverged on purpose" in stdout
    assert "1 of 3 runs failed" in stdout
    status = {r["train.lr"]: r["status"] for r in rows(out / "results.csv")}
    assert status == {"0.1": "finished", "0.666": "failed", "0.2": "finished"}
    assert "diverged on purpose" in (out / "lr-0.666_seed-0" / "train.log").read_text()


def test_failed_teacher_fails_its_students_only(tmp_path, capsys):
    spec = {
        "base": TINY,
        "teacher": {"train": {"lr": 0.666}},
        "grid": {"distill.method": ["none", "kd"]},
    }
    out = tmp_path / "out"
    assert run_sweep(write_sweep(tmp_path, spec), out, train_fn=fake_train) == 1
    status = {r["distill.method"]: r["status"] for r in rows(out / "results.csv")}
    assert status == {"none": "finished", "kd": "failed"}
    assert "its teacher 'teacher' failed" in capsys.readouterr().out


def test_changed_config_is_not_reused(tmp_path, capsys):
    out = tmp_path / "out"
    spec = {"base": TINY, "grid": {"train.lr": [0.1]}}
    assert run_sweep(write_sweep(tmp_path, spec), out, train_fn=fake_train) == 0
    spec["base"] = {**TINY, "train": {**TINY["train"], "epochs": 2}}
    assert run_sweep(write_sweep(tmp_path, spec), out, train_fn=fake_train) == 1
    assert "train.epochs: 1 there, 2 in the sweep" in capsys.readouterr().out


def test_summary_mean_and_std():
    results = [
        {"m": "5", "status": "finished", "final_test_acc": 80.0, "best_test_acc": 81.0, "wall_time_s": 10.0},
        {"m": "5", "status": "finished", "final_test_acc": 82.0, "best_test_acc": 83.0, "wall_time_s": 12.0},
        {"m": "5", "status": "failed"},
        {"m": "9", "status": "finished", "final_test_acc": 70.0, "best_test_acc": 71.0, "wall_time_s": 9.0},
    ]
    five, nine = summarise(["m"], results)
    assert five["n"] == 2 and five["final_test_acc_mean"] == 81.0
    assert five["final_test_acc_std"] == pytest.approx(2**0.5)
    assert nine["n"] == 1 and nine["final_test_acc_std"] is None


def test_report_only_and_dry_run(tmp_path, capsys):
    out = tmp_path / "out"
    path = write_sweep(tmp_path, {"base": TINY, "grid": {"augment.magnitude": [0, 5]}, "seeds": [0, 1]})
    assert run_sweep(path, out, dry_run=True, train_fn=fake_train) == 0
    assert "4 to train" in capsys.readouterr().out and not out.exists()
    assert run_sweep(path, out, train_fn=fake_train) == 0
    (out / "results.csv").unlink()
    (out / "magnitude-5_seed-1" / "summary.json").unlink()
    assert main(["sweep", "--report-only", str(out)]) == 0
    assert "3 of 4 runs finished" in capsys.readouterr().out
    status = [r["status"] for r in rows(out / "results.csv")]
    assert status == ["finished", "finished", "finished", "unfinished"]
    assert rows(out / "results.csv")[0]["epoch_s"] == "2.0"  # fake runs: 2 s over 1 epoch
    assert rows(out / "summary.csv")[0]["epoch_s_mean"] == "2.0"
    assert "| time per epoch (s) | inference (img/s) |" in (out / "summary.md").read_text()
    assert (out / "final_test_acc_vs_augment.magnitude.png").exists()
    assert yaml.safe_load((out / SAVED_SPEC).read_text())["base"] == TINY


@pytest.mark.slow
def test_real_tiny_runs_with_teacher_and_resume(tmp_path, capsys):
    spec = {
        "base": TINY,
        "teacher": {"from": "teacher.yaml"},
        "grid": {"distill.method": ["kd"]},
        "name": "student-{distill.method}",
    }
    write_sweep(tmp_path, TINY, "teacher.yaml")
    path = write_sweep(tmp_path, spec)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "1"]) == 0
    student = out / "student-kd"
    config = yaml.safe_load((student / "config.yaml").read_text())
    assert config["teacher"]["checkpoint"] == str((out / "teachers" / "teacher" / "best.pt").resolve())
    assert json.loads((student / "summary.json").read_text())["epochs"] == 1
    # a run killed after its last checkpoint (no summary.json yet) is resumed, not retrained
    (student / "summary.json").unlink()
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert "resuming" in (student / "train.log").read_text()
    assert "(reused)" in capsys.readouterr().out  # the teacher


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"grid": {"augment.magnitude": 5}}, "non-empty list"),
        ({"grid": {"augment.magnitud": [5]}}, "augment.magnitud"),
        ({"grids": {}}, "unknown sweep key 'grids'"),
        ({"base": "missing.yaml"}, "cannot read"),
        ({"grid": {"train.lr": [0.1]}, "seeds": [0, 0]}, "repeats"),
        ({"grid": {"train.lr": [0.1]}, "name": "{lr}"}, "{lr}"),
        ({"grid": {"train.lr": [0.1, 0.2]}, "name": "same"}, "folder name 'same'"),
        ({"grid": {"distill.method": ["none"]}, "plot": {"x": "distill.method", "y": "acc"}}, "y='acc'"),
        ({"grid": {"teacher": ["nobody"]}}, "not one of the sweep's teachers"),
        ({"teacher": {}, "teachers": {}}, "not both"),
        ({"grid": {"distill.method": ["kd"]}}, "has no teacher"),
    ],
)
def test_bad_sweep_files(tmp_path, capsys, spec, needle):
    path = write_sweep(tmp_path, spec)
    code = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0]


def test_command_line_usage_errors(tmp_path, capsys):
    assert main(["sweep", "--report-only", str(tmp_path)]) == 2
    assert "sweep.yaml is missing" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "missing SWEEP.yaml" in capsys.readouterr().err
    path = write_sweep(tmp_path, {"grid": {"train.lr": [0.1]}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("grid: [")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_sweep(broken)


STUDY = Path(__file__).resolve().parents[2] / "configs" / "sweeps"


@pytest.mark.parametrize(
    ("file", "runs", "teachers"),
    [
        ("c1_magnitude.yaml", 45, 1),
        ("c2_topk_k.yaml", 15, 1),
        ("c3_lambda.yaml", 9, 1),
        ("c4_weaker_teacher.yaml", 9, 2),
        ("c5_augment_off.yaml", 12, 1),
        ("c6_c7_large_magnitude.yaml", 18, 1),
        ("c9_methods.yaml", 36, 1),
        ("c8_single_ops.yaml", 36, 1),
    ],
)
def test_study_sweeps_plan(tmp_path, file, runs, teachers):
    planned_teachers, planned = plan(load_sweep(STUDY / file), tmp_path / "study" / "c")
    assert (len(planned), len(planned_teachers)) == (runs, teachers)
    assert {t.folder.parent for t in planned_teachers} == {(tmp_path / "study" / "teachers").resolve()}
    common = yaml.safe_load((STUDY / "common" / "student.yaml").read_text())
    for section in ("data", "model", "train"):  # every study sweep trains the common student
        assert all(r.tree[section].items() >= common[section].items() for r in planned), section


def test_runs_with_feature_terms_only_get_the_teacher(tmp_path):
    """C9's SP and hints runs have distill.method=none but still distil: they need the teacher."""
    _, planned = plan(load_sweep(STUDY / "c9_methods.yaml"), tmp_path / "c9")
    teacher = {r.labels["distill"]: r.tree["teacher"]["checkpoint"] for r in planned}
    assert teacher["ce"] is None
    assert all(checkpoint for label, checkpoint in teacher.items() if label != "ce")
    lowres = next(r for r in planned if r.labels["distill"] == "lowres14_topk")
    assert lowres.tree["distill"]["student_resolution"] == 14 and lowres.tree["augment"]["magnitude"] == 15


def test_sigterm_to_the_sweep_stops_its_running_children_with_a_checkpoint(tmp_path):
    """A terminated sweep must not leave its children training on (into folders it no longer watches)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = {
        "base": {
            "data": {"limit": 512, "test_limit": 50},
            "model": {"name": "resnet8"},
            "train": {"epochs": 100, "batch_size": 64, "checkpoint_every": 1, "threads": 1},
        },
        "grid": {"seed": [0]},
    }
    out = tmp_path / "out"
    command = [sys.executable, "-m", "kdforaa", "sweep", str(write_sweep(tmp_path, spec)), "--out", str(out)]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = out / "seed-0_seed-0"
    deadline = time.monotonic() + 120
    while not ((run / ".lock").exists() and (run / "last.pt").exists()):
        assert sweep.poll() is None and time.monotonic() < deadline, "the run never reached a checkpoint"
        time.sleep(0.2)
    child = int((run / ".lock").read_text())
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the child is gone too
    assert (run / "last.pt").exists() and not (run / "summary.json").exists()  # resumable, not finished


CIFAR100_STUDY = STUDY.parent / "cifar100" / "study"


@pytest.mark.parametrize(
    ("file", "runs"),
    [
        ("c1_c7_magnitude.yaml", 60),
        ("c2_topk_k.yaml", 18),
        ("c3_lambda.yaml", 9),
        ("c5_augment_off.yaml", 12),
    ],
)
def test_the_cifar100_study_sweeps_plan_unchanged(tmp_path, file, runs):
    """The many-class study is ready for a user with the data and a GPU: every run's config validates,
    and all of them share the one resnet32x4 teacher trained from teacher_resnet32x4.yaml."""
    teachers, planned = plan(load_sweep(CIFAR100_STUDY / file), tmp_path / "c100-study" / "c")
    assert len(planned) == runs and [t.name for t in teachers] == ["teacher"]
    assert teachers[0].tree["model"]["name"] == "resnet32x4"
    assert all(
        r.tree["data"]["name"] == "cifar100" and r.tree["model"]["name"] == "resnet8x4" for r in planned
    )


@pytest.mark.parametrize(
    ("file", "names"),
    [
        ("pilot_resnet8.yaml", [f"ce-resnet8-e{e}-m{m}" for e in (15, 40) for m in (0, 3, 6)]),
        ("pilot_resnet20.yaml", ["ce-resnet20-e15-m0", "ce-resnet20-e15-m3"]),
    ],
)
def test_the_long_study_pilot_trains_plain_ce_on_every_image(tmp_path, file, names):
    """Issue 19's pilot asks whether augmentation alone pays off: no teacher, all 60 000 images, one seed,
    one thread per run (two pilot sweeps share the 2 cores)."""
    teachers, planned = plan(load_sweep(STUDY / "long" / file), tmp_path / "pilot")
    assert teachers == [] and sorted(r.folder.name for r in planned) == sorted(names)
    for run in planned:
        assert run.tree["data"]["limit"] is None and run.tree["distill"]["method"] == "none"
        assert "teacher" not in run.tree and run.tree["train"]["threads"] == 1
