"""The native CPU kernels (``native_kernels.c``): building, loading and calling them; nothing else.

On the CPU the torch path pays a fixed cost per op and group (about 16 groups per RandAugment batch),
which dominates small images, and several memory passes per op on large ones. ``native_kernels.c`` does a
sample's colour ops and its nearest warp in one pass over cache-resident memory, threads splitting the
batch. It is compiled on first use with the system's C compiler (``$CC`` or ``cc``) into
``~/.cache/kdforaa/native`` and loaded with ctypes: no build step and no extra dependency. Without a
compiler, or with ``KDFORAA_NATIVE=0``, the torch path runs; both give the same bytes (tested).
What to run per sample (op codes, arguments, warp parts) is worked out by :mod:`kdforaa.augment.apply`
from the op table; the op codes are the ``OP_*`` enum of the C file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_name("native_kernels.c")
# Vectorised for this CPU (the library is built where it runs; its cache name includes the CPU), but
# without fused multiply-add, which would round the blends differently from the torch path.
FLAGS = ("-O3", "-march=native", "-std=c11", "-ffp-contract=off", "-fPIC", "-shared")

_UINT8_P = ctypes.POINTER(ctypes.c_uint8)
_INT32_P = ctypes.POINTER(ctypes.c_int32)
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def enabled() -> bool:
    """False when ``$KDFORAA_NATIVE`` is 0 (force the torch path, e.g. to compare the two)."""
    return os.environ.get("KDFORAA_NATIVE", "1") != "0"


def _cache_dir() -> Path:
    """``~/.cache/kdforaa/native``; a private temporary folder where that cannot be made or is not ours."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdforaa" / "native"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _ours(home):
            return home
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="kdforaa-native-"))


def _ours(path: Path) -> bool:
    """Owned by this user and writable by no one else: safe to load code from (a library is code)."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _cpu_features() -> str:
    """The CPU's feature flags (Linux), so that a shared cache never serves one CPU another's build."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line for line in lines if line.startswith(("flags", "Features"))), platform.processor())


def _compile(compiler: str, target: Path) -> None:
    """Build the library into ``target`` atomically (parallel test workers and ranks may race)."""
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        # A compiler that does not know -march=native (some clang and non-x86 builds) gets a plain build.
        for flags in (FLAGS, tuple(f for f in FLAGS if f != "-march=native")):
            command = [compiler, *flags, str(SOURCE), "-o", str(partial), "-lm"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                break
        else:
            raise OSError(done.stderr.strip().splitlines()[0] if done.stderr.strip() else "compiler failed")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; None (with one warning) when that fails."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    build = " ".join((compiler, *FLAGS, platform.machine(), _cpu_features()))
    digest = hashlib.sha256(SOURCE.read_bytes() + build.encode()).hexdigest()[:16]
    target = _cache_dir() / f"kdforaa_native_{digest}.so"
    try:
        if not (target.exists() and _ours(target)):
            _compile(compiler, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"kdforaa: no native augmentation kernels, using torch ({error})", stacklevel=2)
        return None
    lib.kdf_apply.restype = ctypes.c_int
    lib.kdf_apply.argtypes = [
        _UINT8_P, _UINT8_P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, _INT32_P, _FLOAT_P, _UINT8_P, _INT32_P, _INT32_P, ctypes.c_int,
    ]  # fmt: skip
    return lib


@functools.cache
def _pool(pid: int) -> ThreadPoolExecutor:
    """Threads for the batch's parts, one pool per process (a forked child cannot use its parent's)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=f"kdforaa-native-{pid}")


def _pointer(array: np.ndarray | torch.Tensor, kind: type) -> ctypes._Pointer:
    address = array.data_ptr() if isinstance(array, torch.Tensor) else array.ctypes.data
    return ctypes.cast(address, kind)


# How a sample is resampled: not at all, pixel by pixel, or row runs (forward or mirrored): WARP_* in C.
WARP_NONE, WARP_GATHER, WARP_RUNS, WARP_RUNS_BACKWARD = 0, 1, 2, 3


def apply(
    x: torch.Tensor,
    codes: np.ndarray,
    arguments: np.ndarray,
    warps: np.ndarray,
    rows: np.ndarray | None,
    cols: np.ndarray | None,
    fill: int,
) -> torch.Tensor:
    """Colour ops (``codes``, ``arguments``: ``(B,S)``), then each sample's nearest warp (``warps``
    ``(B,)``, one of ``WARP_*``).

    ``rows`` ``(B,2,H)`` and ``cols`` ``(B,2,W)`` are int32 fixed-point parts (see
    ``geometry.sample_parts``), None when nothing moves. Returns a new contiguous batch.
    """
    lib = library()
    x = x.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    batch, channels, height, width = x.shape
    codes, arguments = np.ascontiguousarray(codes, np.int32), np.ascontiguousarray(arguments, np.float32)
    warps = np.ascontiguousarray(warps, np.uint8)
    if rows is None or cols is None:
        rows = cols = np.zeros(1, np.int32)
    rows, cols = np.ascontiguousarray(rows, np.int32), np.ascontiguousarray(cols, np.int32)
    pointers = (
        _pointer(codes, _INT32_P), _pointer(arguments, _FLOAT_P), _pointer(warps, _UINT8_P),
        _pointer(rows, _INT32_P), _pointer(cols, _INT32_P),
    )  # fmt: skip
    source, target = _pointer(x, _UINT8_P), _pointer(out, _UINT8_P)

    shape = (channels, height, width, codes.shape[1])

    def run(start: int, end: int) -> int:
        return lib.kdf_apply(source, target, start, end, *shape, *pointers, fill)

    threads = max(1, min(torch.get_num_threads(), batch))
    bounds = np.linspace(0, batch, threads + 1).astype(int).tolist()
    if threads == 1:
        results = [run(0, batch)]
    else:
        results = list(_pool(os.getpid()).map(run, bounds[:-1], bounds[1:]))
    if any(results):
        raise MemoryError("native augmentation kernels: out of memory for one image's scratch space")
    return out
