"""Issue 9's methods in real (tiny) runs: resolution-coupled students, multi-stage hints and KR together,
checkpoints evaluated at their own resolution, and the bad settings the command line refuses."""

from __future__ import annotations

import json

import pytest
import torch

from cli_helpers import TINY_TRAIN_ARGS, one_line_error
from kdforaa.checkpoint import load_checkpoint
from kdforaa.cli import main
from kdforaa.config import build_config
from kdforaa.data.datasets import load_dataset
from kdforaa.models.registry import build_model
from kdforaa.models.resolution import downsample
from kdforaa.train.evaluate import evaluate
from kdforaa.train.loop import Trainer

TINY = [*TINY_TRAIN_ARGS, "train.threads=1"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("teacher") / "run"
    assert main(["train", *TINY, "--out", str(out), "--quiet"]) == 0
    return str(out / "best.pt")


def test_teacher_sees_full_size_and_student_a_downsampled_copy_of_the_same_batch(tmp_path, teacher):
    cfg = build_config(
        {
            "data": {"limit": 128, "test_limit": 100},
            "model": {"name": "resnet8"},
            "augment": {"policy": "randaugment", "magnitude": 15},
            "train": {"epochs": 1, "batch_size": 64, "threads": 1},
            "teacher": {"checkpoint": teacher},
            "distill": {
                "method": "topk_kd",
                "student_resolution": 14,
                "hints": {"stage2": 1.0, "stage3": 1.0},
                "sp": 100.0,
                "kr": 1.0,
                "kr_sparse": 0.1,
            },
        }
    )
    trainer = Trainer(cfg, tmp_path / "student", progress=False)
    to_teacher, to_student = [], []
    trainer.parts.teacher.model.register_forward_pre_hook(lambda m, args: to_teacher.append(args[0].clone()))
    trainer.parts.model.stem.register_forward_pre_hook(
        lambda m, args: to_student.append((m.training, args[0]))
    )
    summary = trainer.run()
    training = [x for is_training, x in to_student if is_training]
    testing = [x for is_training, x in to_student if not is_training]
    assert len(to_teacher) == len(training) == 2 and testing  # two steps, then the test set
    assert all(x.shape[-2:] == (28, 28) for x in to_teacher)
    assert all(x.shape[-2:] == (14, 14) for x in training + testing)
    for full, small in zip(to_teacher, training, strict=True):
        assert torch.allclose(small, downsample(full, 14), atol=1e-6)
    record = json.loads((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {
        "train_distill",
        "train_sp",
        "train_hint:stage2",
        "train_hint:stage3",
        "train_kr",
        "train_kr_sparse",
    } <= set(record)
    assert summary["params"] == sum(p.numel() for p in trainer.parts.model.parameters())
    assert summary["inference_img_per_s"] > 0


def test_eval_of_a_coupled_checkpoint_uses_its_resolution(tmp_path, teacher, capsys):
    out = tmp_path / "student"
    extra = [f"teacher.checkpoint={teacher}", "distill.method=topk_kd", "distill.student_resolution=14"]
    assert main(["train", *TINY, *extra, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"accuracy {record['test_acc']:.2f}% loss {record['test_loss']:.4f}" in printed
    assert "seen at 14x14" in printed
    # the check has teeth: at full size the same weights score differently
    state = load_checkpoint(out / "best.pt")
    plain = build_model("resnet8", 10, 1)
    plain.load_state_dict(state["model"])
    test_set = load_dataset(build_config(state["config"]).data, "test")
    assert evaluate(plain, test_set, torch.device("cpu"))["loss"] != pytest.approx(record["test_loss"])


STAGES = "available stages: stem, stage1, stage2, stage3, pooled"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.student_resolution=0"], "distill.student_resolution"),
        (["distill.student_resolution=29"], "must be between 1 and 28"),
        (["distill.hints={stage9: 1.0}"], STAGES),
        (["distill.kr=1", "distill.kr_stages=[stage9]"], STAGES),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, teacher, capsys, overrides, message):
    argv = ["train", *TINY, f"teacher.checkpoint={teacher}", *overrides, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_feature_terms_without_a_teacher_are_refused(tmp_path, capsys):
    assert main(["train", *TINY, "distill.kr=1.0", "--out", str(tmp_path / "r")]) == 2
    assert "teacher.checkpoint" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "distill",
    [
        {"method": "none", "hints": {"stage2": 1.0, "stage3": 1.0}},  # hierarchical hints
        {"method": "topk_kd", "k": 5, "student_resolution": 14},  # resolution-coupled
        {"method": "topk_kd", "k": 5, "kr": 1.0, "kr_sparse": 0.1},  # Knowledge Representing
    ],
    ids=["hints", "resolution", "kr"],
)
def test_each_method_lowers_its_loss_in_a_few_epochs(tmp_path, teacher, distill):
    cfg = build_config(
        {
            "data": {"limit": 256, "test_limit": 50},
            "model": {"name": "resnet8"},
            "train": {"epochs": 4, "batch_size": 64, "lr": 0.05, "threads": 1, "eval_every": 0},
            "teacher": {"checkpoint": teacher},
            "distill": distill,
        }
    )
    Trainer(cfg, tmp_path / "run", progress=False).run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
