"""Finding the native kernel library and loading it with ctypes; nothing here calls the kernels.

Where the kernels come from, in this order (:func:`find_kernels`):

1. **prebuilt**: ``kdforaa_kernels.so`` beside this file, which a wheel carries (:mod:`.native_build`
   made it; it picks its AVX2 or baseline entry for the CPU when loaded). It is part of the installed
   package like its Python files, so it is trusted as they are; it is skipped when it was built from
   other sources than the ones beside it.
2. **built here**: ``native_kernels.c`` compiled on first use with ``$CC`` or ``cc`` (``-march=native``)
   into ``~/.cache/kdforaa/native``, which must be ours and writable by no one else (a library is code).
   Processes starting at once on a fresh cache (sweep jobs, torchrun ranks) build it once: the first
   takes a lock (``flock``; ``msvcrt.locking`` on Windows), which the system releases when its holder
   exits, even when killed, so no lock is ever left stale; the others wait and then load its library.
   Libraries are written under a temporary name and renamed when complete, so none is loaded half
   written, and the SHA-256 of each is recorded beside it (``<name>.sha256``): a library whose bytes
   no longer match (truncated, damaged, replaced by another file) is built again before anything maps
   it, since loading a truncated library kills the process with SIGBUS. Where no cache folder is
   usable, the build goes to a private temporary folder that is removed when the process ends.
3. none: the torch path runs (same bytes, slower).

No call that Windows lacks (``os.getuid``) is made on import or without a guard.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdforaa.augment import native_build
from kdforaa.errors import BadInput

if TYPE_CHECKING:
    from _ctypes import CFuncPtr  # a loaded C function (ctypes._CFuncPtr at run time)

PREBUILT = native_build.HERE / native_build.PREBUILT_NAME
LOCK_TIMEOUT_S = 2 * native_build.COMPILE_TIMEOUT_S + 60  # a build is at most two compiler runs

UINT8_P = ctypes.POINTER(ctypes.c_uint8)
INT32_P = ctypes.POINTER(ctypes.c_int32)
FLOAT_P = ctypes.POINTER(ctypes.c_float)
# kdf_apply(x, out, start, end, channels, height, width, slots, ops, arguments, warps, rows, cols, fill)
_APPLY_ARGUMENTS = [
    UINT8_P, UINT8_P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    ctypes.c_int, INT32_P, FLOAT_P, UINT8_P, INT32_P, INT32_P, ctypes.c_int,
]  # fmt: skip


class LoadError(OSError):
    """A library could not be found, built or loaded; the message says why, in a few words."""


@dataclass(frozen=True)
class Kernels:
    """A loaded kernel library: ``apply`` is its ``kdf_apply`` (or one level's entry) as a ctypes function.

    ``source`` is ``prebuilt`` or ``built`` (here, at run time); ``level`` the code the entry runs:
    ``avx2`` or ``baseline`` (prebuilt), ``native`` (``-march=native``) or ``generic`` (built here).
    """

    apply: CFuncPtr
    source: str
    level: str
    path: Path

    @property
    def name(self) -> str:
        """``source:level``, e.g. ``prebuilt:avx2``: what a run's summary.json records."""
        return f"{self.source}:{self.level}"


def _entry(library: ctypes.CDLL, symbol: str) -> CFuncPtr:
    try:
        function = getattr(library, symbol)
    except AttributeError:
        raise LoadError(f"the library has no entry {symbol}") from None
    function.restype = ctypes.c_int
    function.argtypes = _APPLY_ARGUMENTS
    return function


def _text(library: ctypes.CDLL, symbol: str) -> str:
    """The string a ``const char *symbol(void)`` of the library returns."""
    try:
        function = getattr(library, symbol)
    except AttributeError:
        raise LoadError(f"the library has no {symbol}()") from None
    function.restype, function.argtypes = ctypes.c_char_p, []
    return function().decode()


def _open(path: Path) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(path))
    except OSError as err:
        raise LoadError(f"cannot load {path}: {err}") from None


# ------------------------------------------------------------------------------------------ prebuilt
def load_prebuilt(path: Path | None = None, level: str | None = None) -> Kernels:
    """The prebuilt library at ``path`` (default: the installed one): its dispatching ``kdf_apply``, or
    with ``level`` (``baseline``, ``avx2``) that level's own entry, e.g. to compare them. :class:`LoadError`
    when it is absent, was built from other sources than the ones beside this file, or lacks the entry."""
    path = path or PREBUILT
    if not path.is_file():
        raise LoadError(f"no prebuilt library ({path.name} is not in this installation)")
    library = _open(path)
    built_from, expected = _text(library, "kdf_source_digest"), native_build.prebuilt_digest()
    if built_from != expected:
        raise LoadError(f"the prebuilt library was built from other sources ({built_from}, not {expected})")
    if level is None:
        return Kernels(_entry(library, "kdf_apply"), "prebuilt", _text(library, "kdf_level"), path)
    return Kernels(_entry(library, f"kdf_apply_{level}"), "prebuilt", level, path)


