"""Loading a frozen teacher from a kdforaa checkpoint (a real registry model, saved by the real saver)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fake_timm import FakeTimm, TinyTimmNet
from fake_timm import install as install_fake_timm
from foreign_models import foreign_model, save_repdistiller_checkpoint
from kdforaa.checkpoint import save_checkpoint
from kdforaa.config import RunConfig, TeacherConfig, config_to_dict, load_config
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


def test_weights_that_do_not_record_their_architecture_need_teacher_model(trained, tmp_path: Path) -> None:
    model, _ = trained
    path = tmp_path / "weights.pt"
    torch.save({"model": model.state_dict()}, path)
    with pytest.raises(BadInput, match=r"does not record its architecture: name it with --model NAME \("):
        load_teacher(str(path), CLASSES, CHANNELS, "cpu")
    teacher = load_teacher(TeacherConfig(checkpoint=str(path), model=NAME), CLASSES, CHANNELS, "cpu")
    x = images()
    with torch.no_grad():  # the teacher's BatchNorms are folded: equal up to float rounding
        torch.testing.assert_close(teacher(x), model.eval()(x), rtol=1e-5, atol=1e-5)


def test_repdistiller_teacher_gives_the_reference_logits(tmp_path: Path) -> None:
    reference = foreign_model("wrn_16_2", num_classes=CLASSES, in_channels=CHANNELS)
    path = save_repdistiller_checkpoint(reference, tmp_path / "wrn_16_2.pth")
    spec = load_config(None, [f"teacher.checkpoint={path}", "teacher.model=wrn_16_2"]).teacher
    teacher = load_teacher(spec, CLASSES, CHANNELS, "cpu")
    assert teacher.name == "wrn_16_2"
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), reference(x), rtol=1e-5, atol=1e-5)


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


def test_timm_teacher_without_pretrained_weights_is_refused_as_untrained() -> None:
    with pytest.raises(BadInput) as err:
        load_teacher("timm:resnet18", CLASSES, CHANNELS, "cpu")
    assert str(err.value) == (
        "teacher.checkpoint=timm:resnet18 would be an untrained, randomly initialised teacher: set "
        "teacher.pretrained=true to load timm's pretrained weights "
        "(teacher.weights=FILE for a local file of them)"
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTimm:
    """The stand-in timm (tests/fake_timm.py) installed as `timm`."""
    return install_fake_timm(monkeypatch)


def timm_teacher(**keys) -> TeacherConfig:
    return TeacherConfig(checkpoint="timm:tiny", pretrained=True, **keys)


def test_pretrained_timm_teacher_has_timms_weights(fake: FakeTimm) -> None:
    teacher = load_teacher(timm_teacher(), CLASSES, CHANNELS, "cpu")
    assert fake.calls == [{"name": "tiny", "pretrained": True}]  # the weights' own class count and channels
    assert teacher.name == "timm:tiny" and teacher.stage_channels == {"pooled": 8}
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), fake.pretrained_model().eval()(x), rtol=0, atol=0)


def test_pretrained_timm_teacher_of_other_classes_or_channels_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install_fake_timm(monkeypatch)
    fake.pretrained_classes = 1000
    with pytest.raises(BadInput) as err:
        load_teacher(timm_teacher(), CLASSES, CHANNELS, "cpu")
    assert str(err.value) == (
        "teacher timm:tiny (timm's pretrained weights) predicts 1000 classes but the data set has 10: "
        "use a teacher trained on the same data set"
    )
    fake.pretrained_classes, fake.pretrained_channels = CLASSES, 3
    with pytest.raises(BadInput, match="takes 3-channel images but the data set has 1"):
        load_teacher(timm_teacher(), CLASSES, CHANNELS, "cpu")


def test_pretrained_timm_weights_that_cannot_be_fetched_are_one_line(fake: FakeTimm) -> None:
    fake.offline = True
    with pytest.raises(BadInput) as err:
        load_teacher(timm_teacher(), CLASSES, CHANNELS, "cpu")
    message = str(err.value)
    assert "\n" not in message and message.startswith(
        "timm could not load the pretrained weights of 'timm:tiny'"
    )
    assert message.endswith("connect once to fill timm's cache, or set teacher.weights=FILE")


def test_pretrained_timm_teacher_without_timm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` fails even where it is installed
    with pytest.raises(BadInput, match=r"needs timm, which is not installed: pip install 'kdforaa\[timm\]'"):
        load_teacher(timm_teacher(), CLASSES, CHANNELS, "cpu")


@pytest.mark.parametrize("file", ["tiny.safetensors", "tiny.pth"])
def test_timm_teacher_from_a_local_weights_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, file: str
) -> None:
    fake = install_fake_timm(monkeypatch)
    torch.manual_seed(5)
    saved = TinyTimmNet(CHANNELS, CLASSES).eval()
    path = tmp_path / file
    if file.endswith(".safetensors"):
        save_file(saved.state_dict(), path)  # timm's own names: no "model." prefix
    else:
        torch.save(saved.state_dict(), path)
    teacher = load_teacher(timm_teacher(weights=str(path)), CLASSES, CHANNELS, "cpu")
    assert fake.calls[-1] == {
        "name": "tiny",
        "pretrained": False,
        "in_chans": CHANNELS,
        "num_classes": CLASSES,
        "drop_rate": 0.0,
    }
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), saved(x), rtol=0, atol=0)


def test_timm_weights_file_is_loaded_strictly_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_fake_timm(monkeypatch)
    weights = TinyTimmNet(CHANNELS, 5).state_dict()
    save_file(weights, tmp_path / "five.safetensors")
    with pytest.raises(BadInput, match="predicts 5 classes but the data set has 10"):
        load_teacher(timm_teacher(weights=str(tmp_path / "five.safetensors")), CLASSES, CHANNELS, "cpu")
    del weights["bn.running_var"]
    save_file(weights, tmp_path / "broken.safetensors")
    with pytest.raises(BadInput, match=r"do not fit model 'timm:tiny': bn.running_var is missing$"):
        load_teacher(timm_teacher(weights=str(tmp_path / "broken.safetensors")), CLASSES, CHANNELS, "cpu")
