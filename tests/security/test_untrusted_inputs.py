"""Untrusted bytes never run code: every place kdforaa deserialises a file refuses a malicious payload.

Marker-file technique: each payload, if it were ever executed, would create a marker file; every test
asserts the marker does not exist afterwards (and the controls prove the payloads are live: a plain
unpickler or ``yaml.unsafe_load`` does create the marker). Places covered: checkpoints
(``load_checkpoint``, ``kdforaa eval``), the teacher loader, weights files from elsewhere
(RepDistiller-style checkpoints and state dicts, in every format; a timm teacher's ``teacher.weights``;
``kdforaa eval --model`` and ``kdforaa export``), CIFAR batches, YAML configs and overrides
(``load_config``, ``kdforaa train``), a resumed run folder's config.yaml, sweep files (and the config
files and saved sweep they read) and the soft-label cache's epoch files. A static check over
``src/`` fails as soon as an unsafe deserialiser appears.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from fakedata import cifar_pickle_bytes, write_cifar
from kdforaa import __version__
from kdforaa.checkpoint import MARKER, load_checkpoint
from kdforaa.cli import main
from kdforaa.config import DataConfig, TeacherConfig, load_config, parse_overrides
from kdforaa.data import cifar
from kdforaa.data.datasets import load_dataset
from kdforaa.distill.cache import SoftLabelCache
from kdforaa.distill.teacher import load_teacher
from kdforaa.models.from_checkpoint import load_trained

pytestmark = pytest.mark.timeout(60)

SRC = Path(__file__).resolve().parents[2] / "src" / "kdforaa"


# ---------------------------------------------------------------------------------------- payloads
class RunsShell:
    """Unpickles to ``os.system("touch marker")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class OpensFile:
    """Unpickles to ``open(marker, "w")``: creates the file with no shell involved."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class Execs:
    """Unpickles to ``exec("open(marker, 'w').close()")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class BackdooredModule(nn.Linear):
    """A real module with fine tensors whose unpickling (``__setstate__``) creates the marker."""

    marker: Path

    def __setstate__(self, state):
        Path(state["marker_path"]).touch()
        super().__setstate__(state)

    def __getstate__(self):
        return {**super().__getstate__(), "marker_path": str(self.marker)}


PAYLOADS = [RunsShell, OpensFile, Execs]


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where a payload would write; the working directory is ``tmp_path`` so nothing leaks elsewhere."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran"


def backdoored_module(marker: Path) -> nn.Module:
    module = BackdooredModule(2, 2)
    module.marker = marker
    return module


