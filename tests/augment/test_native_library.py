"""Where the native kernels come from: the prebuilt library first (no compiler needed), else one build per
cache for all the processes that start at once, never a half-written library, no temporary folder left
behind, and no POSIX-only call where Windows would lack it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from kdforaa.augment import RandAugment, native, native_build, native_library
from kdforaa.augment.random import make_keys
from kdforaa.errors import BadInput

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")

SRC = Path(native_library.__file__).resolve().parents[2]

# A child process: augment a batch on the kernels it finds, print which and whether they equal torch.
CHILD = """
import torch
from kdforaa.augment import RandAugment, native
from kdforaa.augment.random import make_keys
x = torch.randint(0, 256, (16, 3, 24, 24), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
params = RandAugment(2, 15).sample(make_keys(0, 0, torch.arange(16)))
policy = RandAugment(2, 15)
fast, slow = policy.apply(x, params, backend="native"), policy.apply(x, params, backend="torch")
print(native.describe(), native.library().path, torch.equal(fast, slow))
"""


def run_child(env: dict[str, str], code: str = CHILD, prelude: str = "") -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(SRC), **env}
    command = [sys.executable, "-c", prelude + code]
    pipe = subprocess.PIPE
    return subprocess.Popen(command, env=environment, stdout=pipe, stderr=pipe, text=True)


def finished(child: subprocess.Popen) -> list[str]:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return out.split()


def test_the_prebuilt_library_comes_first_and_needs_no_compiler(prebuilt_library, monkeypatch, tmp_path):
    monkeypatch.setattr(native_library, "PREBUILT", prebuilt_library)
    monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    monkeypatch.setenv("CC", "no-such-compiler-kdforaa")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    native.reset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kernels = native.library()
        assert kernels.source == "prebuilt" and kernels.path == prebuilt_library
        x = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
        params = RandAugment(2, 9).sample(make_keys(0, 0, torch.arange(8)))
        assert torch.equal(
            RandAugment(2, 9).apply(x, params), RandAugment(2, 9).apply(x, params, backend="torch")
        )
        assert not list(tmp_path.rglob("*.so"))  # nothing was built
    finally:
        native.reset()


def test_a_prebuilt_library_from_other_sources_is_skipped_for_a_build_here(monkeypatch, tmp_path, caplog):
    changed = tmp_path / "native_kernels.c"
    changed.write_text(native_build.SOURCE.read_text() + "\n/* another version */\n")
    stale = tmp_path / native_build.PREBUILT_NAME
    with pytest.MonkeyPatch.context() as building:
        building.setattr(native_build, "SOURCE", changed)
        native_build.build_prebuilt("cc", stale)
    with pytest.raises(native_library.LoadError, match="built from other sources"):
        native_library.load_prebuilt(stale)
    monkeypatch.setattr(native_library, "PREBUILT", stale)
    monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    native.reset()
    try:
        with caplog.at_level("INFO", logger="kdforaa.augment.native"):
            assert native.describe() == "built:native"
        assert (
            "built from other sources" in caplog.text and "augmentation kernels: built:native" in caplog.text
        )
    finally:
        native.reset()


def test_processes_starting_at_once_build_once_and_never_load_a_half_written_library(tmp_path):
    """A slow compiler that first writes a truncated library where its output goes: the other processes
    must wait for the one build instead of compiling again or loading what is not finished."""
    log, compiler = tmp_path / "compiles.log", tmp_path / "slow-cc"
    compiler.write_text(
        "#!/bin/sh\n"
        f'echo "$$" >> "{log}"\n'
        'out=""; prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
        'printf "\\177ELF-half-written" > "$out"\n'
        "sleep 1\n"
        'exec cc "$@"\n'
    )
    compiler.chmod(0o755)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": str(compiler), "KDFORAA_NATIVE": "build"}
    children = [run_child(env) for _ in range(3)]
    results = [finished(child) for child in children]
    assert len(log.read_text().split()) == 1, "the kernels were compiled more than once"
    assert {tuple(r) for r in results} == {(results[0][0], results[0][1], "True")}
    assert results[0][0] == "built:native"
    assert not list((tmp_path / "cache").rglob(".partial-*"))


def test_without_os_getuid_or_a_cache_folder_the_build_goes_to_a_folder_removed_at_exit(tmp_path):
    """Windows has no os.getuid: without it, import and loading still work. With no usable cache folder
    the kernels are built in a temporary folder, which is gone once the process has ended."""
    unusable = tmp_path / "not-a-folder"
    unusable.write_text("a file where the cache folder would be")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"XDG_CACHE_HOME": str(unusable), "TMPDIR": str(scratch), "KDFORAA_NATIVE": "build"}
    name, path, equal = finished(run_child(env, prelude="import os\ndel os.getuid, os.geteuid\n"))
    assert name == "built:native" and equal == "True"
    assert Path(path).parent.parent == scratch and Path(path).parent.name.startswith("kdforaa-native-")
    assert list(scratch.iterdir()) == []


def test_an_unknown_choice_is_an_error_not_a_silent_fallback(monkeypatch):
    monkeypatch.setenv("KDFORAA_NATIVE", "fastest")
    native.reset()
    try:
        with pytest.raises(BadInput, match="KDFORAA_NATIVE='fastest' is not one of 1, 0, prebuilt, build"):
            native.library()
    finally:
        native.reset()


def _truncate(library: Path) -> None:
    library.write_bytes(library.read_bytes()[:4000])


def _junk(library: Path) -> None:
    library.write_bytes(b"\177ELF" + bytes(range(256)) * 40)


def _another_library(library: Path) -> None:
    library.write_bytes(Path(sys.executable).resolve().read_bytes()[:200_000])


def test_a_truncated_junk_or_foreign_library_in_the_cache_is_built_again_before_it_is_loaded(tmp_path):
    """A library cut short kills the process that maps it with SIGBUS, so every cached library is checked
    against the SHA-256 recorded beside it first; one that fails is built again, not skipped for the
    slower torch path. A copying compiler stands in for cc, so each build costs a copy."""
    good = tmp_path / "good.so"
    native_build.build_for_this_cpu(shutil.which("cc"), good)
    log, compiler = tmp_path / "compiles.log", tmp_path / "copy-cc"
    compiler.write_text(
        "#!/bin/sh\n"
        f'echo "$$" >> "{log}"\n'
        'out=""; prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
        f'cp "{good}" "$out"\n'
    )
    compiler.chmod(0o755)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": str(compiler), "KDFORAA_NATIVE": "build"}
    name, path, equal = finished(run_child(env))
    library = Path(path)
    assert (name, equal) == ("built:native", "True")
    assert (
        library.with_name(library.name + ".sha256").read_text().strip()
        == hashlib.sha256(good.read_bytes()).hexdigest()
    )
    for damage in (_truncate, _junk, _another_library):
        damage(library)
        assert finished(run_child(env)) == [name, path, "True"], damage.__name__
        assert library.read_bytes() == good.read_bytes()
    assert len(log.read_text().split()) == 4  # the first build, then one per damaged library


def test_a_library_is_intact_only_with_the_digest_recorded_beside_it(tmp_path):
    good = tmp_path / "good.so"
    good.write_bytes(b"\177ELF" + bytes(1000))
    good.chmod(0o700)
    assert not native_library.intact(good)  # no digest beside it
    native_library.record_digest(good)
    assert native_library.intact(good)
    good.with_name("good.so.sha256").write_text("0" * 64)
    assert not native_library.intact(good)
