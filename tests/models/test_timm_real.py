"""The timm paths against the real timm: a pretrained teacher from a local weights file, export in timm's
names taken by ``timm.create_model(..., pretrained_cfg_overlay=dict(file=...))``, and the one-line error
when timm's own pretrained weights cannot be fetched.

timm needs torchvision, which does not import beside the CPU torch build of the development machine: there
the whole module is skipped (the reason says why) and tests/fake_timm.py stands in for timm in the other
tests. The weights files are written by the tests themselves; nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

try:
    import timm
except Exception as err:  # ImportError, or torchvision failing to load beside this torch
    pytest.skip(
        f"timm cannot be imported here ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
        "run these tests where timm imports (a GPU session)",
        allow_module_level=True,
    )

from kdforaa.checkpoint import save_checkpoint
from kdforaa.config import TeacherConfig, config_to_dict, load_config
from kdforaa.distill.teacher import load_teacher
from kdforaa.models.export import export_weights
from kdforaa.models.from_checkpoint import load_trained
from kdforaa.models.registry import build_model

pytestmark = pytest.mark.timeout(300)

NAME, CLASSES = "resnet10t", 10
SRC = Path(__file__).resolve().parents[2] / "src"


def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A timm resnet10t (random weights, non-trivial BatchNorm statistics) saved as a kdforaa run
    checkpoint and exported in timm's names."""
    folder = tmp_path_factory.mktemp("timm")
    torch.manual_seed(0)
    model = build_model(f"timm:{NAME}", CLASSES, 3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    cfg = load_config(None, [f"model.name=timm:{NAME}"])
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "num_classes": CLASSES}
    state["in_channels"] = 3
    save_checkpoint(state, folder / "best.pt")
    out = export_weights(load_trained(str(folder / "best.pt")), folder / f"{NAME}.safetensors")
    return model.eval(), out


def test_export_is_taken_by_timms_pretrained_file_loader(exported) -> None:
    model, out = exported
    overlay = {"file": str(out), "num_classes": CLASSES}  # timm drops a classifier of another class count
    loaded = timm.create_model(NAME, pretrained=True, num_classes=CLASSES, pretrained_cfg_overlay=overlay)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x), rtol=0, atol=0)


def test_export_is_taken_by_a_plain_load_state_dict(exported) -> None:
    model, out = exported
    plain = timm.create_model(NAME, num_classes=CLASSES)
    plain.load_state_dict(load_file(out))
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(images()), model(images()), rtol=0, atol=0)


def test_pretrained_teacher_from_a_local_weights_file(exported) -> None:
    model, out = exported
    spec = TeacherConfig(checkpoint=f"timm:{NAME}", pretrained=True, weights=str(out))
    teacher = load_teacher(spec, CLASSES, 3, "cpu")
    with torch.no_grad():
        torch.testing.assert_close(teacher(images()), model(images()), rtol=0, atol=0)
    with pytest.raises(ValueError, match="predicts 10 classes but the data set has 100"):
        load_teacher(spec, 100, 3, "cpu")


def test_pretrained_weights_that_cannot_be_fetched_are_one_line(tmp_path: Path) -> None:
    """Offline with empty caches (a fresh process, so the hub reads the environment): BadInput, one line."""
    script = (
        "from kdforaa.config import TeacherConfig\n"
        "from kdforaa.distill.teacher import load_teacher\n"
        "from kdforaa.errors import BadInput\n"
        "try:\n"
        f"    load_teacher(TeacherConfig(checkpoint='timm:{NAME}', pretrained=True), 1000, 3, 'cpu')\n"
        "except BadInput as err:\n"
        "    print(err)\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
        # this checkout's src first; what the caller's path adds stays (the GPU check's installed kit)
        "PYTHONPATH": os.pathsep.join(filter(None, (str(SRC), os.environ.get("PYTHONPATH")))),
    }
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith(f"timm could not load the pretrained weights of 'timm:{NAME}'")