def checkpoint_states(marker: Path) -> dict[str, dict]:
    """Checkpoint dicts whose tensors are fine but which hide code, at the top and under nested keys."""
    weights = {"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}
    head = {MARKER: __version__, "model": weights, "num_classes": 10, "in_channels": 1}
    return {
        "top-level call": {**head, "payload": RunsShell(marker)},
        "call nested in the optimizer": {**head, "optimizer": {"state": {0: {"step": [OpensFile(marker)]}}}},
        "exec deep in a list": {**head, "config": {"model": {"name": [1, {"x": Execs(marker)}]}}},
        "bare callable": {**head, "hooks": {"on_load": os.system}},
        "whole module with a backdoor": {**head, "model": backdoored_module(marker)},
        "callable beside the weights": {**head, "model": {**weights, "fc.hook": print}},
    }


# ---------------------------------------------------------------------------------------- controls
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_control_payloads_are_live_under_a_plain_unpickler(tmp_path, payload):
    """The technique works: an unsafe load of each payload does create its marker."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps({"nested": [payload(marker)]}, protocol=2))
    assert marker.exists()


def test_control_backdoored_module_is_live_under_an_unsafe_torch_load(tmp_path):
    marker = tmp_path / "control"
    buffer = io.BytesIO()
    torch.save({"model": backdoored_module(marker)}, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=False)
    assert marker.exists()


def test_control_yaml_tag_is_live_under_an_unsafe_loader(tmp_path):
    marker = tmp_path / "control"
    yaml.unsafe_load(f"!!python/object/apply:os.system [\"touch '{marker}'\"]")
    assert marker.exists()


# ------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_CASES = list(checkpoint_states(Path("unused")))


def write_checkpoint(path: Path, state: dict, legacy: bool) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_checkpoint_with_code_is_refused_without_running(tmp_path, marker, case, legacy):
    path = write_checkpoint(tmp_path / "evil.pt", checkpoint_states(marker)[case], legacy)
    with pytest.raises(ValueError, match="refusing to unpickle|unreadable"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_raw_pickle_as_a_checkpoint_is_refused_without_running(tmp_path, marker, payload):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({MARKER: __version__, "model": payload(marker)}, protocol=2))
    with pytest.raises(ValueError):
        load_checkpoint(path)


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_eval_command_refuses_a_checkpoint_with_code(tmp_path, marker, case, capsys):
    path = write_checkpoint(tmp_path / "evil.pt", checkpoint_states(marker)[case], legacy=False)
    assert main(["eval", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "Traceback" not in err


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_teacher_loader_refuses_a_checkpoint_with_code(tmp_path, marker, case):
    path = write_checkpoint(tmp_path / "teacher.pt", checkpoint_states(marker)[case], legacy=False)
    with pytest.raises(ValueError):
        load_teacher(str(path), num_classes=10, in_channels=1, device="cpu")


# ------------------------------------------------------------------- weights files from elsewhere
def foreign_states(marker: Path) -> dict[str, object]:
    """RepDistiller-style checkpoints and state dicts (no kdforaa marker) that hide code."""
    weights = {"conv1.weight": torch.zeros(16, 3, 3, 3), "fc.weight": torch.zeros(10, 64)}
    return {
        "call beside the weights": {"epoch": 240, "model": weights, "optimizer": RunsShell(marker)},
        "call among the weights": {"model": {**weights, "layer1.0.conv1.weight": OpensFile(marker)}},
        "exec in a plain state dict": {**weights, "bn1.weight": Execs(marker)},
        "whole module under model": {"model": backdoored_module(marker)},
        "a bare module": backdoored_module(marker),
    }


FOREIGN_CASES = list(foreign_states(Path("unused")))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("format", ["auto", "repdistiller", "state_dict"])
@pytest.mark.parametrize("case", FOREIGN_CASES)
def test_foreign_weights_with_code_are_refused_without_running(tmp_path, marker, case, format, legacy):
    path = write_checkpoint(tmp_path / "evil.pth", foreign_states(marker)[case], legacy)
    with pytest.raises(ValueError, match="refusing to unpickle|unreadable"):
        load_trained(str(path), architecture="resnet8", format=format)


@pytest.mark.parametrize("case", FOREIGN_CASES)
def test_teacher_from_foreign_weights_or_a_timm_weights_file_refuses_code(tmp_path, marker, case):
    path = str(write_checkpoint(tmp_path / "evil.pth", foreign_states(marker)[case], legacy=False))
    for spec in (
        TeacherConfig(checkpoint=path, model="resnet8"),
        TeacherConfig(checkpoint="timm:resnet18", pretrained=True, weights=path),
    ):
        with pytest.raises(ValueError, match="refusing to unpickle|unreadable"):
            load_teacher(spec, num_classes=10, in_channels=3, device="cpu")


@pytest.mark.parametrize("case", FOREIGN_CASES)
@pytest.mark.parametrize("command", ["eval", "export"])
def test_eval_and_export_refuse_foreign_weights_with_code(tmp_path, marker, case, command, capsys):
    path = write_checkpoint(tmp_path / "evil.pth", foreign_states(marker)[case], legacy=False)
    extra = ["--data", "fashion-mnist"] if command == "eval" else ["--out", str(tmp_path / "w.safetensors")]
    assert main([command, str(path), "--model", "resnet8", *extra]) == 2
    err = capsys.readouterr().err
    assert "evil.pth" in err and "refusing to unpickle" in err and "Traceback" not in err
    assert not (tmp_path / "w.safetensors").exists()


# ------------------------------------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_cifar_batch_with_code_is_refused_without_running(tmp_path, marker, payload, protocol):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"labels": [0], "data": payload(marker)}, protocol=protocol))
    with pytest.raises(ValueError, match="not allowed"):
        cifar.load_pickle(path)


# file -> the splits that open it
CIFAR_FILES = [("batches.meta", "train"), ("batches.meta", "test"), ("data_batch_3", "train")]
CIFAR_FILES += [("test_batch", "test")]


@pytest.mark.parametrize("file, split", CIFAR_FILES)
def test_tampered_file_in_a_cifar_folder_is_refused_without_running(tmp_path, marker, file, split):
    fake = write_cifar(tmp_path / "cifar", "cifar10", n_train=5, n_test=2)
    evil = {"labels": [0], "label_names": [Execs(marker)], "data": OpensFile(marker)}
    (fake.root / "cifar-10-batches-py" / file).write_bytes(cifar_pickle_bytes(evil))
    with pytest.raises(ValueError, match=file):
        load_dataset(DataConfig(name="cifar10", root=str(fake.root)), split)


# -------------------------------------------------------------------------------------------- YAML
def yaml_tags(marker: Path) -> dict[str, str]:
    """YAML values that build Python objects (and run code) under an unsafe loader."""
    return {
        "apply os.system": f"!!python/object/apply:os.system [\"touch '{marker}'\"]",
        "apply exec": f"!!python/object/apply:builtins.exec [\"open('{marker}', 'w')\"]",
        "new Popen": f"!!python/object/new:subprocess.Popen [[touch, '{marker}']]",
        "name": "!!python/name:os.system",
        "module": "!!python/module:os",
    }


TAGS = list(yaml_tags(Path("unused")))
PLACES = {"whole file": "{}\n", "a section": "data: {}\n", "a nested key": "train:\n  lr: {}\n"}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("tag", TAGS)
def test_config_with_a_python_tag_is_bad_input_without_running(tmp_path, marker, tag, place):
    path = tmp_path / "evil.yaml"
    path.write_text(PLACES[place].format(yaml_tags(marker)[tag]))
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("tag", TAGS)
def test_override_with_a_python_tag_is_bad_input_without_running(marker, tag):
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_overrides([f"train.lr={yaml_tags(marker)[tag]}"])
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(None, [f"seed={yaml_tags(marker)[tag]}"])


@pytest.mark.parametrize("tag", TAGS)
def test_train_command_refuses_a_config_with_a_python_tag(tmp_path, marker, tag, capsys):
    path = tmp_path / "evil.yaml"
    path.write_text(PLACES["a nested key"].format(yaml_tags(marker)[tag]))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "evil.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_resumed_run_with_a_tampered_config_never_runs_it(tmp_path, marker, capsys):
    """A run folder's config.yaml is read back on --resume: a python tag in it must not execute."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(PLACES["a nested key"].format(yaml_tags(marker)["apply os.system"]))
    assert main(["train", "--resume", str(run), "--quiet"]) != 0
    capsys.readouterr()


# ------------------------------------------------------------------------------------------ sweeps
@pytest.mark.parametrize("tag", TAGS)
def test_sweep_file_with_a_python_tag_is_refused_without_running(tmp_path, marker, tag, capsys):
    path = tmp_path / "sweep.yaml"
    grid = f"grid:\n  augment.magnitude: [{yaml_tags(marker)[tag]}]\n"
    path.write_text("base: {train: {epochs: 1}}\n" + grid)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "sweep.yaml" in capsys.readouterr().err


def test_sweep_base_config_with_a_python_tag_is_refused_without_running(tmp_path, marker, capsys):
    (tmp_path / "base.yaml").write_text(PLACES["a nested key"].format(yaml_tags(marker)["apply exec"]))
    path = tmp_path / "sweep.yaml"
    path.write_text("base: base.yaml\ngrid:\n  augment.magnitude: [0, 5]\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "base.yaml" in capsys.readouterr().err


def test_saved_sweep_with_a_python_tag_is_refused_by_report_only(tmp_path, marker, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.yaml").write_text(f"seeds: {yaml_tags(marker)['apply os.system']}\n")
    assert main(["sweep", "--report-only", str(out)]) == 2
    assert "sweep.yaml" in capsys.readouterr().err


# -------------------------------------------------------------------------------- soft-label cache
def write_cache(folder: Path, values: object) -> SoftLabelCache:
    """A one-epoch cache of two samples whose values file is ``values`` (an array or raw bytes)."""
    folder.mkdir()
    values_file = folder / "epoch-0000.values.npy"
    if isinstance(values, bytes):
        values_file.write_bytes(values)
    else:
        np.save(values_file, values, allow_pickle=True)
    np.save(folder / "epoch-0000.classes.npy", np.zeros((2, 1), np.int16))
    header = {"k": 1, "num_classes": 10, "num_samples": 2, "epochs": 1, "per_epoch": True}
    return SoftLabelCache(folder, header)


@pytest.mark.parametrize("form", ["object array", "raw pickle"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_soft_label_cache_with_pickled_objects_is_refused_without_running(tmp_path, marker, payload, form):
    evil = np.array([[payload(marker)], [1.0]], dtype=object)
    values = evil if form == "object array" else pickle.dumps(evil, protocol=2)
    cache = write_cache(tmp_path / "cache", values)
    with pytest.raises(ValueError, match="damaged"):
        cache.logits(torch.zeros(2, 1, 1, 1), epoch=0, indices=torch.tensor([0, 1]))


# ------------------------------------------------------------------------------------ static check
UNSAFE_CALLS = {
    "pickle.load": "unrestricted unpickling",
    "pickle.loads": "unrestricted unpickling",
    "pickle.Unpickler": "an Unpickler without find_class",
    "_pickle.load": "unrestricted unpickling",
    "_pickle.loads": "unrestricted unpickling",
    "marshal.load": "marshal runs untrusted code objects",
    "marshal.loads": "marshal runs untrusted code objects",
    "shelve.open": "shelve unpickles",
    "dill.load": "dill unpickles",
    "dill.loads": "dill unpickles",
    "yaml.load": "yaml.load builds Python objects: use yaml.safe_load",
    "yaml.load_all": "use yaml.safe_load_all",
    "yaml.unsafe_load": "use yaml.safe_load",
    "yaml.unsafe_load_all": "use yaml.safe_load_all",
    "yaml.full_load": "use yaml.safe_load",
    "yaml.full_load_all": "use yaml.safe_load_all",
    "torch.serialization.add_safe_globals": "widens torch.load's allow-list",
    "torch.serialization.safe_globals": "widens torch.load's allow-list",
    "builtins.eval": "eval of a string",
    "builtins.exec": "exec of a string",
}
UNSAFE_NAMES = {"yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader", "yaml.CLoader", "yaml.CUnsafeLoader"}
KEYWORD_RULES = {  # call -> (keyword, the only literal value allowed, whether the keyword may be left out)
    "torch.load": ("weights_only", True, False),
    "torch.serialization.load": ("weights_only", True, False),
    "numpy.load": ("allow_pickle", False, True),
}


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> fully qualified name, from the module's imports (``import numpy as np`` ...)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):  # "import a.b" binds a; "import a.b as c" binds c to a.b
            for alias in node.names:
                bound = alias.name if alias.asname else alias.name.split(".")[0]
                names[alias.asname or bound] = bound
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _qualified(node: ast.expr, imports: dict[str, str]) -> str | None:
    """``np.load`` -> ``numpy.load``; a bare ``eval`` -> ``builtins.eval``; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    root = imports.get(node.id, f"builtins.{node.id}" if not parts else node.id)
    return ".".join([root, *reversed(parts)])


def unsafe_deserialisation(source: str, filename: str = "<source>") -> list[str]:
    """Every unsafe deserialiser used in ``source``, as ``file:line: what (why)``."""
    tree = ast.parse(source, filename)
    imports = _imports(tree)
    found = []
    for node in ast.walk(tree):
        name = _qualified(node.func, imports) if isinstance(node, ast.Call) else None
        bases = {_qualified(b, imports) for b in node.bases} if isinstance(node, ast.ClassDef) else set()
        if "pickle.Unpickler" in bases:
            if "find_class" not in {item.name for item in node.body if isinstance(item, ast.FunctionDef)}:
                found.append(f"{filename}:{node.lineno}: {node.name}: an Unpickler without find_class")
        if isinstance(node, ast.Attribute | ast.Name) and _qualified(node, imports) in UNSAFE_NAMES:
            found.append(f"{filename}:{node.lineno}: {_qualified(node, imports)} (an unsafe YAML loader)")
        if name in UNSAFE_CALLS:
            found.append(f"{filename}:{node.lineno}: {name} ({UNSAFE_CALLS[name]})")
        if name in KEYWORD_RULES:
            keyword, allowed, optional = KEYWORD_RULES[name]
            value = {k.arg: k.value for k in node.keywords}.get(keyword)
            ok = (value is None and optional) or (isinstance(value, ast.Constant) and value.value is allowed)
            if not ok or any(k.arg is None for k in node.keywords):  # **kwargs could hide anything
                found.append(f"{filename}:{node.lineno}: {name} without {keyword}={allowed}")
    return found


def test_static_check_flags_every_unsafe_pattern():
    """The checker is not vacuous: each unsafe snippet is flagged, each safe one passes."""
    unsafe = [
        "import pickle\npickle.load(f)",
        "import pickle as p\np.loads(b)",
        "from pickle import loads\nloads(b)",
        "import pickle\npickle.Unpickler(f).load()",
        "import pickle\nclass Loose(pickle.Unpickler):\n    pass",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import torch\ntorch.load(\n    path,\n    map_location='cpu',\n)",
        "import torch\ntorch.load(path, **options)",
        "from torch import load\nload(path)",
        "import torch\ntorch.serialization.add_safe_globals([print])",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import yaml\nyaml.full_load(text)",
        "import yaml\nyaml.safe_load(text, yaml.Loader)",
        "from yaml import unsafe_load\nunsafe_load(text)",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
        "import numpy\nnumpy.load(path, allow_pickle=flag)",
        "import marshal\nmarshal.loads(b)",
        "eval(text)",
        "exec(text)",
    ]
    for source in unsafe:
        assert unsafe_deserialisation(source), f"not flagged:\n{source}"
    safe = [
        "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
        "import yaml\nyaml.safe_load(text)\nyaml.safe_dump(tree)",
        "import numpy as np\nnp.load(path)\nnp.load(path, allow_pickle=False)",
        "import pickle\nclass Safe(pickle.Unpickler):\n    def find_class(self, m, n): ...\nSafe(f).load()",
        "model.eval()",
        "pickle.dumps(x)",
    ]
    for source in safe:
        assert not unsafe_deserialisation(source), f"flagged:\n{source}"


def test_no_unsafe_deserialisation_in_src():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, f"src/ not found at {SRC}"
    found = [hit for path in files for hit in unsafe_deserialisation(path.read_text(), str(path))]
    assert not found, "unsafe deserialisation in src/:\n" + "\n".join(found)
