"""Make the GPU kit: one folder holding what a bare GPU machine lacks to run ``scripts/gpu_check.sh``.

    python scripts/gpu_kit.py [--out gpu-kit]             # wheels for CPython 3.12, manylinux x86-64 (PyPI)
    python scripts/gpu_kit.py --from-installed --out DIR  # wheels for this Python, repacked from here

The GPU machines this project is checked on are bare: Python 3.12 with torch, triton, timm, torchvision,
safetensors, tqdm, PyYAML, hypothesis and pytest (:data:`ON_THE_MACHINE`), no network, no data. The kit
(``make gpu-kit``; at most :data:`MAX_BYTES`, small enough to copy beside the working tree) holds

- ``wheels/``: every distribution of :data:`KIT_DISTRIBUTIONS` (pydantic and what it needs, kornia for the
  comparison), installed by the check with ``pip install --no-index --no-deps --target``;
- ``data/fashion-mnist/``: the four Fashion-MNIST files (``$KDFORAA_DATA`` points there);
- ``lib/``: the prebuilt native kernel library, built from this checkout's C sources (the check puts it
  beside a copy of ``src/``, where the loader looks for it, and the loader checks its source digest);
- ``kit.json``: the Python version the wheels are for, what each file is, the modules the check imports.

By default the wheels are downloaded from PyPI for the GPU machine's Python (``pip download
--only-binary=:all:``); pydantic's own dependencies are resolved by pip, kornia is taken without its
dependencies (torch and numpy are on the machine). The kit refuses to be made when the wheels pip picks
are not exactly :data:`KIT_DISTRIBUTIONS`, so a new upstream dependency is noticed here, not on the GPU.

``--from-installed`` makes the same kit for the Python running this script, from the distributions installed
in it, without any network: each one's installed files (its ``RECORD``) are zipped back into a wheel. The
tests use it to prove the kit complete on a machine without a GPU or a network.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 48 * 2**20
GPU_PYTHON = "3.12"
GPU_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")

# What the bare GPU machine has already (the project's GPU sessions); never put into the kit.
ON_THE_MACHINE = (
    "torch", "triton", "timm", "torchvision", "safetensors", "tqdm", "pyyaml", "hypothesis", "pytest", "pip",
    "numpy", "pillow",
)  # fmt: skip
# Everything the check needs beyond that: the closure of these requirements minus ON_THE_MACHINE.
RESOLVED_REQUIREMENTS = ("pydantic>=2.5", "kornia-rs>=0.1")  # pip resolves their dependencies
UNRESOLVED_REQUIREMENTS = ("kornia>=0.7",)  # needs kornia-rs (above), torch and numpy (on the machine)
KIT_DISTRIBUTIONS = (
    "pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection",
    "kornia", "kornia-rs",
)  # fmt: skip
# The modules the check imports (scripts/gpu_check.py's environment stage imports each one).
CHECK_MODULES = (
    "kdforaa.cli", "kdforaa.augment", "kdforaa.augment.triton_kernels", "kdforaa.train.loop",
    "kdforaa.distill.views", "pydantic", "kornia", "kornia.augmentation.auto", "torch", "triton", "timm",
    "torchvision", "safetensors", "tqdm", "yaml", "hypothesis", "pytest", "numpy", "PIL",
)  # fmt: skip
DATA_FILES = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
)  # fmt: skip


def canonical(name: str) -> str:
    """A distribution's name as wheel files spell it (``pydantic-core`` -> ``pydantic_core``)."""
    return name.lower().replace("-", "_").replace(".", "_")


