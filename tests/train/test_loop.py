"""The training engine on real Fashion-MNIST, kept tiny: few hundred images, a couple of epochs."""

import json

import pytest
import torch

from kdforaa.augment import native
from kdforaa.augment.apply import describe_backend
from kdforaa.checkpoint import load_checkpoint, save_checkpoint
from kdforaa.config import build_config
from kdforaa.errors import BadInput, TrainingError
from kdforaa.train.loop import Trainer, resume_config

TINY = {
    "data": {"limit": 256, "test_limit": 200},
    "model": {"name": "resnet8"},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "threads": 2},
}


def tiny(**sections):
    tree = json.loads(json.dumps(TINY))
    for name, values in sections.items():
        if isinstance(values, dict):
            tree.setdefault(name, {}).update(values)
        else:
            tree[name] = values
    return build_config(tree)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    summary = Trainer(tiny(), out, progress=False).run()
    return out, summary


def test_run_folder_contents(teacher_run):
    out, summary = teacher_run
    assert {p.name for p in out.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "last.pt",
        "best.pt",
        "summary.json",
    }
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # counted as on the console
    assert all(0 <= r["test_acc"] <= 100 and r["img_per_s"] > 0 for r in records)
    assert summary["epochs"] == 2 and summary["world_size"] == 1 and summary["steps"] == 8
    assert summary["final_test_acc"] == records[-1]["test_acc"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["torch_version"] == torch.__version__ and summary["device"] == "cpu"
    # what augmented the batches: the native kernels this process found, or the torch path
    assert summary["augment_backend"] == describe_backend("auto", torch.device("cpu"), "nearest")
    assert summary["augment_backend"] in ("torch", f"native ({native.describe()})")
    state = torch.load(out / "best.pt", weights_only=True)
    assert "model" in state and state["model_name"] == "resnet8"
    assert resume_config(out).model.name == "resnet8"
    assert not (out / ".lock").exists()


@pytest.mark.parametrize("every,evaluated", [(0, [3]), (2, [2, 3])])
def test_eval_every_thins_test_evaluation_but_always_scores_the_last_epoch(tmp_path, every, evaluated):
    summary = Trainer(tiny(train={"epochs": 3, "eval_every": every}), tmp_path / "r", progress=False).run()
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "test_acc" in r] == evaluated
    assert summary["final_test_acc"] == records[-1]["test_acc"]
    assert summary["best_test_acc"] == max(r["test_acc"] for r in records if "test_acc" in r)
    assert (tmp_path / "r" / "best.pt").exists()


def test_summary_time_is_the_whole_run_with_its_parts_split_out(teacher_run):
    out, summary = teacher_run
    parts = summary["train_time_s"], summary["eval_time_s"], summary["setup_time_s"]
    assert all(part > 0 for part in parts)
    assert summary["wall_time_s"] > sum(parts)  # also checkpoints and the closing speed measurement
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["train_time_s"] == pytest.approx(sum(r["epoch_seconds"] for r in records))
    assert summary["eval_time_s"] == pytest.approx(sum(r["eval_seconds"] for r in records))


def test_eval_limit_scores_a_subset_per_epoch_and_the_whole_test_set_at_the_end(tmp_path):
    cfg = tiny(train={"epochs": 2, "eval_limit": 50}, data={"limit": 128, "test_limit": 120})
    summary = Trainer(cfg, tmp_path / "r", progress=False).run()
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_images"] for r in records] == [50, 120]
    assert summary["final_test_acc"] == summary["best_test_acc"] == records[-1]["test_acc"]  # whole set only


def test_a_run_without_a_distillation_term_never_builds_its_teacher(tmp_path):
    """A CE baseline whose config names a teacher (a sweep's base, say) neither loads nor runs it: here
    the teacher file does not even exist."""
    absent = str(tmp_path / "absent.pt")
    cfg = tiny(train={"epochs": 1}, data={"limit": 64, "test_limit": 20}, teacher={"checkpoint": absent})
    trainer = Trainer(cfg, tmp_path / "r", progress=False)
    assert trainer.parts.teacher is None
    trainer.run()
    record = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "teacher_outlier_rate" not in record


def test_training_learns(tmp_path):
    summary = Trainer(tiny(train={"epochs": 3}, data={"limit": 1024}), tmp_path / "r", progress=False).run()
    assert summary["final_test_acc"] > 50.0  # 10 classes: chance is 10%


