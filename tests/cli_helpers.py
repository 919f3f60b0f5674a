"""What command-line tests share: the arguments of tiny real training runs (one process, or two under
torchrun), and the one-line error check. scripts/restart_repeat.py repeats the two-process run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY_TRAIN_ARGS = [
    "data.limit=128",
    "data.test_limit=100",
    "model.name=resnet8",
    "train.epochs=1",
    "train.batch_size=64",
]

# Two CPU processes, a checkpoint every 2 steps: long enough to kill a worker after the first checkpoint.
TWO_PROCESS_ARGS = [
    "data.limit=768",
    "data.test_limit=100",
    "model.name=resnet8",
    "augment.policy=randaugment",
    "train.epochs=2",
    "train.batch_size=64",
    "train.device=cpu",
    "train.threads=1",
    "train.checkpoint_every=2",
]


def two_process_command(out: Path, *extra: str, restarts: int = 0) -> list[str]:
    """``torchrun --standalone --nproc_per_node=2 -m kdforaa train`` of TWO_PROCESS_ARGS into ``out``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        f"--max-restarts={restarts}",
        "-m",
        "kdforaa",
        "train",
        *TWO_PROCESS_ARGS,
        *extra,
        "--out",
        str(out),
        "--quiet",
    ]


def worker_pids(parent: int) -> list[int]:
    """The processes torchrun ``parent`` started (its workers), oldest first."""
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def one_line_error(err: str) -> str:
    """The single line a refused command printed (fails when it printed a traceback or several lines)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