# -------------------------------------------------------------------------------------- built here
def _ours(path: Path) -> bool:
    """Owned by this user and writable by no one else: safe to load code from.

    POSIX only: Windows has no ``os.getuid``, and a folder under the user's profile is private there by
    its access list, so it is taken as ours.
    """
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _remove_at_exit(folder: Path) -> None:
    """Remove ``folder`` when this process ends (not in a forked child, which inherits the hook)."""
    creator = os.getpid()

    def remove() -> None:
        if os.getpid() == creator:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)


def cache_dir() -> Path:
    """``~/.cache/kdforaa/native`` (``$XDG_CACHE_HOME`` honoured) when it is ours; else a private
    temporary folder, removed when the process ends."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdforaa" / "native"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _ours(home):
            return home
    except OSError:
        pass
    folder = Path(tempfile.mkdtemp(prefix="kdforaa-native-"))
    _remove_at_exit(folder)
    return folder


def _cpu_features() -> str:
    """The CPU's feature flags (Linux), so that a shared cache never serves one CPU another's build."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line for line in lines if line.startswith(("flags", "Features"))), platform.processor())


@contextlib.contextmanager
def _exclusive(lock_file: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an inter-process lock on ``lock_file`` (created if needed) for the ``with`` block.

    The operating system releases it when the holder's process ends, however it ends. Waits at most
    ``timeout`` seconds, then raises :class:`LoadError`.
    """
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform == "win32":
            import msvcrt

            def try_lock() -> None:
                msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)

            def unlock() -> None:
                os.lseek(descriptor, 0, os.SEEK_SET)
                msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            def try_lock() -> None:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)

            def unlock() -> None:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

        deadline = time.monotonic() + timeout
        while True:
            try:
                try_lock()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LoadError(f"another process held {lock_file} for over {timeout:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            unlock()
    finally:
        os.close(descriptor)


DIGEST_SUFFIX = ".sha256"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest_file(library: Path) -> Path:
    return library.with_name(library.name + DIGEST_SUFFIX)


def record_digest(library: Path) -> None:
    """Write the SHA-256 of the ``library`` just built beside it (``<name>.sha256``, atomically)."""
    text = _file_digest(library) + "\n"

    def write(partial: Path) -> None:
        partial.write_text(text)

    native_build.write_atomically(_digest_file(library), write)


def intact(library: Path) -> bool:
    """Whether ``library`` is whole and ours: its bytes hash to the digest recorded beside it when it
    was built. A truncated, damaged or foreign file fails here, before it is mapped into the process
    (loading a truncated shared library ends in SIGBUS, which nothing can catch)."""
    recorded = _digest_file(library)
    try:
        if not (_ours(library) and _ours(recorded)):
            return False
        return recorded.read_text().strip() == _file_digest(library)
    except (OSError, UnicodeDecodeError):
        return False


def build_here(compiler: str | None = None) -> Kernels:
    """The kernels built for this CPU with ``compiler`` (default ``$CC`` or ``cc``), reusing an earlier
    build in the cache when it is :func:`intact` (else built again); :class:`LoadError` when there is no
    compiler or the build fails."""
    found = shutil.which(compiler or os.environ.get("CC", "cc"))
    if found is None:
        raise LoadError(f"no C compiler ({compiler or os.environ.get('CC', 'cc')} is not on PATH)")
    folder = cache_dir()
    digest = native_build.build_key(found, _cpu_features())
    target = folder / f"kdforaa_native_{digest}{native_build.library_suffix()}"
    if not intact(target):
        with _exclusive(folder / f"kdforaa_native_{digest}.lock"):
            if not intact(target):  # another process may have built it while this one waited
                native_build.build_for_this_cpu(found, target)
                record_digest(target)
    if not intact(target):  # changed under us since: refuse rather than map what may be cut short
        raise LoadError(f"{target} changed while it was being loaded; run again")
    library = _open(target)
    return Kernels(_entry(library, "kdf_apply"), "built", _text(library, "kdf_level"), target)


# ---------------------------------------------------------------------------------------- the order
CHOICES = ("1", "0", "prebuilt", "build")


def find_kernels(choice: str = "1") -> tuple[Kernels | None, list[str]]:
    """The kernels ``choice`` allows, in the module's order, and why each source before them was
    skipped. ``choice`` is ``$KDFORAA_NATIVE``: ``1`` (prebuilt, else built here), ``prebuilt`` or
    ``build`` (that source only), ``0`` (none)."""
    if choice not in CHOICES:
        raise BadInput(f"KDFORAA_NATIVE={choice!r} is not one of {', '.join(CHOICES)}: set one or unset it")
    if choice == "0":
        return None, ["switched off with KDFORAA_NATIVE=0"]
    sources = {"1": (load_prebuilt, build_here), "prebuilt": (load_prebuilt,), "build": (build_here,)}[choice]
    skipped: list[str] = []
    for source in sources:
        try:
            return source(), skipped
        except native_build.BuildError as err:
            skipped.append(f"the C compiler failed: {err}")
        except OSError as err:  # LoadError, or an unusable cache folder
            skipped.append(str(err))
    return None, skipped
