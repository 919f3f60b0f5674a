"""The wheel's build step: the native augmentation kernels compiled into a plain shared library.

``kdforaa/augment/kdforaa_kernels.so`` (``.dylib``, ``.dll``) holds every CPU level of the kernels and
picks one when loaded (``src/kdforaa/augment/native_build.py`` has the commands); it has no Python C-API
and is loaded with ctypes, so the wheel is specific to the platform but not to the Python version
(``py3-none-<platform>``). An install from it needs no C compiler. The step also copies the example
configs (``configs/``) into the package. Everything else is in pyproject.toml.

``$KDFORAA_PREBUILT``: unset or ``auto`` builds the library when ``$CC`` (default ``cc``) works and
otherwise makes the wheel without it, with a warning (the kernels are then built on first use where a
compiler is, else the torch path runs); ``require`` fails instead (release builds, the wheel test);
``0`` leaves it out. Editable installs never build it: they build the kernels at run time.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "kdforaa_native_build", HERE / "src" / "kdforaa" / "augment" / "native_build.py"
)
native_build = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = native_build  # its dataclasses look their module up there
_spec.loader.exec_module(native_build)


class BuildWithKernels(build_py):
    """``build_py``, then the example configs into the build's ``kdforaa/configs`` (package data, so that
    ``kdforaa config --example`` finds them after an install) and the prebuilt kernel library into its
    ``kdforaa/augment``."""

    def run(self) -> None:
        super().run()
        examples = HERE / "configs"  # an sdist has them too (MANIFEST.in)
        if not self.editable_mode and examples.is_dir():  # an editable install reads the checkout's
            shutil.copytree(examples, Path(self.build_lib) / "kdforaa" / "configs", dirs_exist_ok=True)
        mode = os.environ.get("KDFORAA_PREBUILT", "auto")
        if mode not in ("auto", "require", "0"):
            raise SystemExit(f"KDFORAA_PREBUILT={mode!r} is not one of auto, require, 0")
        if self.editable_mode or mode == "0":
            return
        target = Path(self.build_lib) / "kdforaa" / "augment" / native_build.PREBUILT_NAME
        compiler = shutil.which(os.environ.get("CC", "cc"))
        try:
            if compiler is None:
                raise native_build.BuildError(f"no C compiler ({os.environ.get('CC', 'cc')} is not on PATH)")
            native_build.build_prebuilt(compiler, target)
        except native_build.BuildError as err:
            if mode == "require":
                raise SystemExit(f"kdforaa: cannot build the prebuilt kernel library: {err}") from None
            self.warn(f"kdforaa: the wheel will have no prebuilt kernel library: {err}")
            return
        self.announce(f"kdforaa: built the prebuilt kernel library {target}", level=2)


class WithNativeLibrary(Distribution):
    """A distribution with a native library: installed as platform code, its wheel made for one platform."""

    def has_ext_modules(self) -> bool:
        return True


class AnyPython3Wheel(bdist_wheel):
    """The wheel's tag: this platform, any Python 3 (the library has no Python C-API)."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=WithNativeLibrary, cmdclass={"build_py": BuildWithKernels, "bdist_wheel": AnyPython3Wheel})
