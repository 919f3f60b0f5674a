"""Busy neighbours for the contention benchmarks, and one `kdforaa train` run timed from its metrics.

A neighbour is a separate single-threaded process spinning in a loop, the way a browser tab, a CI job
or another training run keeps a core busy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

SPIN = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


@contextlib.contextmanager
def busy_neighbours(count: int) -> Iterator[None]:
    """``count`` processes that each keep one core busy until the block ends."""
    processes = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def weights_digest(checkpoint: Path) -> str:
    """SHA-256 over a run checkpoint's weights, tensor by tensor in name order."""
    import torch

    from kdforaa.checkpoint import load_checkpoint

    digest = hashlib.sha256()
    for name, tensor in sorted(load_checkpoint(checkpoint)["model"].items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class TimedRun(NamedTuple):
    """One timed ``kdforaa train`` run: its median img/s, each epoch's thread count, and a SHA-256 of its
    final weights (runs of the same config and seed must agree on it whatever the load)."""

    img_per_s: float
    threads: list[float]
    weights: str


# OpenMP's wait policy is read when torch loads; each timed run gets exactly the one its setting names
OPENMP_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def train_img_per_s(
    overrides: list[str], skip_first: bool = True, env: dict[str, str] | None = None
) -> TimedRun:
    """Run ``kdforaa train`` with ``overrides`` in its own process; with ``env`` (e.g. an OpenMP wait
    policy; None: this environment as it is) in place of this environment's OpenMP variables. Timed
    from its metrics: the median training img/s of its epochs, the first left out when ``skip_first``
    (it pays the warm-up)."""
    environment = dict(os.environ)
    if env is not None:
        environment = {k: v for k, v in environment.items() if k not in OPENMP_VARIABLES} | env
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "kdforaa", "train", "--out", str(out), "--quiet", *overrides]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        weights = weights_digest(out / "last.pt")
    timed = records[1:] if skip_first and len(records) > 1 else records
    return TimedRun(
        statistics.median(r["img_per_s"] for r in timed), [r["threads"] for r in records], weights
    )
