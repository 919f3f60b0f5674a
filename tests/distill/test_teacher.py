"""Loading a frozen teacher from a kdforaa checkpoint (a real registry model, saved by the real saver)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from kdforaa.checkpoint import save_checkpoint
from kdforaa.config import RunConfig, config_to_dict
from kdforaa.distill.losses import kd
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model

NAME, CLASSES, CHANNELS = "resnet8", 10, 1


def run_state(
    model: torch.nn.Module, name: str = NAME, classes: int = CLASSES, channels: int = CHANNELS
) -> dict:
    cfg = RunConfig.model_validate({"model": {"name": name}})
    return {
        "model": model.state_dict(),
        "config": config_to_dict(cfg),
        "num_classes": classes,
        "in_channels": channels,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(NAME, CLASSES, CHANNELS)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is visible in the outputs
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("run") / "best.pt"
    save_checkpoint(run_state(model), path)
    return model.eval(), path


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, CHANNELS, 16, 16, generator=torch.Generator().manual_seed(1))


def test_teacher_is_frozen_in_eval_mode_and_reproduces_the_saved_model(trained) -> None:
    model, path = trained
    teacher = load_teacher(str(path), CLASSES, CHANNELS, "cpu")
    assert isinstance(teacher, Teacher) and not isinstance(teacher, torch.nn.Module)
    assert (teacher.name, teacher.num_classes, teacher.in_channels) == (NAME, CLASSES, CHANNELS)
    assert not teacher.model.training
    assert all(not p.requires_grad for p in teacher.model.parameters())
    x = images()
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(teacher(x), expected, atol=1e-6)
    assert teacher.stage_channels == model.stage_channels


def test_teacher_outputs_are_plain_tensors_usable_in_a_student_loss(trained) -> None:
    teacher = load_teacher(str(trained[1]), CLASSES, CHANNELS, "cpu")
    t = teacher(images())
    assert not t.is_inference() and not t.requires_grad
    student = torch.zeros_like(t, requires_grad=True)
    kd(student, t).backward()
    assert student.grad is not None


def test_forward_features_gives_logits_and_named_stages(trained) -> None:
    teacher = load_teacher(str(trained[1]), CLASSES, CHANNELS, "cpu")
    x = images()
    logits, feats = teacher.forward_features(x)
    assert torch.allclose(logits, teacher(x), atol=1e-6)
    assert list(feats) == list(teacher.stage_channels)
    for stage, value in feats.items():
        assert value.shape[:2] == (4, teacher.stage_channels[stage])
        assert not value.is_inference()


def test_class_count_mismatch_names_both_numbers(trained) -> None:
    with pytest.raises(BadInput, match="10 classes but the data set has 100"):
        load_teacher(str(trained[1]), 100, CHANNELS, "cpu")


def test_channel_mismatch_names_both_numbers(trained) -> None:
    with pytest.raises(BadInput, match="1-channel images but the data set has 3"):
        load_teacher(str(trained[1]), CLASSES, 3, "cpu")


def test_non_kdforaa_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"model": build_model(NAME, CLASSES, CHANNELS).state_dict()}, path)
    with pytest.raises(BadInput, match="not a kdforaa checkpoint"):
        load_teacher(str(path), CLASSES, CHANNELS, "cpu")


def test_checkpoint_without_model_description_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    save_checkpoint({"model": build_model(NAME, CLASSES, CHANNELS).state_dict()}, path)
    with pytest.raises(BadInput, match="model description"):
        load_teacher(str(path), CLASSES, CHANNELS, "cpu")


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pt"
    save_checkpoint(run_state(build_model(NAME, CLASSES, CHANNELS), name="resnet14"), path)
    with pytest.raises(BadInput, match="do not fit model 'resnet14'"):
        load_teacher(str(path), CLASSES, CHANNELS, "cpu")


def test_missing_file_and_folder_are_bad_input(trained, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_teacher(str(tmp_path / "nope.pt"), CLASSES, CHANNELS, "cpu")
    with pytest.raises(BadInput, match="is a folder"):
        load_teacher(str(trained[1].parent), CLASSES, CHANNELS, "cpu")


def test_timm_spec() -> None:
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(BadInput, match=r"pip install 'kdforaa\[timm\]'"):
            load_teacher("timm:resnet18", CLASSES, CHANNELS, "cpu")
    else:
        teacher = load_teacher("timm:resnet18", CLASSES, CHANNELS, "cpu")
        assert teacher.name == "timm:resnet18"
        assert teacher(torch.randn(2, CHANNELS, 32, 32)).shape == (2, CLASSES)
