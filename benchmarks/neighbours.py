"""Busy neighbours for the contention benchmarks, and one `kdforaa train` run timed from its metrics.

A neighbour is a separate single-threaded process spinning in a loop, the way a browser tab, a CI job
or another training run keeps a core busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def train_img_per_s(
    overrides: list[str], skip_first: bool = True, env: dict[str, str] | None = None
) -> tuple[float, list[float]]:
    """Run ``kdforaa train`` with ``overrides`` (and ``env`` added to the environment, e.g. an OpenMP
    setting); the median training img/s of its epochs (the first left out when ``skip_first``: it pays
    the warm-up), and each epoch's mean thread count."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "kdforaa", "train", "--out", str(out), "--quiet", *overrides]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timed = records[1:] if skip_first and len(records) > 1 else records
    return statistics.median(r["img_per_s"] for r in timed), [r["threads"] for r in records]
