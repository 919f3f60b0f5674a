"""The GPU kit is complete and the GPU check fails loudly without CUDA, proven on a machine without a GPU.

The real kit (``make gpu-kit``) holds wheels for the GPU machine's Python 3.12 downloaded from PyPI; a test
may not download, so it makes the same kit for this Python from the distributions installed here
(``scripts/gpu_kit.py --from-installed``: the same list of distributions, the same data and library). It
then runs ``scripts/gpu_check.sh`` with a *bare* interpreter: a fresh virtual environment that sees
only what the GPU machine has (``ON_THE_MACHINE`` and what those need), linked from this environment --
no pydantic, no kornia, no kdforaa. The script must install the kit into its own temporary target, import
every module the check needs from there, load the kit's prebuilt kernels, and then stop with exit status 3
and a message, because there is no CUDA device here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cc") is None, reason="the kit's kernel library is built with cc"),
]


def machine_distributions(names: list[str]) -> set[str]:
    """``names`` and everything they require (extras left out), as far as it is installed here."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # on the GPU machine, not here (timm, torchvision)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found.add(key)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def bare_python(folder: Path, distributions: set[str]) -> Path:
    """A venv of this Python whose ``.pth`` reaches only ``distributions`` of this environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    links = folder / "machine"
    links.mkdir()
    for name in distributions:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            top = Path(file).parts[0]
            target = Path(dist.locate_file(top))
            if top != ".." and not (links / top).exists() and target.exists():
                (links / top).symlink_to(target)
    (Path(own) / "machine.pth").write_text(f"{links}\n")
    return python


def test_the_kit_installs_offline_beside_a_bare_torch_and_the_check_fails_loudly_without_cuda(tmp_path):
    kit = tmp_path / "kit"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_kit.py"), "--from-installed", "--out", str(kit)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    manifest = json.loads((kit / "kit.json").read_text())
    assert manifest["python"] == "{}.{}".format(*sys.version_info[:2])
    assert sorted(p.name for p in (kit / "data" / "fashion-mnist").iterdir()) == sorted(
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "train-labels-idx1-ubyte.gz"]
    )  # fmt: skip
    machine = machine_distributions(manifest["on_the_machine"])
    assert not machine & {"pydantic", "kornia", "kdforaa"}
    python = bare_python(tmp_path / "bare", machine)
    for module in ("pydantic", "kornia", "kdforaa"):  # the bare interpreter really lacks them
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=120)
        assert probe.returncode != 0, module

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    results = tmp_path / "results"
    environment = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": str(python), "GPU_KIT": str(kit),
        "TMPDIR": str(scratch), "CUDA_VISIBLE_DEVICES": "", "GPU_CHECK_ENV_SECONDS": "600",
    }  # fmt: skip
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(results)],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "FAILED: torch sees no CUDA device here" in done.stderr
    assert list(scratch.iterdir()) == []  # the temporary install is gone
    report = json.loads((results / "env.json").read_text())
    assert report["cuda_available"] is False and report["native_kernels"].startswith("prebuilt:")
    rows = {row["module"]: row for row in report["modules"]}
    absent_here = {m for m in rows if importlib.util.find_spec(m.split(".")[0]) is None}
    assert absent_here <= {"timm", "torchvision"}  # on the GPU machine, not in this environment
    for name, row in rows.items():
        assert ("error" in row) == (name in absent_here), row
    installed = re.escape(str(scratch)) + r"/kdforaa-gpu-check\.\w+/"
    for name in ("pydantic", "kornia", "kornia.augmentation.auto"):
        assert re.match(installed + "site/", rows[name]["file"]), rows[name]
    for name in ("kdforaa.cli", "kdforaa.augment.triton_kernels", "kdforaa.train.loop"):
        assert re.match(installed + "src/kdforaa/", rows[name]["file"]), rows[name]
    assert (results / "stages.tsv").read_text().split("\t")[:2] == ["env", "1" if absent_here else "0"]


def test_the_check_refuses_a_kit_made_for_another_python(tmp_path):
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "kit.json").write_text(json.dumps({"python": "2.7"}))
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "results")],
        env={**os.environ, "PYTHON": sys.executable, "GPU_KIT": str(kit)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu_check: error: the kit's wheels are for Python 2.7, "
        f"{sys.executable} is {sys.version_info.major}.{sys.version_info.minor}"
    )