def _native_build() -> ModuleType:
    """``native_build.py`` loaded by its path, as setup.py does (no torch needed)."""
    path = ROOT / "src" / "kdforaa" / "augment" / "native_build.py"
    spec = importlib.util.spec_from_file_location("kdforaa_native_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ wheels
def download_wheels(folder: Path, python: str) -> None:
    """The wheels of :data:`KIT_DISTRIBUTIONS` for CPython ``python`` on manylinux x86-64, from PyPI."""
    target = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    target += [arg for platform in GPU_PLATFORMS for arg in ("--platform", platform)]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(folder), *target]
    subprocess.run([*pip, *RESOLVED_REQUIREMENTS], check=True)
    subprocess.run([*pip, "--no-deps", *UNRESOLVED_REQUIREMENTS], check=True)
    got = sorted(canonical(wheel.name.split("-")[0]) for wheel in folder.glob("*.whl"))
    wanted = sorted(canonical(name) for name in KIT_DISTRIBUTIONS)
    if got != wanted:
        raise SystemExit(
            f"gpu_kit: pip picked {got}, not KIT_DISTRIBUTIONS {wanted}: "
            f"update the list in {Path(__file__).name}"
        )


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(name: str, folder: Path) -> Path:
    """Zip the installed distribution ``name`` (the files its ``RECORD`` lists) back into a wheel.

    The wheel's tags are the ones its ``WHEEL`` file recorded at install; files outside the package
    folder (console scripts) and the installer's own notes are left out; ``RECORD`` is rewritten.
    """
    dist = importlib.metadata.distribution(name)
    info = Path(str(dist._path))  # type: ignore[attr-defined]  # its .dist-info folder
    site = info.parent
    wheel_info = (info / "WHEEL").read_text()
    tags = [line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:")]
    pythons, abis, platforms = (sorted({tag.split("-")[i] for tag in tags}) for i in range(3))
    stem = f"{canonical(dist.metadata['Name'])}-{dist.version}"
    wheel = folder / f"{stem}-{'.'.join(pythons)}-{'.'.join(abis)}-{'.'.join(platforms)}.whl"
    dist_info = f"{stem}.dist-info"
    skipped = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    rows = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or ():
            path = Path(file)
            if path.parts[0] == ".." or "__pycache__" in path.parts:
                continue
            inside = dist_info + "/" + path.name if path.parts[0] == info.name else path.as_posix()
            if path.parts[0] == info.name and path.name in skipped:
                continue
            data = (site / path).read_bytes()
            archive.writestr(inside, data)
            rows.append((inside, _record_hash(data), str(len(data))))
        with tempfile.SpooledTemporaryFile(mode="w+", newline="") as text:
            csv.writer(text).writerows([*rows, (f"{dist_info}/RECORD", "", "")])
            text.seek(0)
            archive.writestr(f"{dist_info}/RECORD", text.read())
    return wheel


# -------------------------------------------------------------------------------------- data, library
def copy_fashion_mnist(folder: Path) -> None:
    """The four Fashion-MNIST files from where the library finds them (``$KDFORAA_DATA``, Debian's folder)."""
    sys.path.insert(0, str(ROOT / "src"))
    from kdforaa.data.datasets import search_dirs

    for source in search_dirs("fashion-mnist", None):
        if all((source / name).is_file() for name in DATA_FILES):
            folder.mkdir(parents=True)
            for name in DATA_FILES:
                shutil.copy2(source / name, folder / name)
            return
    raise SystemExit(
        "gpu_kit: Fashion-MNIST (gzipped IDX) not found: sudo apt-get install dataset-fashion-mnist, "
        "or kdforaa data fetch fashion-mnist"
    )


def build_library(folder: Path) -> str:
    """The prebuilt kernel library (every CPU level, as the wheel has it); returns its source digest."""
    native_build = _native_build()
    compiler = shutil.which("cc")
    if compiler is None:
        raise SystemExit("gpu_kit: the prebuilt kernel library needs a C compiler (cc) on PATH")
    native_build.build_prebuilt(compiler, folder / native_build.PREBUILT_NAME, "x86_64")
    return native_build.prebuilt_digest("x86_64")


# ------------------------------------------------------------------------------------------------ kit
def make_kit(out: Path, from_installed: bool) -> dict:
    """Fill ``out`` (replaced when it exists) and return its manifest (also written as ``kit.json``)."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    wheels = partial / "wheels"
    wheels.mkdir(parents=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}" if from_installed else GPU_PYTHON
    if from_installed:
        for name in KIT_DISTRIBUTIONS:
            repack_installed(name, wheels)
    else:
        download_wheels(wheels, python)
    copy_fashion_mnist(partial / "data" / "fashion-mnist")
    digest = build_library(partial / "lib")
    files = sorted(p for p in partial.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    if size > MAX_BYTES:
        raise SystemExit(f"gpu_kit: the kit holds {size / 2**20:.1f} MiB, over {MAX_BYTES / 2**20:.0f} MiB")
    manifest = {
        "python": python,
        "made_from": "installed distributions" if from_installed else "PyPI",
        "wheels": sorted(p.name for p in wheels.iterdir()),
        "library_digest": digest,
        "check_modules": list(CHECK_MODULES),
        "on_the_machine": list(ON_THE_MACHINE),
        "bytes": size,
    }
    (partial / "kit.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "gpu-kit", help="the kit's folder (default gpu-kit)"
    )
    parser.add_argument(
        "--from-installed", action="store_true", help="for this Python, from its installed packages (offline)"
    )
    args = parser.parse_args()
    manifest = make_kit(args.out.resolve(), args.from_installed)
    print(
        f"gpu kit for Python {manifest['python']} in {args.out}: {len(manifest['wheels'])} wheels, "
        f"Fashion-MNIST, kernel library {manifest['library_digest']}; {manifest['bytes'] / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
