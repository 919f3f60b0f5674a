"""A run folder: resolved config, metrics log, checkpoints, summary, and a lock against concurrent use."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        self.file(CONFIG).write_text(yaml.safe_dump(tree, sort_keys=False))

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
                        f"{self.path} is in use by process {owner}; wait for it or choose another --out"
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
        path = self.file(METRICS)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def keep_metrics_before(self, epoch: int) -> None:
        """On resume: drop records of epochs the checkpoint has not completed (they will be rewritten)."""
        kept = [r for r in self.read_metrics() if r["epoch"] < epoch]
        self.file(METRICS).write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.file(SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
