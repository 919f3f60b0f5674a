"""The wheel installs anywhere: built from this checkout, installed into a fresh virtual environment and
run where no C compiler is on PATH, it runs the README's Python example on its prebuilt native kernels.

To stay fast and offline, the fresh environment reuses this one's dependencies (torch, numpy, ...)
through a ``.pth`` file that points at a folder of links to them, kdforaa itself left out; nothing is
downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import kdforaa
from readme_blocks import python_block

ROOT = Path(__file__).resolve().parents[1]
setuptools = pytest.importorskip("setuptools", reason="the wheel is built with setuptools (make test has it)")
if int(setuptools.__version__.split(".")[0]) < 77:
    pytest.skip(
        "building the wheel needs setuptools >= 77 (the dev extra installs it)", allow_module_level=True
    )

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cc") is None, reason="building the prebuilt library needs cc"),
]

# Run in the fresh environment with no compiler: the README's example, then which kernels ran.
CHECK = """
import shutil, sys, torch
from pathlib import Path
assert shutil.which("cc") is None and shutil.which("gcc") is None, "a C compiler is visible"
example = {example!r}
exec(example, {{}})
import kdforaa
from kdforaa.augment import RandAugment, native
from kdforaa.augment.random import make_keys
x = torch.randint(0, 256, (32, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
params = RandAugment(2, 15).sample(make_keys(0, 0, torch.arange(32)))
same = torch.equal(RandAugment(2, 15).apply(x, params), RandAugment(2, 15).apply(x, params, backend="torch"))
print(kdforaa.__file__, native.describe(), same)
"""


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def readme_example() -> str:
    """The Python block of README.md's quick start."""
    return python_block("Quick start")


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of a copy of the checkout (the build writes ``build/`` beside its sources)."""
    project = _made(out / "project")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copytree(ROOT / "configs", project / "configs")
    env = {**os.environ, "KDFORAA_PREBUILT": "require"}
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "-w", str(out / "dist"), str(project)], check=True, env=env, timeout=600)
    (wheel,) = (out / "dist").glob("kdforaa-*.whl")
    return wheel


def fresh_environment(folder: Path) -> Path:
    """A new venv whose ``.pth`` reaches this environment's packages except kdforaa; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    links = _made(folder / "dependencies")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("kdforaa", "__editable__")):
            (links / entry.name).symlink_to(entry)
    (Path(own) / "dependencies.pth").write_text(f"{links}\n")
    return python


def test_the_wheel_runs_the_readme_example_on_its_prebuilt_kernels_without_a_compiler(tmp_path):
    wheel = build_wheel(tmp_path)
    assert wheel.name.endswith(
        f"-{kdforaa.__version__}-py3-none-{sysconfig.get_platform().replace('-', '_')}.whl"
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"kdforaa-{kdforaa.__version__}.dist-info/METADATA").decode()
    assert {
        "kdforaa/augment/kdforaa_kernels.so",
        "kdforaa/py.typed",
        "kdforaa/augment/native_kernels.c",
        "kdforaa/configs/fashion_mnist/teacher.yaml",  # the examples, for the quick start anywhere
        "kdforaa/configs/sweeps/common/student.yaml",
    } <= names
    assert "License-Expression: MIT" in metadata and "Requires-Dist: matplotlib" in metadata
    assert re.search(r"Requires-Dist: matplotlib\S*; extra == \"plots\"", metadata)

    python = fresh_environment(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    home = _made(tmp_path / "home")
    bare = {  # no compiler on PATH, no earlier build in a cache, nothing from this checkout
        "PATH": str(python.parent),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(_made(tmp_path / "tmp")),
    }
    done = subprocess.run(
        [str(python), "-c", CHECK.format(example=readme_example())],
        env=bare, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, kernels, same = done.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "venv") and same == "True"
    assert kernels in ("prebuilt:avx2", "prebuilt:baseline")
    assert not list(home.rglob("*.so")) and not list((tmp_path / "tmp").iterdir())  # nothing was built
    assert "warn" not in done.stderr.lower(), done.stderr

    version = subprocess.run(
        [str(python.parent / "kdforaa"), "--version"], env=bare, capture_output=True, text=True, timeout=120
    )
    assert version.stdout.strip() == f"kdforaa {kdforaa.__version__}"
    example = subprocess.run(  # from a folder with no configs/ in sight
        [str(python.parent / "kdforaa"), "config", "--example", "fashion_mnist/teacher"],
        env=bare, cwd=home, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert example.stdout == (ROOT / "configs" / "fashion_mnist" / "teacher.yaml").read_text(), example.stderr
