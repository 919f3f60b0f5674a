"""Weights out: ``kdforaa export`` writes a model's weights and what they are to a .safetensors file, and
reading that file back (as a teacher, or with a plain load_state_dict) gives the same model, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cli_helpers import TINY_TRAIN_ARGS, one_line_error
from fake_timm import TinyTimmNet
from fake_timm import install as install_fake_timm
from foreign_models import foreign_model, save_repdistiller_checkpoint
from kdforaa import __version__
from kdforaa.checkpoint import save_checkpoint
from kdforaa.cli import main
from kdforaa.config import TeacherConfig, config_to_dict, load_config
from kdforaa.distill.teacher import load_teacher
from kdforaa.errors import BadInput
from kdforaa.models.export import export_weights
from kdforaa.models.from_checkpoint import load_trained
from kdforaa.models.registry import build_model

pytestmark = pytest.mark.timeout(120)


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    return load_file(path), metadata


def assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """The same keys (safetensors stores them sorted), and every tensor the same dtype, shape and bits."""
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


def images(n: int = 4, channels: int = 1, side: int = 28) -> torch.Tensor:
    return torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(3))


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def run_checkpoint(path: Path, model: torch.nn.Module, name: str, *overrides: str) -> Path:
    """``model`` saved as a training run saves it (with the data's image size and normalisation)."""
    cfg = load_config(None, [f"model.name={name}", *overrides])
    state = {
        "model": model.state_dict(),
        "config": config_to_dict(cfg),
        "num_classes": 10,
        "in_channels": 1,
        "image_size": [28, 28],
        "mean": [0.286],
        "std": [0.353],
    }
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) training run on Fashion-MNIST."""
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", *TINY_TRAIN_ARGS, "--out", str(out), "--quiet"]) == 0
    return out / "best.pt"


def test_a_training_run_exports_and_comes_back_bit_for_bit(trained_run: Path, tmp_path: Path) -> None:
    original = load_trained(str(trained_run))
    out = export_weights(original, tmp_path / "resnet8.safetensors")
    tensors, metadata = stored(out)
    assert_same_tensors(tensors, original.model.state_dict())
    assert metadata == {  # plain strings, readable by anyone
        "format": "pt",
        "kdforaa.version": __version__,
        "kdforaa.architecture": "resnet8",
        "kdforaa.data": "fashion-mnist",
        "kdforaa.num_classes": "10",
        "kdforaa.in_channels": "1",
        "kdforaa.resolution": "28,28",
        "kdforaa.mean": "0.286",
        "kdforaa.std": "0.353",
    }
    again = load_trained(str(out))  # the architecture comes from the metadata
    assert_same_tensors(again.model.state_dict(), original.model.state_dict())
    teacher = load_teacher(str(out), 10, 1, "cpu")
    x = images()
    with torch.no_grad():
        assert torch.equal(again.model.eval()(x), original.model.eval()(x))
        # the teacher folds its BatchNorms into its convolutions: the same logits up to rounding
        torch.testing.assert_close(teacher(x), original.model(x), rtol=1e-5, atol=1e-5)


def test_a_resolution_coupled_student_keeps_its_view(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomised(build_model("resnet8", 10, 1))
    path = run_checkpoint(tmp_path / "best.pt", model, "resnet8", "distill.student_resolution=14")
    original = load_trained(str(path))
    out = export_weights(original, tmp_path / "student.safetensors")
    assert stored(out)[1]["kdforaa.student_resolution"] == "14"
    again = load_trained(str(out))
    assert again.student_resolution == 14
    x = images()
    with torch.no_grad():
        coupled = original.model.eval()(x)
        assert not torch.equal(coupled, model(x))  # the original downsamples its 28x28 input
        assert torch.equal(again.model.eval()(x), coupled)


def test_a_repdistiller_checkpoint_exports_with_the_architecture_it_was_given(tmp_path: Path) -> None:
    reference = foreign_model("resnet8x4", num_classes=100)
    path = save_repdistiller_checkpoint(reference, tmp_path / "ckpt_epoch_240.pth")
    original = load_trained(str(path), architecture="resnet8x4")
    out = export_weights(original, tmp_path / "resnet8x4.safetensors")
    tensors, metadata = stored(out)
    assert "stage1.0.shortcut.0.weight" in tensors and "layer1.0.downsample.0.weight" not in tensors
    assert metadata["kdforaa.architecture"] == "resnet8x4"
    assert "kdforaa.data" not in metadata  # a RepDistiller checkpoint does not record it
    assert (metadata["kdforaa.num_classes"], metadata["kdforaa.in_channels"]) == ("100", "3")
    assert "kdforaa.resolution" not in metadata  # the checkpoint does not record it
    again = load_trained(str(out))  # no --model needed any more
    assert_same_tensors(again.model.state_dict(), original.model.state_dict())
    plain = build_model("resnet8x4", 100, 3)
    plain.load_state_dict(tensors)  # a plain load_state_dict takes the file
    x = images(channels=3, side=32)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), reference(x), rtol=1e-5, atol=1e-5)


def test_a_timm_model_exports_in_timms_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_fake_timm(monkeypatch)
    torch.manual_seed(1)
    model = randomised(build_model("timm:tiny", 10, 1))
    path = run_checkpoint(tmp_path / "best.pt", model, "timm:tiny")
    original = load_trained(str(path))
    out = export_weights(original, tmp_path / "tiny.safetensors")
    tensors, metadata = stored(out)
    assert_same_tensors(tensors, model.model.state_dict())  # no "model." prefix
    assert metadata["kdforaa.architecture"] == "timm:tiny"
    plain = TinyTimmNet(1, 10)
    plain.load_state_dict(tensors)  # the timm model's own load_state_dict takes it
    x = images()
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(plain.eval()(x), expected)
        for spec in (str(out), TeacherConfig(checkpoint="timm:tiny", pretrained=True, weights=str(out))):
            assert torch.equal(load_teacher(spec, 10, 1, "cpu")(x), expected)
    ours = export_weights(original, tmp_path / "tiny-kdforaa.safetensors", layout="kdforaa")
    assert_same_tensors(stored(ours)[0], model.state_dict())  # our names keep the prefix
    assert torch.equal(load_teacher(str(ours), 10, 1, "cpu")(x), expected)


def test_export_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    path = run_checkpoint(tmp_path / "best.pt", build_model("resnet8", 10, 1), "resnet8")
    trained = load_trained(str(path))
    with pytest.raises(BadInput, match="must end in .safetensors"):
        export_weights(trained, tmp_path / "out.pt")
    with pytest.raises(BadInput, match="'resnet8' is not a timm model: use the kdforaa layout"):
        export_weights(trained, tmp_path / "out.safetensors", layout="timm")
    with pytest.raises(BadInput, match="does not exist"):
        export_weights(trained, tmp_path / "no" / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # nothing written


def test_an_older_export_with_json_metadata_is_still_read(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = build_model("resnet8", 10, 1)
    old = {
        "format": "pt",
        "kdforaa.architecture": '"resnet8"',
        "kdforaa.num_classes": "10",
        "kdforaa.in_channels": "1",
        "kdforaa.resolution": "[28, 28]",
        "kdforaa.student_resolution": "14",
        "kdforaa.mean": json.dumps([0.2860]),
        "kdforaa.std": json.dumps([0.3530]),
    }
    save_file(model.state_dict(), str(tmp_path / "old.safetensors"), metadata=old)
    again = load_trained(str(tmp_path / "old.safetensors"))
    assert (again.name, again.num_classes, again.in_channels, again.data) == ("resnet8", 10, 1, None)
    assert (again.resolution, again.student_resolution) == ((28, 28), 14)
    assert (again.mean, again.std) == ((0.286,), (0.353,))
    for key, bad in (("kdforaa.num_classes", "ten"), ("kdforaa.resolution", '["a"]')):
        save_file(model.state_dict(), str(tmp_path / "bad.safetensors"), metadata={**old, key: bad})
        with pytest.raises(BadInput, match=f"metadata {key}="):
            load_trained(str(tmp_path / "bad.safetensors"))


@pytest.mark.parametrize("name", ["resnet8x4", "wrn_16_1"])
def test_repdistiller_layout_loads_into_repdistillers_own_modules(name: str, tmp_path: Path) -> None:
    """``--format repdistiller`` writes {'model': their state dict, 'epoch'}, as their scripts save it;
    the reference modules written in their layout (tests/foreign_models.py) load it strictly."""
    reference = foreign_model(name, num_classes=100)
    path = save_repdistiller_checkpoint(reference, tmp_path / "ckpt_epoch_240.pth")
    trained = load_trained(str(path), architecture=name)
    out = export_weights(trained, tmp_path / "back.pth", layout="repdistiller")
    state = torch.load(out, weights_only=True)  # tensors and an int only
    assert sorted(state) == ["epoch", "model"]
    theirs = foreign_model(name, num_classes=100, seed=7)
    theirs.load_state_dict(state["model"], strict=True)  # what RepDistiller's load_teacher does
    assert_same_tensors(theirs.state_dict(), reference.state_dict())
    assert load_trained(str(out), architecture=name).format == "repdistiller"  # and kdforaa reads it


def test_repdistiller_layout_is_refused_where_it_has_no_names(tmp_path: Path) -> None:
    path = run_checkpoint(tmp_path / "best.pt", build_model("resnet8", 10, 1), "resnet8")
    trained = load_trained(str(path))
    with pytest.raises(BadInput, match="must end in .pth"):
        export_weights(trained, tmp_path / "out.safetensors", layout="repdistiller")
    out = export_weights(trained, tmp_path / "out.pth", layout="repdistiller")
    assert "layer1.0.conv1.weight" in torch.load(out, weights_only=True)["model"]


def test_weights_are_written_with_the_umask_like_every_other_file(tmp_path: Path) -> None:
    import os

    path = run_checkpoint(tmp_path / "best.pt", build_model("resnet8", 10, 1), "resnet8")
    previous = os.umask(0o027)
    try:
        trained = load_trained(str(path))
        outs = [
            run_checkpoint(tmp_path / "again.pt", build_model("resnet8", 10, 1), "resnet8"),
            export_weights(trained, tmp_path / "w.safetensors"),
            export_weights(trained, tmp_path / "w.pth", layout="repdistiller"),
        ]
    finally:
        os.umask(previous)
    assert [oct(p.stat().st_mode & 0o777) for p in outs] == [oct(0o640)] * 3


# -------------------------------------------------------------------------------------------- CLI
def test_cli_exports_and_says_what(trained_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "w.safetensors"
    code, stdout, _ = run(capsys, "export", str(trained_run), "--out", str(out))
    assert code == 0
    assert stdout.strip() == f"resnet8 (10 classes, 1 channel) weights written to {out.resolve()}"
    assert_same_tensors(load_file(out), load_trained(str(trained_run)).model.state_dict())


def test_cli_export_of_a_foreign_checkpoint_needs_model(tmp_path: Path, capsys) -> None:
    path = save_repdistiller_checkpoint(foreign_model("wrn_16_1", 10), tmp_path / "c.pth")
    out = tmp_path / "w.safetensors"
    code, _, err = run(capsys, "export", str(path), "--out", str(out))
    assert code == 2 and "does not record its architecture" in one_line_error(err) and not out.exists()
    code, _, err = run(capsys, "export", str(path), "--out", str(out), "--model", "wrn_16_2")
    assert code == 2 and "do not fit model 'wrn_16_2'" in one_line_error(err) and not out.exists()
    assert run(capsys, "export", str(path), "--out", str(out), "--model", "wrn_16_1")[0] == 0
    assert stored(out)[1]["kdforaa.architecture"] == "wrn_16_1"
