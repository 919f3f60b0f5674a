"""A run folder: resolved config, metrics log, checkpoints, summary, and a lock against concurrent use."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from kdforaa import atomic
from kdforaa.config import read_yaml_file
from kdforaa.errors import BadInput

CONFIG, METRICS, LAST, PREVIOUS, BEST, SUMMARY, LOCK = (
    "config.yaml",
    "metrics.jsonl",
    "last.pt",
    "previous.pt",
    "best.pt",
    "summary.json",
    ".lock",
)


def _posix_pid_alive(pid: int) -> bool:
    """Signal 0 checks that ``pid`` exists without touching it; another user's process exists too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PROCESS_QUERY_LIMITED_INFORMATION, _STILL_ACTIVE, _ERROR_ACCESS_DENIED = 0x1000, 259, 5


def _windows_pid_alive(pid: int, kernel32: Any = None) -> bool:
    """Ask Windows whether ``pid`` is still running (``kernel32``: the Win32 API; tests pass a stand-in).

    Never ``os.kill`` there: on Windows any signal but the two console events terminates the process,
    so probing a lock's owner that way would kill the run holding it."""
    import ctypes

    if kernel32 is None:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.OpenProcess.restype = ctypes.c_void_p  # a HANDLE is pointer-wide, not an int
        kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
        kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return kernel32.GetLastError() == _ERROR_ACCESS_DENIED  # it exists, but belongs to someone else
    try:
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.pointer(code))
        return bool(ok) and code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


_pid_alive = _windows_pid_alive if os.name == "nt" else _posix_pid_alive


class RunFolder:
    """Paths and small file operations of one run; holds the folder's lock while open."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._locked = False

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def last(self) -> Path:
        return self.file(LAST)

    @property
    def previous(self) -> Path:
        return self.file(PREVIOUS)

    @property
    def best(self) -> Path:
        return self.file(BEST)

    def can_resume(self) -> bool:
        return self.last.exists() or self.previous.exists()

    def has_run(self) -> bool:
        return self.file(CONFIG).exists()

    def read_config(self) -> dict[str, Any]:
        if not self.has_run():
            raise BadInput(
                f"{self.path} holds no run (no {CONFIG}); start one with 'kdforaa train CONFIG --out DIR'"
            )
        tree = read_yaml_file(self.file(CONFIG), "run config")
        if not isinstance(tree, dict):
            raise BadInput(f"{self.file(CONFIG)} is not a run config (not a mapping)")
        return tree

    def write_config(self, tree: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.file(CONFIG), yaml.safe_dump(tree, sort_keys=False))

    def forget_unstarted_run(self) -> None:
        """Remove the config and metrics of a run that ended before its first checkpoint (nothing to
        resume), so the same ``--out`` can start it again; a run with a checkpoint keeps everything."""
        if not self.can_resume():
            for name in (CONFIG, METRICS):
                self.file(name).unlink(missing_ok=True)

    def lock(self) -> None:
        """Refuse a second process on the same folder; a lock left by a dead process is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.file(LOCK)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid() and _pid_alive(owner):
                    raise BadInput(
                        f"{self.path} is in use by process {owner}; wait for it or choose another run folder"
                    ) from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._locked = True
            return
        raise BadInput(f"could not take the lock {lock}; remove it if no run is using {self.path}")

    def unlock(self) -> None:
        if self._locked:
            self.file(LOCK).unlink(missing_ok=True)
            self._locked = False

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.file(METRICS).open("a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch records; ``epoch`` counts from 1, as the console does. Files written before
        kdforaa counted from 1 hold an epoch 0: their epochs are read shifted by one."""
        path = self.file(METRICS)
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if any(r.get("epoch") == 0 for r in records):
            records = [{**r, "epoch": r["epoch"] + 1} for r in records]
        return records

    def keep_metrics_before(self, epoch: int) -> None:
        """On resume from a checkpoint that completed ``epoch`` epochs: drop the records of later epochs
        (they will be rewritten)."""
        kept = [r for r in self.read_metrics() if r["epoch"] <= epoch]
        atomic.write_text(self.file(METRICS), "".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic.write_text(self.file(SUMMARY), json.dumps(summary, indent=2) + "\n")
