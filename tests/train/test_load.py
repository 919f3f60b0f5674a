"""The same config and seed give the same bits whether the machine is quiet or busy, with the default
thread setting: trained next to a busy process the test starts and stops, a run's weights, optimizer
state and metrics equal the quiet run's, for plain training, a live teacher and a soft-label cache; a
run killed under load and resumed on a quiet machine equals an uninterrupted quiet run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from kdforaa.checkpoint import load_checkpoint
from kdforaa.cli import main
from kdforaa.config import build_config, load_config
from kdforaa.errors import BadInput
from kdforaa.train.loop import Trainer

SPIN = "import time\nend = time.time() + 120\nwhile time.time() < end: pass\n"
# what a run records about its own speed: the only thing load may change
TIMINGS = {"epoch_seconds", "img_per_s", "eval_seconds", "elapsed"}
# no train.threads anywhere: the default is what must not depend on load
TINY = {
    "data": {"limit": 128, "test_limit": 32},
    "model": {"name": "resnet8"},
    "augment": {"policy": "randaugment", "magnitude": 12},
    "train": {"epochs": 1, "batch_size": 64},
}


@contextlib.contextmanager
def busy_neighbour() -> Iterator[None]:
    """A separate process keeping one core busy until the block ends (it has the core from the start)."""
    process = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        yield
    finally:
        process.kill()
        process.wait()


def _digest(value: Any, into: Any) -> None:
    if isinstance(value, torch.Tensor):
        into.update(str((value.dtype, tuple(value.shape))).encode())
        into.update(value.detach().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            if key not in TIMINGS:
                into.update(repr(key).encode())
                _digest(value[key], into)
    elif isinstance(value, list | tuple):
        for item in value:
            _digest(item, into)
    else:
        into.update(repr(value).encode())


def run_digest(folder: Path) -> str:
    """SHA-256 of a finished run's weights, optimizer and criterion state, counters and metrics."""
    digest = hashlib.sha256()
    state = load_checkpoint(folder / "last.pt")
    _digest({k: state[k] for k in ("model", "optimizer", "criterion", "global_step", "best_acc")}, digest)
    _digest([json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()], digest)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("teacher") / "run"
    Trainer(build_config(TINY), out, progress=False).run()
    return str(out / "last.pt")


def student_tree(kind: str, teacher: str, folder: Path) -> dict[str, Any]:
    """The run's config; for a cache, the cache is built first (in ``folder``), under the same load."""
    if kind == "plain":
        return TINY
    tree = {**TINY, "teacher": {"checkpoint": teacher}, "distill": {"method": "topk_kd"}}
    if kind == "cache":
        config, cache = folder / "config.yaml", folder / "cache"
        folder.mkdir()
        config.write_text(yaml.safe_dump(tree))
        assert (
            main(["cache-teacher", "--config", str(config), "--out", str(cache), "--k", "3", "--quiet"]) == 0
        )
        tree = {**tree, "teacher": {"checkpoint": teacher, "cache": str(cache)}}
    return tree


@pytest.mark.parametrize("kind", ["plain", "live teacher", "cache"])
def test_a_run_next_to_a_busy_process_has_the_quiet_runs_bits(tmp_path, teacher, kind):
    digests = []
    for load, folder in (
        (contextlib.nullcontext(), tmp_path / "quiet"),
        (busy_neighbour(), tmp_path / "busy"),
    ):
        with load:
            cfg = build_config(student_tree(kind, teacher, folder))
            Trainer(cfg, folder / "run", progress=False).run()
        digests.append(run_digest(folder / "run"))
    assert digests[0] == digests[1]


RESUMABLE = [  # 16 steps, a checkpoint every 2
    "data.limit=256",
    "data.test_limit=32",
    "model.name=resnet8",
    "augment.policy=randaugment",
    "augment.magnitude=12",
    "train.epochs=2",
    "train.batch_size=32",
    "train.checkpoint_every=2",
]


def train(out: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "kdforaa", "train", *args, "--out", str(out), "--quiet"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(process: subprocess.Popen[str], out: Path, min_step: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if load_checkpoint(out / "last.pt")["global_step"] >= min_step:
                return
        except BadInput:  # not written yet, or being replaced right now
            pass
        assert process.poll() is None, f"run ended early: {process.communicate()}"
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no checkpoint within 120 s")


def test_killed_under_load_and_resumed_quiet_equals_the_quiet_run(tmp_path):
    Trainer(load_config(None, RESUMABLE), tmp_path / "quiet", progress=False).run()  # never stopped
    with busy_neighbour():
        killed = train(tmp_path / "killed", *RESUMABLE)
        wait_for_checkpoint(killed, tmp_path / "killed", min_step=2)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["global_step"] < 16  # stopped mid-run
    command = [sys.executable, "-m", "kdforaa", "train", "--resume", str(tmp_path / "killed"), "--quiet"]
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert run_digest(tmp_path / "killed") == run_digest(tmp_path / "quiet")