def _stop_after(monkeypatch, calls):
    original = Trainer.train_step
    count = {"n": 0}

    def step(self, *args):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt  # stands in for a kill between two steps
        return original(self, *args)

    monkeypatch.setattr(Trainer, "train_step", step)


@pytest.mark.parametrize("augment", [{"policy": "none"}, {"policy": "randaugment", "magnitude": 15}])
def test_resume_is_bit_identical(tmp_path, monkeypatch, augment):
    cfg = tiny(train={"checkpoint_every": 3}, augment=augment)
    whole = Trainer(cfg, tmp_path / "whole", progress=False)
    whole.run()
    _stop_after(monkeypatch, 7)  # checkpoints at global steps 3, 4 (epoch end) and 6; killed during step 7
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "killed", progress=False).run()
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert state["global_step"] == 6 and "scheduler" not in state
    # checkpoints written before the unread "scheduler" entry was dropped still resume the same
    save_checkpoint(
        {**state, "scheduler": {"global_step": 6, "total_steps": 8}}, tmp_path / "killed" / "last.pt"
    )
    resumed = Trainer(resume_config(tmp_path / "killed"), tmp_path / "killed", resume=True, progress=False)
    resumed.run()
    a, b = whole.parts.model.state_dict(), resumed.parts.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    drop = ("epoch_seconds", "eval_seconds", "img_per_s")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in drop} for r in rs]  # noqa: E731
    assert strip(lines(tmp_path / "whole")) == strip(lines(tmp_path / "killed"))


def test_distillation_run_logs_outlier_rate(tmp_path, teacher_run):
    teacher_out, _ = teacher_run
    cfg = tiny(
        train={"epochs": 1},
        augment={"policy": "randaugment", "magnitude": 15},
        teacher={"checkpoint": str(teacher_out / "best.pt")},
        distill={"method": "topk_kd", "k": 3},
    )
    Trainer(cfg, tmp_path / "student", progress=False).run()
    record = json.loads((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= record["teacher_outlier_rate"] <= 1.0
    assert record["train_distill"] > 0 and record["train_ce"] > 0


def test_distill_without_teacher_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="teacher.checkpoint"):
        Trainer(tiny(distill={"method": "kd"}), tmp_path / "r", progress=False)


def test_out_folder_with_a_run_is_refused(tmp_path, teacher_run):
    out, _ = teacher_run
    before = (out / "last.pt").read_bytes()
    with pytest.raises(BadInput, match="already holds a run"):
        Trainer(tiny(), out, progress=False)
    assert (out / "last.pt").read_bytes() == before


def test_resume_of_empty_folder_is_refused(tmp_path):
    with pytest.raises(BadInput, match="nothing to resume"):
        Trainer(tiny(), tmp_path, resume=True, progress=False)


class _NanCriterion(torch.nn.Module):
    needs_features = False

    def forward(self, logits, labels, **_):
        loss = logits.sum() * float("nan")
        return loss, {"ce": loss.detach()}


def test_non_finite_loss_stops_with_the_step(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "r", progress=False)
    trainer.parts.distiller.criterion = _NanCriterion()
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 1 step 1 .*ce=nan"):
        trainer.run()


def test_non_finite_loss_can_be_skipped(tmp_path):
    trainer = Trainer(tiny(train={"on_nan": "skip", "epochs": 1}), tmp_path / "r", progress=False)
    before = {k: v.clone() for k, v in trainer.parts.model.state_dict().items()}
    trainer.parts.distiller.criterion = _NanCriterion()
    summary = trainer.run()
    assert summary["skipped_steps"] == 4
    after = trainer.parts.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "batches" not in k)


def test_policy_switched_off_for_the_last_epochs(tmp_path, monkeypatch):
    cfg = tiny(augment={"policy": "randaugment", "magnitude": 20, "off_last_epochs": 1})
    trainer = Trainer(cfg, tmp_path / "r", progress=False)
    used = []
    for name in ("augment", "mild_augment"):
        pipeline = getattr(trainer.parts.views, name)
        original = pipeline.sample

        def sample(keys, _name=name, _original=original):
            used.append((trainer.epoch, _name))
            return _original(keys)

        monkeypatch.setattr(pipeline, "sample", sample)
    trainer.run()
    assert sorted(set(used)) == [(0, "augment"), (1, "mild_augment")]
    assert trainer.parts.views.mild_augment.policy is None
