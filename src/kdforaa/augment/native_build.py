"""How the native kernels are compiled: the one set of compiler commands behind both the wheel's prebuilt
library (``setup.py``) and the build for this CPU made at run time (:mod:`.native_library`).

Standard library only: ``setup.py`` loads this file by its path, in a build environment without torch.

- The **prebuilt** library is what a wheel carries. ``native_kernels.c`` is compiled once per CPU level
  into separately named entry points (``kdf_apply_baseline``, and on x86-64 ``kdf_apply_avx2``) and
  linked with ``native_dispatch.c``, whose ``kdf_apply`` picks the best level the CPU supports when the
  library is loaded. It needs no compiler where it runs.
- The **run-time** build compiles ``native_kernels.c`` alone with ``-march=native`` (entry
  ``kdf_apply``) for the CPU it runs on; a compiler that does not know ``-march=native`` gets a plain
  build.

Every build has ``-ffp-contract=off``: a fused multiply-add would round the float32 blends differently
from the torch path, and every build must give the same bytes. Libraries are plain shared libraries (no
Python C-API), loaded with ctypes, and always written under a temporary name and renamed when complete,
so nothing ever loads a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "native_kernels.c"
DISPATCH_SOURCE = HERE / "native_dispatch.c"

COMMON_FLAGS = ("-O3", "-std=c11", "-ffp-contract=off", "-fPIC")
NATIVE_FLAGS = ("-march=native",)
LIBRARIES = ("-lm",)
COMPILE_TIMEOUT_S = 120


def library_suffix() -> str:
    """The shared-library suffix of this platform (``.so``, ``.dylib`` or ``.dll``)."""
    return {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


PREBUILT_NAME = "kdforaa_kernels" + library_suffix()


class BuildError(OSError):
    """The compiler failed; the message is the first line of what it said."""


@dataclass(frozen=True)
class Level:
    """One CPU level of the prebuilt library: its entry ``kdf_apply_<name>`` and its compiler flags."""

    name: str
    flags: tuple[str, ...]


def prebuilt_levels(machine: str | None = None) -> tuple[Level, ...]:
    """The levels the prebuilt library holds on ``machine`` (default: this one), lowest first.

    x86-64: the baseline every x86-64 CPU runs, and AVX2 (``-mavx2`` alone, which is exactly what the
    dispatcher checks with ``__builtin_cpu_supports("avx2")``). Other machines: the compiler's default.
    """
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        generic = ("-march=x86-64", "-mtune=generic")
        return (Level("baseline", generic), Level("avx2", (*generic, "-mavx2")))
    return (Level("baseline", ()),)


def prebuilt_digest(machine: str | None = None) -> str:
    """What a prebuilt library was made from: both C sources and the levels' flags (16 hex digits).

    The library reports it (``kdf_source_digest``) and the loader compares it with the sources beside
    it, so a library left over from other sources is never run.
    """
    recipe = repr([(level.name, level.flags) for level in prebuilt_levels(machine)]) + repr(COMMON_FLAGS)
    digest = hashlib.sha256(SOURCE.read_bytes() + DISPATCH_SOURCE.read_bytes() + recipe.encode())
    return digest.hexdigest()[:16]


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"cannot run {command[0]}: {err}") from None
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        raise BuildError(said.splitlines()[0] if said else f"{command[0]} failed ({done.returncode})")


def write_atomically(target: Path, make: Callable[[Path], None]) -> None:
    """``make(partial)`` writes the library to a temporary file beside ``target``, which then takes
    ``target``'s name in one rename: a reader sees the old file, no file, or the complete new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=".partial-", suffix=target.suffix, delete=False
    ) as tmp:
        partial = Path(tmp.name)
    try:
        make(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def build_prebuilt(compiler: str, target: Path, machine: str | None = None) -> None:
    """Compile the prebuilt library (every level of :func:`prebuilt_levels` plus the dispatcher) into
    ``target``; :class:`BuildError` when the compiler fails."""
    levels = prebuilt_levels(machine)

    def make(partial: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="kdforaa-build-") as scratch:
            objects = []
            for level in levels:
                obj = Path(scratch) / f"kernels_{level.name}.o"
                _run(
                    [compiler, *COMMON_FLAGS, *level.flags, f"-DKDF_ENTRY=kdf_apply_{level.name}",
                     "-c", str(SOURCE), "-o", str(obj)]
                )  # fmt: skip
                objects.append(str(obj))
            dispatch = Path(scratch) / "dispatch.o"
            _run(
                [compiler, *COMMON_FLAGS, *(f"-DKDF_WITH_{level.name.upper()}" for level in levels),
                 f'-DKDF_SOURCE_DIGEST="{prebuilt_digest(machine)}"', "-c", str(DISPATCH_SOURCE),
                 "-o", str(dispatch)]
            )  # fmt: skip
            _run([compiler, "-shared", *objects, str(dispatch), "-o", str(partial), *LIBRARIES])
        partial.chmod(0o755)  # installed for every user of the environment, like the package's .py files

    write_atomically(target, make)


def build_for_this_cpu(compiler: str, target: Path) -> None:
    """Compile ``native_kernels.c`` with ``-march=native`` into ``target`` (level ``native``), or, where
    the compiler refuses that flag, without it (level ``generic``); :class:`BuildError` when it fails."""

    def make(partial: Path) -> None:
        def compile_as(level: str, *flags: str) -> None:
            command = [compiler, *COMMON_FLAGS, *flags, f'-DKDF_LEVEL="{level}"', "-shared", str(SOURCE)]
            _run([*command, "-o", str(partial), *LIBRARIES])

        try:
            compile_as("native", *NATIVE_FLAGS)
        except BuildError:  # some clang and non-x86 compilers do not know -march=native
            compile_as("generic")
        partial.chmod(0o700)  # the user's own, whatever the umask: the loader refuses what others can write

    write_atomically(target, make)


def build_key(compiler: str, cpu: str) -> str:
    """The cache name's digest of a run-time build: the source, the compiler, the flags and the CPU."""
    recipe = " ".join((compiler, *COMMON_FLAGS, *NATIVE_FLAGS, platform.machine(), cpu))
    return hashlib.sha256(SOURCE.read_bytes() + recipe.encode()).hexdigest()[:16]
