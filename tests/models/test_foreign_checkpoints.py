"""Weights from elsewhere: RepDistiller/mdistiller checkpoints, plain state dicts and safetensors files
load strictly into our zoo and compute what the network they were saved from computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cli_helpers import one_line_error
from foreign_models import RESNETS, SAME_NAMES, WIDE_RESNETS, foreign_model, save_repdistiller_checkpoint
from kdforaa.checkpoint import save_checkpoint
from kdforaa.cli import main
from kdforaa.config import RunConfig, config_to_dict, load_config
from kdforaa.errors import BadInput
from kdforaa.models.from_checkpoint import load_trained
from kdforaa.models.registry import available_models, build_model
from kdforaa.models.weight_formats import read_weights

pytestmark = pytest.mark.timeout(120)

ZOO = list(RESNETS) + list(WIDE_RESNETS)


def images(n: int = 3, channels: int = 3) -> torch.Tensor:
    return torch.randn(n, channels, 32, 32, generator=torch.Generator().manual_seed(7))


def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def test_every_zoo_architecture_has_a_foreign_reference() -> None:
    """Renamed layouts have reference modules here; the models with RepDistiller's own names have their
    state dict spelled out (tests/models/test_repdistiller_zoo.py loads it)."""
    assert sorted(ZOO + list(SAME_NAMES)) == sorted(available_models())


def test_reference_modules_use_the_documented_names() -> None:
    resnet = foreign_model("resnet8x4").state_dict()
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
    ):
        assert key in resnet
    assert {"layer3.0.bn2.weight", "fc.weight", "fc.bias"} <= set(resnet)
    assert "layer1.0.downsample.0.weight" not in foreign_model("resnet8").state_dict()  # 16 -> 16
    wrn = foreign_model("wrn_16_2").state_dict()
    for key in ("conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.convShortcut.weight"):
        assert key in wrn
    assert {"block3.layer.1.conv2.weight", "bn1.running_mean", "fc.weight"} <= set(wrn)
    assert "block1.layer.0.convShortcut.weight" not in foreign_model("wrn_16_1").state_dict()


@pytest.mark.parametrize("name", ZOO)
def test_repdistiller_checkpoint_gives_the_reference_logits(tmp_path: Path, name: str) -> None:
    reference = foreign_model(name, num_classes=100)
    path = save_repdistiller_checkpoint(reference, tmp_path / "ckpt_epoch_240.pth")
    trained = load_trained(str(path), architecture=name)
    assert (trained.name, trained.num_classes, trained.in_channels) == (name, 100, 3)
    assert (trained.format, trained.layout) == ("repdistiller", "repdistiller")
    x = images()
    torch.testing.assert_close(logits_of(trained.model, x), logits_of(reference, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet32x4", "wrn_40_2"])
def test_legacy_file_format_and_data_parallel_prefix_are_read(tmp_path: Path, name: str) -> None:
    reference = foreign_model(name, num_classes=10)
    legacy = save_repdistiller_checkpoint(reference, tmp_path / "legacy.pth", legacy=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {f"module.{k}": v for k, v in reference.state_dict().items()}}, wrapped)
    x = images()
    for path in (legacy, wrapped):
        trained = load_trained(str(path), architecture=name)
        torch.testing.assert_close(logits_of(trained.model, x), logits_of(reference, x), rtol=1e-5, atol=1e-5)


def test_class_count_and_channels_are_read_off_the_weights(tmp_path: Path) -> None:
    reference = foreign_model("resnet8", num_classes=7, in_channels=1)
    trained = load_trained(
        str(save_repdistiller_checkpoint(reference, tmp_path / "c.pth")), architecture="resnet8"
    )
    assert (trained.num_classes, trained.in_channels) == (7, 1)
    x = images(channels=1)
    torch.testing.assert_close(logits_of(trained.model, x), logits_of(reference, x), rtol=1e-5, atol=1e-5)


def test_plain_state_dicts_and_safetensors_in_either_layout(tmp_path: Path) -> None:
    reference = foreign_model("wrn_16_2", num_classes=10)
    ours = load_trained(
        str(save_repdistiller_checkpoint(reference, tmp_path / "r.pth")), architecture="wrn_16_2"
    )
    files = {
        "ours.pt": ("state_dict", "kdforaa", lambda p: torch.save(ours.model.state_dict(), p)),
        "theirs.pt": ("state_dict", "repdistiller", lambda p: torch.save(reference.state_dict(), p)),
        "ours.safetensors": ("safetensors", "kdforaa", lambda p: save_file(ours.model.state_dict(), p)),
        "theirs.safetensors": ("safetensors", "repdistiller", lambda p: save_file(reference.state_dict(), p)),
    }
    x = images()
    for file, (format, layout, write) in files.items():
        write(tmp_path / file)
        for forced in ("auto", format):
            trained = load_trained(str(tmp_path / file), architecture="wrn_16_2", format=forced)
            assert (trained.format, trained.layout) == (format, layout), file
            torch.testing.assert_close(
                logits_of(trained.model, x), logits_of(reference, x), rtol=1e-5, atol=1e-5
            )


def test_a_foreign_checkpoint_needs_its_architecture(tmp_path: Path) -> None:
    path = save_repdistiller_checkpoint(foreign_model("resnet8"), tmp_path / "c.pth")
    with pytest.raises(BadInput) as err:
        load_trained(str(path))
    expected = "does not record its architecture: name it with --model NAME (teacher.model=NAME in a config)"
    assert expected in one_line(err.value)


# ------------------------------------------------------------------------------- strict loading
def strict_error(path: Path, architecture: str) -> str:
    with pytest.raises(BadInput) as err:
        load_trained(str(path), architecture=architecture)
    return one_line(err.value)


def test_a_missing_key_is_named_with_the_architecture(tmp_path: Path) -> None:
    weights = foreign_model("resnet8").state_dict()
    del weights["layer3.0.bn2.running_var"]
    torch.save({"model": weights}, tmp_path / "c.pth")
    message = strict_error(tmp_path / "c.pth", "resnet8")
    assert message.endswith("do not fit model 'resnet8': layer3.0.bn2.running_var is missing")


def test_an_unexpected_key_is_named(tmp_path: Path) -> None:
    weights = foreign_model("resnet8").state_dict()
    weights["layer3.0.extra.weight"] = torch.zeros(3)
    torch.save({"model": weights}, tmp_path / "c.pth")
    message = strict_error(tmp_path / "c.pth", "resnet8")
    assert message.endswith("'resnet8': layer3.0.extra.weight is not one of its weights")


def test_a_shape_mismatch_is_named_with_both_shapes(tmp_path: Path) -> None:
    weights = foreign_model("wrn_16_2").state_dict()
    weights["block2.layer.0.conv1.weight"] = torch.zeros(64, 32, 1, 1)
    torch.save({"model": weights}, tmp_path / "c.pth")
    message = strict_error(tmp_path / "c.pth", "wrn_16_2")
    assert message.endswith(
        "'wrn_16_2': block2.layer.0.conv1.weight has shape (64, 32, 1, 1), the model needs (64, 32, 3, 3)"
    )


def test_weights_of_another_architecture_name_the_first_key_that_does_not_fit(tmp_path: Path) -> None:
    path = save_repdistiller_checkpoint(foreign_model("resnet8"), tmp_path / "c.pth")
    assert strict_error(path, "resnet14").endswith(
        "do not fit model 'resnet14': layer1.1.conv1.weight is missing (and 35 more)"  # 3 blocks x 12 tensors
    )
    assert (
        "do not fit model 'resnet8x4': conv1.weight has shape (16, 3, 3, 3), the model needs (32, 3, 3, 3)"
        in (strict_error(path, "resnet8x4"))
    )
    wrn = save_repdistiller_checkpoint(foreign_model("wrn_16_1"), tmp_path / "w.pth")
    assert "do not fit model 'resnet8': " in strict_error(wrn, "resnet8")


# ---------------------------------------------------------------------------------------- formats
def test_a_forced_format_must_be_what_the_file_is(tmp_path: Path) -> None:
    path = save_repdistiller_checkpoint(foreign_model("resnet8"), tmp_path / "c.pth")
    with pytest.raises(BadInput, match=r"is a RepDistiller/mdistiller checkpoint .*, not a plain state dict"):
        load_trained(str(path), architecture="resnet8", format="state_dict")
    with pytest.raises(BadInput, match="is not a .safetensors file"):
        load_trained(str(path), architecture="resnet8", format="safetensors")
    with pytest.raises(BadInput, match="not a kdforaa run checkpoint"):
        load_trained(str(path), architecture="resnet8", format="kdforaa")
    save_file({"fc.weight": torch.zeros(2, 2)}, tmp_path / "w.safetensors")
    with pytest.raises(BadInput, match="is a .safetensors file, not a RepDistiller"):
        load_trained(str(tmp_path / "w.safetensors"), architecture="resnet8", format="repdistiller")


@pytest.mark.parametrize(
    "content, holds",
    [([1, 2], "a list"), ({"state_dict": {}}, "a dict with keys 'state_dict'"), ({}, "an empty dict")],
)
def test_a_file_of_no_known_format_says_what_it_holds(tmp_path: Path, content, holds) -> None:
    torch.save(content, tmp_path / "odd.pt")
    with pytest.raises(BadInput) as err:
        read_weights(tmp_path / "odd.pt")
    assert one_line(err.value).endswith(f"or a .safetensors file: it holds {holds}")


def test_a_damaged_safetensors_file_is_bad_input(tmp_path: Path) -> None:
    save_file({"fc.weight": torch.zeros(4, 4)}, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:-10])
    with pytest.raises(BadInput, match="is not a readable .safetensors file"):
        read_weights(tmp_path / "w.safetensors")


def test_a_kdforaa_checkpoint_must_be_the_architecture_it_is_said_to_be(tmp_path: Path) -> None:
    model = build_model("resnet8", 10, 1)
    state = {
        "model": model.state_dict(),
        "config": config_to_dict(RunConfig.model_validate({"model": {"name": "resnet8"}})),
        "num_classes": 10,
        "in_channels": 1,
    }
    save_checkpoint(state, tmp_path / "best.pt")
    assert load_trained(str(tmp_path / "best.pt"), architecture="resnet8").name == "resnet8"
    with pytest.raises(BadInput, match=r"not a 'resnet20': remove --model \(teacher.model\)"):
        load_trained(str(tmp_path / "best.pt"), architecture="resnet20")


# -------------------------------------------------------------------------------------- kdforaa eval
def test_eval_of_a_foreign_checkpoint_takes_model_and_data(tmp_path: Path, make_cifar, capsys) -> None:
    path = save_repdistiller_checkpoint(foreign_model("resnet8", 10, 1), tmp_path / "c.pth")
    cifar = make_cifar("cifar10").root
    argv = ["eval", str(path), "--device", "cpu"]
    refusals = {
        (): "does not record its architecture: name it with --model NAME (teacher.model=NAME in a config)",
        ("--model", "resnet8"): "c.pth does not record its data set: pass --data NAME (and --root DIR)",
        ("--model", "resnet8", "--format", "state_dict", "--data", "fashion-mnist"): "not a plain state dict",
        ("--model", "resnet8", "--data", "cifar10", "--root", str(cifar)): "and 1 channel, data set cifar10",
    }
    for extra, message in refusals.items():
        assert main([*argv, *extra]) == 2, extra
        assert message in one_line_error(capsys.readouterr().err), extra
    assert main([*argv, "--model", "resnet8", "--format", "repdistiller", "--data", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resnet8 on fashion-mnist test: accuracy ") and "(10000 images)" in out


def test_eval_reads_only_the_data_section_of_a_runs_config(tmp_path: Path, capsys) -> None:
    """A student distilled, before teacher.pretrained existed, from a timm: teacher (a config now refused)
    is still evaluated: eval needs the run's data, not its teacher."""
    tree = {"model": {"name": "resnet8"}, "data": {"test_limit": 50}}
    config = config_to_dict(RunConfig.model_validate(tree))
    config["teacher"]["checkpoint"] = "timm:resnet18"
    state = {"model": build_model("resnet8", 10, 1).state_dict(), "config": config, "num_classes": 10}
    save_checkpoint({**state, "in_channels": 1}, tmp_path / "best.pt")
    assert main(["eval", str(tmp_path / "best.pt"), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("resnet8 on fashion-mnist test: accuracy")


def test_every_command_that_reads_weights_takes_model_and_format(tmp_path: Path, capsys) -> None:
    """A RepDistiller checkpoint as the teacher of outliers and cache-teacher (as of eval, above), with
    the same --model/--format; and an export of it records the data set, so eval needs no --data."""
    path = save_repdistiller_checkpoint(foreign_model("resnet8", 10, 1), tmp_path / "ckpt_epoch_2.pth")
    weights = ["--model", "resnet8", "--format", "repdistiller"]
    outliers = ["outliers", "--teacher", str(path), "--out", str(tmp_path / "o"), "--limit", "8"]
    outliers += ["--levels", "10", "--policy", "rotate", "--group-size", "4", "--device", "cpu", "--quiet"]
    assert main(outliers) == 2
    assert "name it with --model NAME" in one_line_error(capsys.readouterr().err)
    assert main([*outliers, *weights]) == 0
    cache = ["cache-teacher", "data.limit=16", "train.epochs=1", "--teacher", str(path), "--quiet"]
    assert main([*cache, *weights, "--k", "2", "--out", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    exported = tmp_path / "resnet8.safetensors"
    assert main(["export", str(path), "--model", "resnet8", "--out", str(exported)]) == 0
    assert main(["eval", str(exported), "--device", "cpu"]) == 2  # a RepDistiller file names no data set
    assert "pass --data NAME" in one_line_error(capsys.readouterr().err)
    run = tmp_path / "best.pt"
    save_checkpoint(
        {
            "model": build_model("resnet8", 10, 1).state_dict(),
            "config": config_to_dict(load_config(None, ["data.test_limit=5", "model.name=resnet8"])),
            "num_classes": 10,
            "in_channels": 1,
        },
        run,
    )
    assert main(["export", str(run), "--out", str(exported)]) == 0
    assert main(["eval", str(exported), "--device", "cpu", "--limit", "20"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("resnet8 on fashion-mnist test: accuracy ")
