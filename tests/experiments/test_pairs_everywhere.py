"""fashion-mnist-pairs (100 classes, 28x56) through every part that trains on or reads a data set:
each distillation loss and the k schedule, the soft-label cache, outliers, a sweep and export.
Tiny real runs (200 pairs, 1 epoch) through the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from kdforaa.cli import main
from kdforaa.config import DataConfig
from kdforaa.data.datasets import load_dataset
from kdforaa.data.loader import normalize
from kdforaa.experiments.sweep import run_sweep
from kdforaa.models.from_checkpoint import load_trained

PAIRS = [
    "data.name=fashion-mnist-pairs",
    "data.limit=200",
    "data.test_limit=100",
    "augment.flip=false",
    "model.name=resnet8",
    "train.epochs=1",
    "train.batch_size=50",
]
STRONG = ["augment.policy=randaugment", "augment.magnitude=10"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "teacher"
    assert main(["train", *PAIRS, "--out", str(out), "--quiet"]) == 0
    return out / "best.pt"


@pytest.mark.parametrize(
    "distill",
    [
        ["distill.method=kd", "distill.temperature=4.0"],
        ["distill.method=topk_kd", "distill.k=5"],
        ["distill.method=topk_kd", "distill.k=5", "distill.topk_tail=merge"],
        ["distill.method=topk_kd", "distill.k=null"],
        ["distill.method=topk_kd", "distill.k_schedule={0: 3, 10: 20}"],
    ],
    ids=["kd", "topk5", "topk5-merge", "full", "k-schedule"],
)
def test_every_logit_loss_distils_on_pairs(teacher, tmp_path, distill):
    out = tmp_path / "student"
    argv = ["train", *PAIRS, *STRONG, f"teacher.checkpoint={teacher}", *distill, "--out", str(out), "--quiet"]
    assert main(argv) == 0
    result = summary(out)
    assert result["data"] == "fashion-mnist-pairs" and 0.0 <= result["final_test_acc"] <= 100.0


def test_the_soft_label_cache_serves_a_pairs_run(teacher, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "cached"
    config = [*PAIRS, *STRONG, f"teacher.checkpoint={teacher}", "distill.method=topk_kd"]
    assert main(["cache-teacher", *config, "--out", str(cache), "--k", "100", "--quiet"]) == 0
    header = json.loads((cache / "header.json").read_text())
    assert (header["num_classes"], header["num_samples"], header["k"]) == (100, 200, 100)
    assert main(["train", *config, f"teacher.cache={cache}", "--out", str(out), "--quiet"]) == 0
    assert summary(out)["epochs"] == 1


def test_outliers_of_a_pairs_teacher(teacher, tmp_path, capsys):
    out = tmp_path / "outliers"
    argv = ["outliers", "--teacher", str(teacher), "--out", str(out), "--limit", "40", "--levels", "0,10"]
    assert main([*argv, "--policy", "translate_x,rotate", "--group-size", "10", "--k", "5", "--quiet"]) == 0
    with (out / "outliers.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4  # two ops at two levels, on the teacher's own data set
    assert (out / "outliers_gallery.png").is_file()


def test_export_of_a_pairs_model_comes_back_with_its_shape(teacher, tmp_path):
    weights = tmp_path / "pairs.safetensors"
    assert main(["export", str(teacher), "--out", str(weights)]) == 0
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["kdforaa.num_classes"] == "100" and metadata["kdforaa.resolution"] == "28,56"
    original, exported = load_trained(str(teacher)), load_trained(str(weights))
    pairs = load_dataset(DataConfig(name="fashion-mnist-pairs", test_limit=16), "test")
    x = normalize(pairs.data, pairs.mean, pairs.std)
    with torch.no_grad():
        assert torch.equal(exported.model.eval()(x), original.model.eval()(x))


def test_a_sweep_of_pairs_runs(tmp_path):
    """One real run in its own process (the many-class sweeps' configs are planned in test_many_class)."""
    tiny = {"data": {"name": "fashion-mnist-pairs", "limit": 200, "test_limit": 100}, "train": {"epochs": 1}}
    spec = {
        "base": {**tiny, "model": {"name": "resnet8"}, "augment": {"flip": False, "policy": "randaugment"}},
        "grid": {"augment.magnitude": [10]},
        "plot": [],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert run_sweep(path, tmp_path / "out") == 0
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open(newline="")))
    assert [row["status"] for row in rows] == ["finished"]


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_the_study_models_pool_a_28x56_pair_into_100_logits(name):
    from kdforaa.models.registry import build_model

    model = build_model(name, 100, 1).eval()
    with torch.no_grad():
        logits, features = model(torch.zeros(2, 1, 28, 56), return_features=True)
    assert logits.shape == (2, 100) and features["stage3"].shape[-2:] == (7, 14)
